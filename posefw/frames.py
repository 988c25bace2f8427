"""What the pipeline accepts as a frame and as a frame's boxes, checked once at the door.

A frame is RGB uint8, on the host (NumPy (H, W, 3), or a CPU torch tensor) or on a GPU (a torch
CUDA tensor (H, W, 3) or (3, H, W) as ``decode_jpeg`` returns, a CuPy array, anything with
``__dlpack__``). Device frames are read in place: :class:`Frame` keeps the array, its size and
its strides, which is all the crop kernel needs. Anything else is refused with the frame's
index and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from posefw.arrays import dtype_name, framework

_UINT8, _FLOAT64 = np.dtype(np.uint8), np.dtype(np.float64)


@dataclass
class Frame:
    """One checked frame: ``array`` is NumPy on the host or a torch tensor on ``device``."""

    array: Any
    height: int
    width: int
    strides: tuple[int, int, int]  # bytes between rows, columns, channels
    device: str  # "cpu" or "cuda:N"

    @property
    def nbytes(self) -> int:
        return self.height * self.width * 3

    def host(self) -> np.ndarray:
        """(H, W, 3) uint8 on the host (a copy only for device frames)."""
        if isinstance(self.array, np.ndarray):
            return self.array
        a = self.array
        if a.shape[0] == 3 and a.shape[-1] != 3:
            a = a.permute(1, 2, 0)
        return a.cpu().numpy()


def _layout(shape: tuple[int, ...], strides: tuple[int, ...], index: int, dt: str) -> tuple[int, int, tuple]:
    if dt != "uint8":
        hint = "scale to 0..255 and cast to uint8" if dt.startswith(("float", "bfloat")) else "convert to uint8"
        raise ValueError(f"frame {index}: expected RGB uint8, got {dt} ({hint})")
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1):
        raise ValueError(
            f"frame {index}: expected RGB (H, W, 3), got grayscale {shape} "
            "(repeat it to 3 channels, e.g. np.repeat(frame[..., None], 3, -1))"
        )
    if len(shape) == 3 and shape[-1] == 4:
        raise ValueError(f"frame {index}: expected RGB (H, W, 3), got RGBA {shape} (drop alpha: frame[..., :3])")
    if len(shape) == 3 and shape[-1] == 3:
        return shape[0], shape[1], (strides[0], strides[1], strides[2])
    if len(shape) == 3 and shape[0] == 3:  # CHW, as torchvision decodes
        return shape[1], shape[2], (strides[1], strides[2], strides[0])
    raise ValueError(f"frame {index}: expected RGB uint8 (H, W, 3) or (3, H, W), got shape {shape}")


def as_frame(x: Any, index: int) -> Frame:
    """Check one frame; the error names ``index`` and what was expected."""
    if type(x) is np.ndarray and x.dtype == _UINT8 and x.ndim == 3 and x.shape[2] == 3 and x.size:
        st = x.strides  # the common case, on a one-box call's critical path: ~1 us, not ~3
        return Frame(x, x.shape[0], x.shape[1], (st[0], st[1], st[2]), "cpu")
    fw = framework(x)
    if fw == "numpy":
        dt = "uint8" if x.dtype == np.uint8 else str(x.dtype)  # str(dtype) costs ~15 us a frame
        h, w, st = _layout(x.shape, x.strides, index, dt)
        if h < 1 or w < 1:
            raise ValueError(f"frame {index}: empty image of shape {x.shape}")
        return Frame(x, h, w, st, "cpu")
    if fw != "torch" and (hasattr(x, "__dlpack__") or hasattr(x, "__cuda_array_interface__")):
        import torch

        x = torch.from_dlpack(x) if hasattr(x, "__dlpack__") else torch.as_tensor(x, device="cuda")
        fw = "torch"
    if fw != "torch":
        raise TypeError(f"frame {index}: expected a NumPy array, torch tensor or DLPack array, got {type(x).__name__}")
    size = x.element_size()
    h, w, st = _layout(tuple(x.shape), tuple(s * size for s in x.stride()), index, dtype_name(x))
    if h < 1 or w < 1:
        raise ValueError(f"frame {index}: empty image of shape {tuple(x.shape)}")
    if not x.is_cuda:
        arr = x.numpy()
        if arr.shape[0] == 3 and arr.shape[-1] != 3:
            arr = arr.transpose(1, 2, 0)
        return Frame(arr, h, w, (arr.strides[0], arr.strides[1], arr.strides[2]), "cpu")
    return Frame(x, h, w, st, str(x.device))


def as_boxes(boxes: Any, index: int) -> np.ndarray:
    """One frame's boxes as (N, 4) float64 x, y, w, h: a list, array or tensor; one box may be (4,).

    A score column is refused rather than misread: (N, 5) is not silently reshaped into boxes.
    """
    if type(boxes) is np.ndarray and boxes.dtype == _FLOAT64 and boxes.ndim == 2 and boxes.shape[1] == 4:
        return boxes  # already what is asked for
    if framework(boxes) == "torch":
        boxes = boxes.detach().cpu().numpy()
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"boxes[{index}]: expected (N, 4) numbers x, y, w, h: {exc}") from None
    if b.ndim == 1 and b.size in (0, 4):
        b = b.reshape(-1, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        hint = " (drop the score column: boxes[:, :4])" if b.ndim == 2 and b.shape[1] == 5 else ""
        raise ValueError(f"boxes[{index}]: expected shape (N, 4) as x, y, w, h, got {b.shape}{hint}")
    return b
