"""Stream selection for the GPU decoders (pure Python: runs without a GPU)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from posefw.plugins.cuda_arrays import DeviceView, stream_device, stream_pointer

VIEW_ON_1 = DeviceView(
    ptr=1, shape=(1, 17, 64, 48), strides=(52224, 3072, 48, 1), dtype="float32", device=1, framework="torch"
)


def torch_like(index, handle):
    return SimpleNamespace(device=SimpleNamespace(type="cuda", index=index), cuda_stream=handle)


def test_stream_device_from_each_framework():
    assert stream_device(torch_like(3, 7)) == 3
    assert stream_device(SimpleNamespace(device_id=2, ptr=9)) == 2  # CuPy
    assert stream_device(SimpleNamespace(context=SimpleNamespace(device=SimpleNamespace(id=1)), handle=5)) == 1  # numba
    assert stream_device(1234) is None  # a raw handle says nothing


def test_explicit_stream_on_another_gpu_is_refused_before_launch():
    with pytest.raises(ValueError, match=r"stream: is on cuda:0 but heatmaps are on cuda:1"):
        stream_pointer(torch_like(0, 7), VIEW_ON_1)
    assert stream_pointer(torch_like(1, 7), VIEW_ON_1) == 7
    assert stream_pointer(42, VIEW_ON_1) == 42
