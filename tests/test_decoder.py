"""The decoder contract: clear errors naming the argument, empty batches, options."""

from __future__ import annotations

import re

import numpy as np
import pytest

import posefw

DEC = posefw.create_decoder("numpy-cpu")
HM = np.random.default_rng(0).random((2, 17, 64, 48), dtype=np.float32)


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((17, 64, 48), np.float32), ValueError, "heatmaps: expected 4 dimensions"),
        (np.zeros((1, 17, 64, 48), np.int32), TypeError, "heatmaps: expected float32 or float16"),
        (np.zeros((1, 17, 64, 48), np.complex64), TypeError, "heatmaps: expected float32 or float16"),
        (np.zeros((1, 17, 64, 48), np.float64), TypeError, "got float64"),
        ([[1.0]], TypeError, "heatmaps: expected an array"),
        (np.zeros((1, 0, 64, 48), np.float32), ValueError, "K, H and W must be >= 1"),
    ],
)
def test_bad_heatmaps(bad, exc, words):
    with pytest.raises(exc, match=words):
        DEC.decode(bad)


@pytest.mark.parametrize(
    "centers, scales, words",
    [
        (np.zeros((3, 2)), np.ones((3, 2)), r"centers: expected shape \(2, 2\)"),
        (np.zeros((2, 2)), np.ones((2, 3)), r"scales: expected shape \(2, 2\)"),
        (np.zeros((2, 2)), None, "scales: centers and scales must be given together"),
        (np.zeros((2, 2)), np.array([[1.0, 1.0], [0.0, 2.0]]), "scales: .*box index 1"),
        (np.zeros((2, 2)), np.array([[1.0, 1.0], [-1.0, 2.0]]), "must be > 0"),
        (np.array([[np.nan, 0], [0, 0]]), np.ones((2, 2)), "centers: all values must be finite"),
    ],
)
def test_bad_boxes(centers, scales, words):
    with pytest.raises(ValueError, match=words):
        DEC.decode(HM, centers, scales)


@pytest.mark.parametrize(
    "kernel, exc",
    [
        (0, ValueError),
        (4, ValueError),
        (-3, ValueError),
        (2.0, TypeError),
        (True, TypeError),
        (100001, ValueError),
        (257, ValueError),
    ],
)
def test_bad_kernel(kernel, exc):
    with pytest.raises(exc, match="kernel: expected an odd integer"):
        posefw.create_decoder("numpy-cpu", kernel=kernel)


def test_kernel_bound_via_the_cli(capsys, tmp_path):
    from posefw.cli import main

    np.save(tmp_path / "h.npy", HM)
    assert (
        main(
            [
                "decode",
                "--decoder",
                "numpy-cpu",
                "--kernel",
                "100001",
                str(tmp_path / "h.npy"),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 2
    )
    assert "kernel: expected an odd integer from 1 to 255, got 100001" in capsys.readouterr().err


def test_unknown_algorithm_and_options():
    with pytest.raises(ValueError, match="algorithm: decoder 'numpy-cpu' supports dark-udp, dark, argmax; got 'udp'"):
        posefw.create_decoder("numpy-cpu", algorithm="udp")
    with pytest.raises(TypeError, match=r"options: .*unknown \['sigma'\]"):
        posefw.create_decoder("numpy-cpu", sigma=2)


def test_empty_batch_returns_empty_result():
    res = DEC.decode(np.zeros((0, 17, 64, 48), np.float32))
    assert res.keypoints.shape == (0, 17, 2) and res.scores.shape == (0, 17)
    assert res.keypoints.dtype == np.float32


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9, 13, 21])
def test_any_odd_kernel_decodes(kernel):
    for alg in posefw.ALGORITHMS:
        res = posefw.create_decoder("numpy-cpu", algorithm=alg, kernel=kernel).decode(HM)
        assert np.isfinite(res.keypoints).all()


def test_decode_result_numpy_roundtrip():
    res = DEC.decode(HM)
    assert res.numpy().keypoints is res.keypoints and len(res) == 2


def test_device_style_boxes_are_shape_checked_per_argument():
    torch = pytest.importorskip("torch")
    dec = posefw.create_decoder("torch-full")
    hm = torch.from_numpy(HM)
    with pytest.raises(ValueError, match=r"scales: expected shape \(2, 2\) to match heatmaps, got \(3, 2\)"):
        dec.decode(hm, torch.zeros(2, 2), torch.ones(3, 2))


@pytest.mark.parametrize("name", ["numpy-cpu", "torch-full"])
@pytest.mark.parametrize(
    "bad, words",
    [
        ("nan-scale", "scales: all values must be finite"),
        ("zero-scale", "scales: crop width and height must be > 0; box index 1"),
        ("negative-scale", "scales: crop width and height must be > 0; box index 1"),
        ("bool-centers", "centers: expected a real numeric (N, 2) array, got dtype bool"),
    ],
)
def test_every_backend_validates_boxes_given_as_tensors(name, bad, words):
    """torch-full used to accept these as torch tensors; numpy-cpu always refused them."""
    torch = pytest.importorskip("torch")
    import posefw

    hm = np.zeros((2, 17, 64, 48), np.float32)
    hm[:, :, 30, 20] = 1
    c = torch.full((2, 2), 100.0, dtype=torch.float64)
    s = torch.full((2, 2), 50.0, dtype=torch.float64)
    if bad == "nan-scale":
        s[1, 0] = float("nan")
    elif bad == "zero-scale":
        s[1, 1] = 0
    elif bad == "negative-scale":
        s[1, 0] = -5
    else:
        c = torch.ones((2, 2), dtype=torch.bool)
    dec = posefw.create_decoder(name)
    with pytest.raises((ValueError, TypeError), match=re.escape(words)):
        dec.decode(torch.from_numpy(hm) if name == "torch-full" else hm, c, s)
