"""cupy-partial: the paper's partial integration.

On the GPU: argmax, the Gaussian modulation of the window the Taylor step reads, log and the
finite-difference derivatives. Only nine floats per keypoint (score, argmax, code, five
derivatives) cross to the host, where numpy-cpu's solve and transform finish the job
(compiled into one CPU loop by numba when it is installed: ``partial_host``).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import is_cuda
from posefw.dark import to_result
from posefw.decoder import Decoder, DecodeResult, check_boxes

from .cuda_arrays import DeviceView, device_box_views, device_view, empty_like_framework
from .cuda_dark_source import PARTIAL_WIDTH
from .cupy_common import Launch, cupy_unavailable, pointer
from .partial_host import compiled_finisher, finish_compiled, finish_numpy


class CupyPartialDecoder(Decoder):
    name = "cupy-partial"
    device = "cuda"

    @classmethod
    def available(cls) -> str | None:
        return cupy_unavailable()

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None, *, stream: Any = None) -> DecodeResult:
        call = Launch(heatmaps, None, None, stream)
        n, k = call.n, call.k
        dev = call.view.device
        device_boxes = is_cuda(centers) and is_cuda(scales)
        views = device_box_views(centers, scales, n, dev) if device_boxes else ()
        boxes = None if device_boxes else check_boxes(centers, scales, n)
        if n == 0:
            return to_result(
                np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), boxes, (call.w, call.h), self.udp
            )
        parts = _buffer(("parts", dev, n * k), (n * k, PARTIAL_WIDTH), dev)
        call.run(self.algorithm, self.kernel, 1, 0, 0, pointer(parts))
        # Everything the host needs crosses in one batch of raw async copies and one stream sync.
        copies = [(pointer(parts), _pinned(("parts", dev, n * k), parts.shape))]
        keep: list[Any] = []  # conversions that must outlive the copies below
        for name, arr, view in zip(("centers", "scales"), (centers, scales), views):
            src = _contiguous_float(arr, view, call.stream_ptr, keep)
            copies.append((src.ptr, _pinned((name, dev, n, src.dtype), (n, 2), np.dtype(src.dtype))))
        host = _fetch(copies, call.stream_ptr, dev)
        if device_boxes:
            boxes = check_boxes(host[1], host[2], n)
        run = compiled_finisher()
        if run is None:  # no numba: numpy-cpu's vectorised steps
            return finish_numpy(host[0], self.algorithm, boxes, (call.w, call.h), self.udp, n, k)
        return finish_compiled(run, host[0], self.algorithm, boxes, (call.w, call.h), self.udp, n, k)


# Per-thread buffer caches: threads serving different camera streams must not share them.
_CACHE = threading.local()


def _cached(key: tuple, make) -> Any:
    cache = _CACHE.__dict__.setdefault("buffers", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _pinned(key: tuple, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A cached page-locked host buffer (so the device-to-host copy is truly asynchronous)."""
    import cupyx

    return _cached(("pinned", *key), lambda: cupyx.empty_pinned(shape, dtype=dtype))


def _buffer(key: tuple, shape: tuple[int, ...], device: int) -> Any:
    """A cached device buffer for the per-keypoint output (no allocation per call)."""
    return _cached(("device", *key), lambda: empty_like_framework("cupy", shape, device))


def _contiguous_float(arr: Any, view: DeviceView, stream_ptr: int, keep: list[Any]) -> DeviceView:
    """``view`` of ``arr`` if it is float32/float64 contiguous (N, 2); anything else is converted
    (rare) on the decode's stream, so the copy to the host is ordered after it."""
    if view.dtype in ("float32", "float64") and view.strides == (2, 1):
        return view
    import cupy

    from .cupy_common import external_stream

    with cupy.cuda.Device(view.device), external_stream(stream_ptr, view.device):
        keep.append(cupy.ascontiguousarray(cupy.asarray(arr), dtype=cupy.float64))
    return device_view(keep[-1])


def _fetch(copies: list[tuple[int, np.ndarray]], stream_ptr: int, device: int) -> list[np.ndarray]:
    """Enqueue every device-to-host copy on the decode's stream, wait for that stream once."""
    import cupy

    rt = cupy.cuda.runtime
    with cupy.cuda.Device(device):
        for src, dst in copies:
            rt.memcpyAsync(dst.ctypes.data, src, dst.nbytes, rt.memcpyDeviceToHost, stream_ptr)
        rt.streamSynchronize(stream_ptr)
    return [dst.copy() for _, dst in copies]


@hookimpl
def posefw_register_decoders():
    return [CupyPartialDecoder]
