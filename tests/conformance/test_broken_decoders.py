"""The conformance suite catches broken decoders, each with a message that points at the defect."""

from __future__ import annotations

import numpy as np
import pytest
from posefw.conformance import numeric
from posefw.plugins import numpy_cpu
from posefw.plugins.numpy_cpu import NumpyCPUDecoder

from posefw.dark import gaussian_kernel1d
from posefw.decoder import DecodeResult, check_heatmaps


def _blur_full(hm: np.ndarray, kernel: int) -> np.ndarray:
    g = gaussian_kernel1d(kernel)
    r = (kernel - 1) // 2
    p = np.pad(hm, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    h, w = hm.shape[2:]
    hor = sum(g[j] * p[..., :, j : j + w] for j in range(kernel))
    return sum(g[i] * hor[..., i : i + h, :] for i in range(kernel)).astype(np.float32)


class BlurredArgmax(NumpyCPUDecoder):
    """Takes the argmax (and score) on the blurred map."""

    def decode(self, heatmaps, centers=None, scales=None):
        return super().decode(_blur_full(np.asarray(heatmaps, np.float32), self.kernel), centers, scales)


class LastTie(NumpyCPUDecoder):
    """Breaks ties toward the last maximum."""

    def decode(self, heatmaps, centers=None, scales=None):
        hm = np.asarray(heatmaps, np.float32)
        flipped = np.ascontiguousarray(hm[:, :, ::-1, ::-1])
        res = super().decode(flipped)
        n, k, h, w = hm.shape
        kp = res.keypoints.copy()
        live = kp[..., 0] >= 0
        kp[..., 0] = np.where(live, w - 1 - kp[..., 0], kp[..., 0])
        kp[..., 1] = np.where(live, h - 1 - kp[..., 1], kp[..., 1])
        return numpy_cpu.finish(kp, res.scores, None, (w, h), self.udp)


class NoRescale(NumpyCPUDecoder):
    """Classic DARK without the rescale to the original maximum before the log."""

    def decode(self, heatmaps, centers=None, scales=None):
        saved = numpy_cpu.DARK_RESCALE_GUARD
        numpy_cpu.DARK_RESCALE_GUARD = -1.0  # never rescale
        try:
            return super().decode(heatmaps, centers, scales)
        finally:
            numpy_cpu.DARK_RESCALE_GUARD = saved


class SwapXY(NumpyCPUDecoder):
    def decode(self, heatmaps, centers=None, scales=None):
        res = super().decode(heatmaps, centers, scales)
        return DecodeResult(np.ascontiguousarray(res.keypoints[..., ::-1]), res.scores)


class HalfPixel(NumpyCPUDecoder):
    def decode(self, heatmaps, centers=None, scales=None):
        res = super().decode(heatmaps, centers, scales)
        kp = res.keypoints + np.where(res.keypoints >= 0, np.float32(0.5), np.float32(0))
        return DecodeResult(kp.astype(np.float32), res.scores)


class NoUdpScale(NumpyCPUDecoder):
    """Transforms back with scale / size even for DARK-UDP."""

    @property
    def udp(self):
        return False


class DropsNaN(NumpyCPUDecoder):
    """Drops crops that contain a non-finite keypoint."""

    def decode(self, heatmaps, centers=None, scales=None):
        check_heatmaps(heatmaps)
        res = super().decode(heatmaps, centers, scales)
        keep = ~np.isnan(res.scores).any(axis=1)
        return DecodeResult(res.keypoints[keep], res.scores[keep])


BROKEN = [
    (BlurredArgmax, ("dark-udp",), "scores", "raw heatmap maximum"),
    (LastTie, ("argmax",), "keypoints", "first maximum in row-major"),
    (NoRescale, ("dark",), "keypoints", "rescale"),
    (SwapXY, ("dark-udp",), "keypoints", "x and y are swapped"),
    (HalfPixel, ("dark-udp",), "keypoints", "constant shift of (+0.5000, +0.5000)"),
    (NoUdpScale, ("dark-udp",), "transform", "size was used"),
    (DropsNaN, ("dark-udp",), "shape", "rows were dropped"),
]


@pytest.mark.parametrize("cls, algos, check, words", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_broken_decoder_is_caught(cls, algos, check, words):
    results = numeric.run(lambda **kw: cls(**kw), algos)
    failed = [r for r in results if not r.passed]
    assert failed, f"{cls.__name__} passed conformance"
    hits = [r for r in failed if r.check == check and words in r.message]
    assert hits, f"{cls.__name__}: no {check!r} failure mentioning {words!r}; got " + "; ".join(
        f"{r.case}/{r.check}: {r.message[:160]}" for r in failed[:6])
    # every failure is reproducible from the report
    listed = [f for r in failed for f in r.failures]
    if check != "shape":
        assert listed and all(f.seed == 0 and f.case for f in listed)


def test_reference_passes_its_own_suite():
    results = numeric.run(lambda **kw: NumpyCPUDecoder(**kw), ("dark-udp", "dark", "argmax"))
    assert all(r.passed for r in results)
