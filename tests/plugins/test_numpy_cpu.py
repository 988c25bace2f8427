"""numpy-cpu against a per-keypoint port of mmpose 0.x (real OpenCV blur), and its own rules."""

from __future__ import annotations

import numpy as np
import pytest
from posefw.conformance.cases import cases, gaussian_maps, well_conditioned
from posefw.conformance.mmpose_port import keypoints_from_heatmaps

import posefw
from posefw.dark import blur_window, gaussian_kernel1d, reflect101

cv2 = pytest.importorskip("cv2")
ALGOS = ("dark-udp", "dark", "argmax")
CASES = [c for c in cases(3) if c.heatmaps.shape[0] <= 64]


@pytest.mark.parametrize("alg", ALGOS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_mmpose_port(case, alg):
    hm = case.heatmaps
    res = posefw.create_decoder("numpy-cpu", algorithm=alg).decode(hm)
    exp_kp, exp_sc = keypoints_from_heatmaps(np.asarray(hm, np.float32), alg)
    finite = np.isfinite(np.asarray(hm, np.float32)).all(axis=(2, 3))
    np.testing.assert_array_equal(res.scores[finite], exp_sc[finite])
    good = finite & well_conditioned(hm, alg)
    assert np.abs(res.keypoints - exp_kp)[good].max(initial=0) <= 1e-3
    # mmpose's own rules where it is well defined: maxima <= 0 sit at (-1, -1)
    nonpos = finite & (exp_sc <= 0)
    assert (res.keypoints[nonpos] == -1).all()
    # everywhere else (ill-conditioned steps included) the integer argmax agrees
    if alg == "argmax":
        np.testing.assert_array_equal(res.keypoints[finite], exp_kp[finite])


def test_nonfinite_rule_isolated():
    hm = gaussian_maps(np.random.default_rng(1), 3, 17, 64, 48, margin=3)
    ref = posefw.create_decoder("numpy-cpu").decode(hm)
    hm[1, 4, 3, 3] = np.nan
    hm[2, 0, 9, 9] = -np.inf
    res = posefw.create_decoder("numpy-cpu").decode(hm)
    assert np.isnan(res.keypoints[1, 4]).all() and np.isnan(res.scores[1, 4])
    assert np.isnan(res.keypoints[2, 0]).all() and np.isnan(res.scores[2, 0])
    mask = np.ones((3, 17), bool)
    mask[1, 4] = mask[2, 0] = False
    np.testing.assert_array_equal(res.keypoints[mask], ref.keypoints[mask])


def test_more_than_299_crops_index_correctly():
    """mmpose's float32 flat index fails past ~299 crops; ours must not."""
    n = 400
    hm = gaussian_maps(np.random.default_rng(2), n, 17, 64, 48, margin=3)
    res = posefw.create_decoder("numpy-cpu").decode(hm)
    single = posefw.create_decoder("numpy-cpu").decode(hm[-3:])
    np.testing.assert_array_equal(res.keypoints[-3:], single.keypoints)
    exp, _ = keypoints_from_heatmaps(hm[-3:], "dark-udp")
    assert np.abs(res.keypoints[-3:] - exp).max() < 1e-3


def test_dark_udp_nonpositive_is_not_refined():
    hm = -np.ones((2, 17, 64, 48), np.float32)
    res = posefw.create_decoder("numpy-cpu").decode(hm)
    assert (res.keypoints == -1).all() and (res.scores == -1).all()


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9, 11, 13])
@pytest.mark.parametrize("shape", [(64, 48), (17, 13), (3, 3), (1, 1), (5, 2)])
def test_blur_window_equals_opencv(kernel, shape):
    """The local reflect-101 blur is OpenCV's GaussianBlur at every sampled point."""
    h, w = shape
    rng = np.random.default_rng(kernel)
    maps = rng.random((4, h, w), dtype=np.float32)
    flat = maps.reshape(4, -1)
    x, y = rng.integers(0, w, 4), rng.integers(0, h, 4)
    got = blur_window(flat, x, y, h, w, gaussian_kernel1d(kernel), 1, zero_pad=False)
    for i in range(4):
        full = cv2.GaussianBlur(maps[i], (kernel, kernel), 0)
        rows = reflect101(np.arange(y[i] - 1, y[i] + 2), h)
        cols = reflect101(np.arange(x[i] - 1, x[i] + 2), w)
        np.testing.assert_allclose(got[i], full[np.ix_(rows, cols)], rtol=2e-6, atol=1e-7)


def test_float16_equals_float32_of_same_values():
    hm = gaussian_maps(np.random.default_rng(4), 2, 17, 64, 48, margin=3).astype(np.float16)
    a = posefw.create_decoder("numpy-cpu").decode(hm)
    b = posefw.create_decoder("numpy-cpu").decode(hm.astype(np.float32))
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
