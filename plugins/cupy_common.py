"""What cupy-full and cupy-partial share: availability, compilation, argument checks, launch."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from posefw.arrays import framework, is_cuda
from posefw.decoder import check_boxes, check_heatmaps

from .cuda_arrays import DeviceView, device_box_views, device_view, stream_pointer
from .cuda_dark_source import ALGORITHM_CODES, block_threads, smem_blur_mode, source


def cupy_unavailable() -> str | None:
    """None when CuPy and a CUDA device are usable, else why not."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed: pip install 'posefw[gpu]' (or the cupy-cudaXXx wheel for your CUDA)"
    except Exception as exc:  # noqa: BLE001 - a broken CuPy install is a reason, not a crash
        return f"cupy failed to import: {exc}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001
        return f"no usable CUDA device: {exc}"
    if n < 1:
        return "no CUDA device is visible"
    return None


@functools.cache
def _module(kernel: int, device: int, threads: int):
    import cupy

    with cupy.cuda.Device(device):
        mod = cupy.RawModule(code=source(kernel, threads), options=("--std=c++17",))
        return mod.get_function("dark_f32"), mod.get_function("dark_f16")


@functools.cache
def sm_count(device: int) -> int:
    import cupy

    return int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])


@functools.lru_cache(maxsize=64)
def external_stream(ptr: int, device: int):
    import cupy

    return cupy.cuda.ExternalStream(ptr, device) if ptr else cupy.cuda.Stream.null


class Launch:
    """One validated call: the heatmap view, boxes on the device, the stream."""

    def __init__(self, heatmaps: Any, centers: Any, scales: Any, stream: Any):
        import cupy

        self.n, self.k, self.h, self.w = check_heatmaps(heatmaps)
        self.keepalive: list[Any] = []
        if not is_cuda(heatmaps):
            # NumPy input: one copy to the current device.
            heatmaps = cupy.asarray(np.asarray(heatmaps))
            self.keepalive.append(heatmaps)
        self.view: DeviceView = device_view(heatmaps)
        self.fw = framework(heatmaps) if self.view.framework != "numpy" else "cupy"
        self.stream_ptr = stream_pointer(stream, self.view)
        self.boxes = self._boxes(centers, scales)

    def _boxes(self, centers: Any, scales: Any) -> tuple[int, int]:
        if centers is None and scales is None:
            return 0, 0
        if is_cuda(centers) and is_cuda(scales):
            views = device_box_views(centers, scales, self.n, self.view.device)
            for name, v in zip(("centers", "scales"), views):
                if v.dtype != "float32" or v.strides != (2, 1):
                    raise TypeError(
                        f"{name}: device boxes must be contiguous float32 (N, 2), got {v.dtype} strides {v.strides}"
                    )
            return views[0].ptr, views[1].ptr
        import cupy

        checked = check_boxes(centers, scales, self.n)
        with cupy.cuda.Device(self.view.device):
            c = cupy.asarray(checked[0], dtype=cupy.float32)
            s = cupy.asarray(checked[1], dtype=cupy.float32)
        self.keepalive += [c, s]
        return int(c.data.ptr), int(s.data.ptr)

    def run(
        self, algorithm: str, kernel: int, mode: int, kp: int, sc: int, parts: int, blur_staging: int | None = None
    ) -> None:
        import cupy

        if self.view.dtype not in ("float32", "float16"):
            raise TypeError(f"heatmaps: expected float32 or float16, got {self.view.dtype}")
        threads = block_threads(self.n * self.k, sm_count(self.view.device))
        f32, f16 = _module(kernel, self.view.device, threads)
        fn = f32 if self.view.dtype == "float32" else f16
        sn, sk, sh, sw = self.view.strides
        smem = smem_blur_mode(algorithm, self.h, self.w) if blur_staging is None else int(blur_staging)
        args = (
            np.uint64(self.view.ptr),
            np.int64(sn),
            np.int64(sk),
            np.int64(sh),
            np.int64(sw),
            np.int32(self.n),
            np.int32(self.k),
            np.int32(self.h),
            np.int32(self.w),
            np.int32(ALGORITHM_CODES[algorithm]),
            np.int32(mode),
            np.uint64(kp),
            np.uint64(sc),
            np.uint64(parts),
            np.uint64(self.boxes[0]),
            np.uint64(self.boxes[1]),
            np.int32(smem),
        )
        with cupy.cuda.Device(self.view.device):
            fn(
                (self.n * self.k,),
                (threads,),
                args,
                stream=external_stream(self.stream_ptr, self.view.device),
                shared_mem=4 * self.h * self.w if smem else 0,
            )


def pointer(x: Any) -> int:
    return device_view(x).ptr
