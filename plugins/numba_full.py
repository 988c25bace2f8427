"""numba-full: the fused DARK decode written in numba.cuda (one block per heatmap).

The same algorithm and operation order as cupy-full, in Python syntax; it also runs under
numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how CI checks it on the CPU.
Outputs are numba device arrays, or torch tensors for torch input; ``.numpy()`` copies.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import framework, is_cuda, to_numpy
from posefw.decoder import Decoder, DecodeResult, check_boxes, check_heatmaps

from .cuda_arrays import device_box_views, device_view, empty_like_framework, stream_pointer
from .cuda_dark_source import ALGORITHM_CODES

#: Register cap for 128-thread blocks: 56 fits 9 blocks per SM, so batch 64 (1,088 blocks) runs
#: in one wave on an H100 (uncapped: 64-72 registers, 7-8 blocks, a second wave).
FULL_GRID_MAX_REGISTERS = 56


def _simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def numba_unavailable() -> str | None:
    try:
        from numba import cuda
    except ImportError:
        return "numba is not installed: pip install 'posefw[gpu]'"
    except Exception as exc:  # noqa: BLE001
        return f"numba failed to import: {exc}"
    try:
        if not cuda.is_available():
            return "numba.cuda sees no CUDA GPU (set NUMBA_ENABLE_CUDASIM=1 to run on the CPU simulator)"
    except Exception as exc:  # noqa: BLE001
        return f"numba.cuda is unusable: {exc}"
    return None


class NumbaFullDecoder(Decoder):
    name = "numba-full"
    graph_safe = True
    device = "cuda"
    #: Block size and register cap; by default 512 threads for grids of at most one block per SM
    #: (latency) and 128 threads capped at 56 registers otherwise (one wave); docs/results/benchmarks-history.md.
    #: flat=False forces the strided kernel even for C-contiguous heatmaps (tests and benchmarks).
    #: blur_staging forces where classic DARK's full blur runs (0 global, 1 shared; default by size).
    options = ("threads", "max_registers", "flat", "blur_staging")

    @classmethod
    def available(cls) -> str | None:
        return numba_unavailable()

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None, *, stream: Any = None) -> DecodeResult:
        n, k, h, w = check_heatmaps(heatmaps)
        fw = framework(heatmaps)
        on_gpu = is_cuda(heatmaps) and not _simulator()
        dev = device_view(heatmaps).device if on_gpu else _current_device()
        with _on_device(dev):
            return self._decode(heatmaps, centers, scales, stream, fw if on_gpu else "numba", dev, (n, k, h, w))

    def _decode(
        self, heatmaps: Any, centers: Any, scales: Any, stream: Any, fw: str, dev: int, shape: tuple[int, int, int, int]
    ) -> DecodeResult:
        from numba import cuda

        n, k, h, w = shape
        if not is_cuda(heatmaps) or _simulator():  # host input: one copy to the device
            dev_hm = cuda.to_device(np.ascontiguousarray(to_numpy(heatmaps)))
        else:
            dev_hm = cuda.as_cuda_array(heatmaps.detach() if fw == "torch" else heatmaps)
        from .cuda_dark_source import THREADS, block_threads, smem_blur_mode
        from .numba_kernels import build_kernel

        if _simulator():
            threads, regs = 32, None
        else:
            threads = int(self.opts.get("threads") or block_threads(n * k, _sm_count(dev)))
            regs = self.opts.get("max_registers", FULL_GRID_MAX_REGISTERS if threads == THREADS else None)
        flat = bool(dev_hm.is_c_contiguous()) and self.opts.get("flat", True)
        if flat:
            dev_hm = dev_hm.reshape(n * k, h * w)
        kern = build_kernel(self.kernel, threads, ALGORITHM_CODES[self.algorithm], regs, flat)
        has_boxes = centers is not None or scales is not None
        dummy = _scratch(dev)
        if has_boxes and is_cuda(centers) and is_cuda(scales) and not _simulator():
            device_box_views(centers, scales, n, dev)
            dc, ds = cuda.as_cuda_array(centers), cuda.as_cuda_array(scales)
        elif has_boxes:
            c, s = check_boxes(centers, scales, n)
            dc, ds = cuda.to_device(c.astype(np.float32)), cuda.to_device(s.astype(np.float32))
        else:
            dc = ds = dummy
        out_fw = fw if fw in ("torch", "numba") else "numba"
        kp_out = empty_like_framework(out_fw, (n, k, 2), dev)
        sc_out = empty_like_framework(out_fw, (n, k), dev)
        if n:
            kp = cuda.as_cuda_array(kp_out) if out_fw == "torch" else kp_out
            sc = cuda.as_cuda_array(sc_out) if out_fw == "torch" else sc_out
            launch_stream = 0
            if not _simulator():
                # torch/CuPy input: the caller's current stream there; numba input: an explicit one or 0.
                view = device_view(dev_hm if fw == "numba" else heatmaps)
                ptr = stream_pointer(stream, view) if fw != "numba" or stream is not None else 0
                launch_stream = cuda.external_stream(ptr) if ptr else 0
            forced = self.opts.get("blur_staging")
            smem = smem_blur_mode(self.algorithm, h, w) if forced is None else int(forced)
            kern[n * k, threads, launch_stream, 4 * h * w if smem else 0](
                dev_hm, k, h, w, kp, sc, dc, ds, has_boxes, smem
            )
        return DecodeResult(kp_out, sc_out)


_SCRATCH: dict[int, Any] = {}


def _scratch(device: int) -> Any:
    """Per-device placeholder for unused box arguments, allocated once (graph capture forbids it)."""
    if device not in _SCRATCH:
        from numba import cuda

        _SCRATCH[device] = cuda.to_device(np.zeros((1, 2), np.float32))
    return _SCRATCH[device]


@functools.cache
def _sm_count(device: int) -> int:
    from numba import cuda

    with cuda.gpus[device]:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def _current_device() -> int:
    if _simulator():
        return 0
    from numba import cuda

    return int(cuda.get_current_device().id)


def _on_device(device: int):
    """numba's context for the heatmaps' GPU (numba launches on its current context)."""
    if _simulator():
        return contextlib.nullcontext()
    from numba import cuda

    return cuda.gpus[device]


@hookimpl
def posefw_register_decoders():
    return [NumbaFullDecoder]
