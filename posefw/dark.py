"""Constants and small pieces of the DARK family shared by every backend.

The formulas are those of ``shared/reference/vitpose-facts.md`` (mmpose 0.x, which ViTPose
ships); docs/decoding.md states them with posefw's documented departures.
"""

from __future__ import annotations

import functools

import numpy as np

#: float32 machine epsilon, added to the DARK-UDP Hessian's diagonal (mmpose's np.finfo(np.float32).eps).
EPS32 = float(np.finfo(np.float32).eps)
#: DARK-UDP clips the blurred map to this range before the log.
UDP_CLIP = (0.001, 50.0)
#: Classic DARK floors the modulated map here before the log.
DARK_FLOOR = 1e-10
#: A sampled blurred value below this may be floored by DARK_FLOOR for some rescale factor;
#: only then is the exact rescale (the full map's blurred maximum) needed. See docs/decoding.md.
DARK_RESCALE_GUARD = 2e-10

# OpenCV's getGaussianKernel uses fixed tables for ksize <= 9 when sigma <= 0.
_SMALL_GAUSSIAN = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
    9: tuple(v / 64.0 for v in (1, 3.25, 7.5, 12.75, 15, 12.75, 7.5, 3.25, 1)),
}


def opencv_sigma(kernel: int) -> float:
    """The sigma OpenCV derives from an odd kernel size when asked for sigma 0 (2.0 for 11)."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


@functools.lru_cache(maxsize=32)
def gaussian_kernel1d(kernel: int) -> np.ndarray:
    """The 1-D weights of ``cv2.GaussianBlur(img, (k, k), 0)`` as float32 (OpenCV's rules)."""
    if kernel in _SMALL_GAUSSIAN:
        w = np.asarray(_SMALL_GAUSSIAN[kernel], dtype=np.float64)
    else:
        sigma = opencv_sigma(kernel)
        x = np.arange(kernel, dtype=np.float64) - (kernel - 1) * 0.5
        w = np.exp(-(x * x) / (2.0 * sigma * sigma))
        w /= w.sum()
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


def reflect101(index: np.ndarray, size: int) -> np.ndarray:
    """Map any integer index into [0, size) by OpenCV's BORDER_REFLECT_101 (repeatedly)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * size - 2
    i = np.mod(index, period)
    return np.where(i >= size, period - i, i)
