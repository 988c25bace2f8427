"""Zero-copy views of device arrays from torch, CuPy or numba, and the stream to run on.

GPU decoders read heatmaps in place through their device pointer and strides (nothing is
copied or made contiguous), allocate outputs in the caller's framework, and launch on the
caller's current stream, so they can be captured in the caller's CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from posefw.arrays import framework


@dataclass(frozen=True)
class DeviceView:
    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    dtype: str
    device: int
    framework: str


_TYPESTR = {"<f4": "float32", "<f2": "float16", "<f8": "float64"}


def device_view(x: Any) -> DeviceView:
    """Pointer, shape, element strides, dtype and device id of a CUDA array, without copying."""
    fw = framework(x)
    if fw == "torch":
        return DeviceView(
            x.data_ptr(),
            tuple(x.shape),
            tuple(x.stride()),
            str(x.dtype).removeprefix("torch."),
            int(x.device.index),
            fw,
        )
    if fw == "cupy":
        item = x.dtype.itemsize
        return DeviceView(
            int(x.data.ptr), tuple(x.shape), tuple(s // item for s in x.strides), str(x.dtype), int(x.device.id), fw
        )
    cai = getattr(x, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(f"heatmaps: expected a CUDA array (torch, CuPy, numba) or NumPy, got {type(x).__name__}")
    dtype = _TYPESTR.get(cai["typestr"], cai["typestr"])
    item = np.dtype(cai["typestr"]).itemsize
    shape = tuple(cai["shape"])
    if cai.get("strides") is None:
        strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    else:
        strides = tuple(s // item for s in cai["strides"])
    dev = _numba_device(x)
    return DeviceView(int(cai["data"][0]), shape, strides, dtype, dev, fw)


def _numba_device(x: Any) -> int:
    try:
        from numba import cuda

        return int(cuda.get_current_device().id)
    except Exception:  # noqa: BLE001 - unknown producers: assume the current device
        return 0


def stream_device(stream: Any) -> int | None:
    """The GPU an explicit stream belongs to, where its framework says (None for a raw handle)."""
    dev = getattr(stream, "device", None)  # torch.cuda.Stream
    if getattr(dev, "type", None) == "cuda":
        return int(dev.index)
    dev_id = getattr(stream, "device_id", None)  # CuPy Stream / ExternalStream
    if isinstance(dev_id, int) and dev_id >= 0:
        return dev_id
    ctx = getattr(stream, "context", None)  # numba Stream
    if ctx is not None and hasattr(ctx, "device"):
        return int(ctx.device.id)
    return None


def stream_pointer(stream: Any, view: DeviceView | None) -> int:
    """The raw cudaStream_t to launch on: the explicit ``stream`` or the caller's current one.

    An explicit stream on another GPU than the heatmaps is refused before anything is launched
    (a kernel enqueued there would fail with an opaque invalid-handle error, or worse).
    """
    if stream is not None:
        sdev = stream_device(stream)
        if view is not None and sdev is not None and sdev != view.device:
            raise ValueError(
                f"stream: is on cuda:{sdev} but heatmaps are on cuda:{view.device}; "
                "pass a stream of the heatmaps' device (or none for its current stream)"
            )
        if isinstance(stream, int):
            return stream
        for attr in ("cuda_stream", "ptr"):
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        handle = getattr(stream, "handle", None)
        if handle is not None:
            return int(getattr(handle, "value", handle) or 0)
        raise TypeError(f"stream: expected a torch/CuPy/numba stream or an int handle, got {type(stream).__name__}")
    if view is not None and view.framework == "torch":
        import torch

        return int(torch.cuda.current_stream(view.device).cuda_stream)
    import cupy

    return int(cupy.cuda.get_current_stream(view.device if view is not None else None).ptr)


def empty_like_framework(fw: str, shape: tuple[int, ...], device: int) -> Any:
    """A float32 device array in the caller's framework (torch's allocator is graph-safe)."""
    if fw == "torch":
        import torch

        return torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")
    if fw == "numba":
        from numba import cuda

        return cuda.device_array(shape, dtype=np.float32)
    import cupy

    with cupy.cuda.Device(device):
        return cupy.empty(shape, dtype=cupy.float32)


def check_same_device(name: str, view: DeviceView, device: int) -> None:
    if view.device != device:
        raise ValueError(f"{name}: is on cuda:{view.device} but heatmaps are on cuda:{device}")


def device_box_views(centers: Any, scales: Any, n: int, device: int) -> tuple[DeviceView, DeviceView]:
    """Views of device-resident centers and scales after the shape and same-GPU checks (values
    are not read: that would synchronize)."""
    from posefw.decoder import check_device_boxes

    check_device_boxes(centers, scales, n)
    views = device_view(centers), device_view(scales)
    for name, v in zip(("centers", "scales"), views):
        check_same_device(name, v, device)
    return views
