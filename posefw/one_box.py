"""One box's geometry in Python floats: its check, centre and scale, crop matrix and read window.

A call with a few boxes is latency-bound, and NumPy costs 1-2 us an operation whatever the
array's size: the vectorised functions (:func:`posefw.preprocess.box_checks`,
:func:`posefw.transforms.box_to_center_scale`, :func:`posefw.crop_kernel.crop_matrices` and
:func:`~posefw.crop_kernel.read_windows`) made a one-box call's planning 0.16 ms against a
0.46 ms graph. This is their arithmetic for one box, operation for operation in the same order,
so the doubles are the same (CPython's floats are IEEE doubles without fused multiply-adds, as
NumPy's element-wise operations are); tests/test_one_box.py holds the two to equality. It takes
about 5 us a box.
"""

from __future__ import annotations

import math

from posefw.crop_kernel import WINDOW_MARGIN
from posefw.preprocess import MAX_BOX_FACTOR, MIN_BOX_SIDE
from posefw.transforms import INPUT_SIZE

PADDING = 1.25


def box_code(x: float, y: float, w: float, h: float, height: int, width: int) -> int:
    """``box_checks``' code for one box: 0 valid, 1 non-finite, 2 empty, 3 too large, 4 outside."""
    limit = MAX_BOX_FACTOR * float(max(height, width))
    small = MIN_BOX_SIDE
    if w >= small and h >= small and w <= limit and h <= limit and x < width and y < height and x + w > 0 and y + h > 0:
        return 0
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return 1
    if not (w >= small and h >= small):
        return 2
    return 3 if not (w <= limit and h <= limit) else 4


def center_scale(x: float, y: float, w: float, h: float, size=INPUT_SIZE) -> tuple[float, float, float, float]:
    """``box_to_center_scale`` for one box: cx, cy, sw, sh."""
    aspect = size[0] / size[1]
    cx, cy = x + w * 0.5, y + h * 0.5
    tall_w = h * aspect
    if w > tall_w:
        return cx, cy, w / 1.0 * PADDING, w / aspect * PADDING
    return cx, cy, tall_w * PADDING, h * 1.0 * PADDING


def crop_matrix(cx: float, cy: float, sw: float, sh: float, udp: bool, size=INPUT_SIZE) -> tuple[float, ...]:
    """``crop_matrices`` for one box: the crop -> image matrix, row-major (6 values)."""
    ow, oh = float(size[0]), float(size[1])
    if udp:
        fx, fy = (ow - 1.0) / sw, (oh - 1.0) / sh
        tx, ty = fx * (-cx + 0.5 * sw), fy * (-cy + 0.5 * sh)
    else:
        fx = fy = ow / sw
        tx, ty = ow * 0.5 - fx * cx, oh * 0.5 - fx * cy
    det = fx * fy
    inv_det = 1.0 / det if det != 0 else 0.0
    a11, a22 = fy * inv_det, fx * inv_det
    return a11, 0.0, -a11 * tx, 0.0, a22, -a22 * ty


def read_window(m: tuple[float, ...], size=INPUT_SIZE) -> tuple[int, int, int, int]:
    """``read_windows`` for one of :func:`crop_matrix`'s crops, before clipping to its frame:
    y0, y1, x0, x1. Without rotation (``m[1] == m[3] == 0``) a corner's ``m[0] u + 0 v + m[2]``
    is ``m[0] u + m[2]`` to the bit, and two corners bound each axis: the first and the last
    column (row), as ``m[0]`` and ``m[4]`` are positive (the box's sides are)."""
    ow, oh = size
    return (
        math.floor(m[5]) - WINDOW_MARGIN,
        math.floor(m[4] * (oh - 1) + m[5]) + WINDOW_MARGIN + 2,
        math.floor(m[2]) - WINDOW_MARGIN,
        math.floor(m[0] * (ow - 1) + m[2]) + WINDOW_MARGIN + 2,
    )


def clip_window(lo_y: int, hi_y: int, lo_x: int, hi_x: int, height: int, width: int) -> tuple[int, int, int, int]:
    """A window cut to its frame, as ``read_windows`` cuts it (possibly empty): each start into
    [0, size], each end into [start, size] (conditionals: min/max calls cost more here)."""
    y0 = 0 if lo_y < 0 else height if lo_y > height else lo_y
    x0 = 0 if lo_x < 0 else width if lo_x > width else lo_x
    y1 = y0 if hi_y < y0 else height if hi_y > height else hi_y
    x1 = x0 if hi_x < x0 else width if hi_x > width else hi_x
    return y0, y1, x0, x1
