"""cupy-partial: the paper's partial integration.

On the GPU: argmax, the Gaussian modulation of the window the Taylor step reads, log and the
finite-difference derivatives. Only nine floats per keypoint (score, argmax, code, five
derivatives) cross to the host, where numpy-cpu's own solve and transform finish the job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import framework
from posefw.decoder import Decoder, DecodeResult, check_boxes, check_device_boxes

from .cuda_arrays import empty_like_framework
from .cuda_dark_source import CODE_NONFINITE, CODE_REFINE, CODE_SKIP, PARTIAL_WIDTH
from .cupy_common import Launch, cupy_unavailable, pointer
from .numpy_cpu import dark_step, finish, udp_step


def finish_on_host(parts: np.ndarray, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint GPU output (M, 9) -> heatmap-pixel keypoints (M, 2) and scores (M,)."""
    score = parts[:, 0].copy()
    code = parts[:, 3]
    x, y = parts[:, 1], parts[:, 2]
    if algorithm == "dark-udp":
        out = udp_step(x, y, parts[:, 4:9])
    elif algorithm == "dark":
        out = dark_step(x, y, parts[:, 4:9])
    else:
        out = parts[:, 1:3] + np.sign(parts[:, 4:6]) * np.float32(0.25)
    keep = code != CODE_REFINE  # argmax kept as is (classic DARK at the border)
    out[keep] = parts[keep, 1:3]
    out[code == CODE_SKIP] = -1.0
    bad = code == CODE_NONFINITE
    out[bad] = np.nan
    score[bad] = np.nan
    return out, score


def _host_boxes(centers: Any, scales: Any, n: int):
    """Boxes on the host; device tensors come over in one copy (one sync) rather than two."""
    if centers is None and scales is None:
        return None
    if framework(centers) == "torch" and framework(scales) == "torch" and centers.is_cuda and scales.is_cuda:
        import torch

        check_device_boxes(centers, scales, n)
        both = torch.cat([centers, scales], 1).double().cpu().numpy()
        centers, scales = both[:, :2], both[:, 2:]
    return check_boxes(centers, scales, n)


class CupyPartialDecoder(Decoder):
    name = "cupy-partial"
    device = "cuda"

    @classmethod
    def available(cls) -> str | None:
        return cupy_unavailable()

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None, *, stream: Any = None) -> DecodeResult:
        call = Launch(heatmaps, None, None, stream)
        n, k = call.n, call.k
        boxes = _host_boxes(centers, scales, n)
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
