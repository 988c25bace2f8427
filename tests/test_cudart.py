"""posefw.cudart without a GPU: finding the loaded runtime in a memory map, and saying why not."""

from __future__ import annotations

import pytest

from posefw import cudart
from posefw.testing import cuda_reason

MAPS = """\
7f00a000-7f00b000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f10a000-7f10b000 r-xp 00000000 08:01 456 /site/nvidia/cu13/lib/libcudart.so.13
7f20a000-7f20b000 rw-p 00000000 00:00 0
7f30a000-7f30b000 r-xp 00000000 08:01 789 /site/torch/lib/libcudart_static_helper.txt
"""


def test_loaded_path_finds_the_mapped_runtime():
    assert cudart.loaded_path(MAPS) == "/site/nvidia/cu13/lib/libcudart.so.13"


def test_loaded_path_ignores_anonymous_maps_and_folders_named_like_it():
    maps = "7f-7f rw-p 00000000 00:00 0\n7f-7f r-xp 0 08:01 1 /libcudart.so.dir/libc.so.6\n"
    assert cudart.loaded_path(maps) is None


def test_without_cuda_the_runtime_is_none_and_says_why():
    import sys

    if not cuda_reason():
        pytest.skip("a GPU machine: the runtime is loaded there (tests/test_pipeline_gpu.py)")
    if "torch" in sys.modules and sys.modules["torch"].version.cuda is not None:
        pytest.skip("a CUDA build of torch, loaded here without a device")
    assert cudart.runtime() is None
    why = cudart.unavailable()
    assert why and "libcudart" in why
