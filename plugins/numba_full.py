"""numba-full: the fused DARK decode written in numba.cuda (one block per heatmap).

The same algorithm and operation order as cupy-full, in Python syntax; it also runs under
numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how CI checks it on the CPU.
Outputs are numba device arrays, or torch tensors for torch input; ``.numpy()`` copies.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import framework, is_cuda, to_numpy
from posefw.decoder import Decoder, DecodeResult, check_boxes, check_device_boxes, check_heatmaps

from .cuda_arrays import empty_like_framework, stream_pointer
from .cuda_dark_source import ALGORITHM_CODES

DEFAULT_THREADS = 128
DEFAULT_MAX_REGISTERS: int | None = None


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
    device = "cuda"
    #: Block size and register cap: at 72 registers a 128-thread block fits 7 per SM and batch 64
    #: (1088 blocks) needs a second wave on an H100; see docs/benchmarks.md.
    options = ("threads", "max_registers")

    @classmethod
    def available(cls) -> str | None:
        return numba_unavailable()

    @staticmethod
    def _dev(heatmaps: Any, fw: str) -> int:
        if fw == "torch" and is_cuda(heatmaps):
            return int(heatmaps.device.index)
        return 0

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None, *, stream: Any = None) -> DecodeResult:
        from numba import cuda

        n, k, h, w = check_heatmaps(heatmaps)
        fw = framework(heatmaps)
        if _simulator() or not is_cuda(heatmaps):
            dev_hm = cuda.to_device(np.ascontiguousarray(to_numpy(heatmaps)))
            fw = "numba"
        else:
            dev_hm = cuda.as_cuda_array(heatmaps.detach() if fw == "torch" else heatmaps)
        threads = 32 if _simulator() else int(self.opts.get("threads", DEFAULT_THREADS))
        from .numba_kernels import build_kernel

        kern = build_kernel(self.kernel, threads, None if _simulator() else self.opts.get("max_registers", DEFAULT_MAX_REGISTERS))
        has_boxes = centers is not None or scales is not None
        dev = self._dev(heatmaps, fw)
        dummy = _scratch(dev)
        if has_boxes and is_cuda(centers) and is_cuda(scales) and not _simulator():
            check_device_boxes(centers, scales, n)
            dc, ds = cuda.as_cuda_array(centers), cuda.as_cuda_array(scales)
        elif has_boxes:
            c, s = check_boxes(centers, scales, n)
            dc, ds = cuda.to_device(c.astype(np.float32)), cuda.to_device(s.astype(np.float32))
        else:
            dc = ds = dummy[0]
        out_fw = fw if fw in ("torch", "numba") else "numba"
        kp_out = empty_like_framework(out_fw, (n, k, 2), dev)
        sc_out = empty_like_framework(out_fw, (n, k), dev)
        if n:
            kp = cuda.as_cuda_array(kp_out) if out_fw == "torch" else kp_out
            sc = cuda.as_cuda_array(sc_out) if out_fw == "torch" else sc_out
            launch_stream = 0
            if not _simulator():
                ptr = _torch_stream(dev) if (stream is None and fw == "torch") else stream_pointer(stream, None)
                launch_stream = cuda.external_stream(ptr) if ptr else 0
            kern[n * k, threads, launch_stream](dev_hm, ALGORITHM_CODES[self.algorithm], 0, kp, sc, dummy[1], dc, ds, has_boxes)
        return DecodeResult(kp_out, sc_out)


_SCRATCH: dict[int, tuple[Any, Any]] = {}


def _scratch(device: int) -> tuple[Any, Any]:
    """Per-device placeholders for unused kernel arguments, allocated once (graph capture forbids it)."""
    if device not in _SCRATCH:
        from numba import cuda

        _SCRATCH[device] = (cuda.to_device(np.zeros((1, 2), np.float32)), cuda.device_array((1, 9), np.float32))
    return _SCRATCH[device]


def _torch_stream(device: int) -> int:
    import torch

    return int(torch.cuda.current_stream(device).cuda_stream)


@hookimpl
def posefw_register_decoders():
    return [NumbaFullDecoder]
