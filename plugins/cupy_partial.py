"""cupy-partial: the paper's partial integration.

On the GPU: argmax, the Gaussian modulation of the window the Taylor step reads, log and the
finite-difference derivatives. Only nine floats per keypoint (score, argmax, code, five
derivatives) cross to the host, where numpy-cpu's own solve and transform finish the job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import to_numpy
from posefw.decoder import Decoder, DecodeResult, check_boxes

from .cuda_arrays import empty_like_framework
from .cuda_dark_source import CODE_NONFINITE, CODE_REFINE, CODE_SKIP, PARTIAL_WIDTH
from .cupy_common import Launch, cupy_unavailable, pointer
from .numpy_cpu import dark_step, finish, udp_step


def finish_on_host(parts: np.ndarray, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint GPU output (M, 9) -> heatmap-pixel keypoints (M, 2) and scores (M,)."""
    score, x, y, code = parts[:, 0].copy(), parts[:, 1], parts[:, 2], parts[:, 3].astype(np.int64)
    d = parts[:, 4:9]
    out = np.stack([x, y], axis=1).astype(np.float32)
    out[code == CODE_SKIP] = -1.0
    r = np.flatnonzero(code == CODE_REFINE)
    if r.size:
        xi, yi = x[r].astype(np.int64), y[r].astype(np.int64)
        if algorithm == "dark-udp":
            out[r] = udp_step(xi, yi, d[r])
        elif algorithm == "dark":
            out[r] = dark_step(xi, yi, d[r])
        else:
            out[r, 0] += np.sign(d[r, 0]).astype(np.float32) * np.float32(0.25)
            out[r, 1] += np.sign(d[r, 1]).astype(np.float32) * np.float32(0.25)
    bad = code == CODE_NONFINITE
    out[bad] = np.nan
    score[bad] = np.nan
    return out, score


class CupyPartialDecoder(Decoder):
    name = "cupy-partial"
    device = "cuda"

    @classmethod
    def available(cls) -> str | None:
        return cupy_unavailable()

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None, *, stream: Any = None) -> DecodeResult:
        boxes = None
        if centers is not None or scales is not None:
            boxes = check_boxes(to_numpy(centers) if centers is not None else None,
                                to_numpy(scales) if scales is not None else None,
                                int(heatmaps.shape[0]) if hasattr(heatmaps, "shape") else 0)
        call = Launch(heatmaps, None, None, stream)
        n, k = call.n, call.k
        if n == 0:
            return DecodeResult(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32))
        parts = empty_like_framework("cupy", (n * k, PARTIAL_WIDTH), call.view.device)
        call.run(self.algorithm, self.kernel, 1, 0, 0, pointer(parts))
        host = _to_host(parts, call.stream_ptr, call.view.device)
        coords, scores = finish_on_host(host, self.algorithm)
        return finish(coords.reshape(n, k, 2), scores.reshape(n, k), boxes, (call.w, call.h), self.udp)


_PINNED: dict[tuple[int, int], np.ndarray] = {}


def _to_host(parts, stream_ptr: int, device: int) -> np.ndarray:
    """Async copy into a cached pinned buffer, then wait for that stream only."""
    import cupyx

    from .cupy_common import _external_stream

    key = (device, parts.shape[0])
    if key not in _PINNED:
        _PINNED[key] = cupyx.empty_pinned(parts.shape, dtype=np.float32)
    host = _PINNED[key]
    stream = _external_stream(stream_ptr, device)
    parts.get(stream=stream, out=host)
    stream.synchronize()
    return host.copy()


@hookimpl
def posefw_register_decoders():
    return [CupyPartialDecoder]
