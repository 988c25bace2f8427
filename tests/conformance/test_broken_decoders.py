"""The conformance suite catches broken decoders, each with a message that points at the defect."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from posefw.conformance import numeric
from posefw.plugins.numpy_cpu import NumpyCPUDecoder

from posefw import dark
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
        return dark.to_result(kp, res.scores, None, (w, h), self.udp)


class NoRescale(NumpyCPUDecoder):
    """Classic DARK without the rescale to the original maximum before the log."""

    lock = threading.Lock()  # the threads family calls it from 4 threads: patch and restore one at a time

    def decode(self, heatmaps, centers=None, scales=None):
        with self.lock:
            saved = dark.DARK_RESCALE_GUARD
            dark.DARK_RESCALE_GUARD = -1.0  # never rescale
            try:
                return super().decode(heatmaps, centers, scales)
            finally:
                dark.DARK_RESCALE_GUARD = saved


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


class OffBeyond100(NumpyCPUDecoder):
    """Right for small batches, 5 px off once a call holds more than 100 crops."""

    def decode(self, heatmaps, centers=None, scales=None):
        res = super().decode(heatmaps, centers, scales)
        if res.keypoints.shape[0] <= 100:
            return res
        return DecodeResult((res.keypoints + np.float32(5)).astype(np.float32), res.scores)


class IgnoresKernel(NumpyCPUDecoder):
    """Accepts ``kernel`` and always blurs with 11."""

    def __init__(self, algorithm="dark-udp", kernel=11, **options):
        super().__init__(algorithm, 11, **options)


class WritesIntoInput(NumpyCPUDecoder):
    """Clips the caller's heatmaps in place."""

    def decode(self, heatmaps, centers=None, scales=None):
        if isinstance(heatmaps, np.ndarray) and heatmaps.flags.writeable:
            np.maximum(heatmaps, 0, out=heatmaps, where=np.isfinite(heatmaps))
        return super().decode(heatmaps, centers, scales)


class SharedState(NumpyCPUDecoder):
    """Keeps the call's heatmaps on the instance: wrong as soon as two threads share it."""

    def decode(self, heatmaps, centers=None, scales=None):
        import time

        self._current = heatmaps
        time.sleep(0.002)
        return super().decode(self._current, centers, scales)


BROKEN = [
    (BlurredArgmax, ("dark-udp",), "scores", "raw heatmap maximum"),
    (LastTie, ("argmax",), "keypoints", "first maximum in row-major"),
    (NoRescale, ("dark",), "keypoints", "rescale"),
    (SwapXY, ("dark-udp",), "keypoints", "x and y are swapped"),
    (HalfPixel, ("dark-udp",), "keypoints", "constant shift of (+0.5000, +0.5000)"),
    (NoUdpScale, ("dark-udp",), "transform", "size was used"),
    (DropsNaN, ("dark-udp",), "shape", "rows were dropped"),
    (OffBeyond100, ("dark-udp",), "keypoints", "constant shift of (+5.0000, +5.0000)"),
    (IgnoresKernel, ("dark",), "keypoints", "kernel=7 option must change the blur"),
    (WritesIntoInput, ("dark-udp",), "no-mutation", "wrote into the caller's heatmaps"),
    (SharedState, ("dark-udp",), "thread-safety", "threads share one decoder"),
]


@pytest.mark.parametrize("cls, algos, check, words", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_broken_decoder_is_caught(cls, algos, check, words):
    results = numeric.run(lambda **kw: cls(**kw), algos)
    failed = [r for r in results if not r.passed]
    assert failed, f"{cls.__name__} passed conformance"
    hits = [r for r in failed if r.check == check and words in r.message]
    assert hits, f"{cls.__name__}: no {check!r} failure mentioning {words!r}; got " + "; ".join(
        f"{r.case}/{r.check}: {r.message[:160]}" for r in failed[:6]
    )
    # every failure is reproducible from the report
    listed = [f for r in failed for f in r.failures]
    if check not in ("shape", "no-mutation", "thread-safety"):
        assert listed and all(f.seed == 0 and f.case for f in listed)


def test_reference_passes_its_own_suite():
    results = numeric.run(lambda **kw: NumpyCPUDecoder(**kw), ("dark-udp", "dark", "argmax"))
    assert all(r.passed for r in results)


def test_zero_checks_is_a_failure_and_unknown_families_are_named():
    with pytest.raises(ValueError, match="families: unknown \\['realistc'\\]; known: realistic"):
        numeric.run(lambda **kw: NumpyCPUDecoder(**kw), ("dark-udp",), families={"realistc"})
    assert numeric.summary([])["passed"] is False


def test_transform_is_checked_without_coco_data(monkeypatch, tmp_path):
    """The numeric suite checks the transform back to the image on its own boxes: a decoder that
    transforms wrongly fails even where the COCO data (AP parity) is absent."""
    monkeypatch.setenv("POSEFW_DATA", str(tmp_path))
    results = numeric.run(lambda **kw: NoUdpScale(**kw), ("dark-udp",), families={"realistic"})
    assert any(r.check == "transform" and not r.passed for r in results)
