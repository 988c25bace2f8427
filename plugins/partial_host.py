"""cupy-partial's host half: the 2x2 solve, the edge/NaN rules and the image transform.

Two implementations of the same arithmetic: numpy-cpu's own vectorised steps (the reference,
used when numba is absent) and one numba-compiled CPU loop over keypoints. At batch 64 the NumPy
version is ~60 small array operations, 140 µs on the H100 machine's host, over half of
cupy-partial's call; the loop does the same float32/float64 operations in the same order in
a few µs. ``tests/plugins/test_partial_host.py`` checks that both give identical bits.
"""

from __future__ import annotations

import functools

import numpy as np

from posefw.dark import EPS32, dark_step, to_result, udp_step

from .cuda_dark_source import ALGORITHM_CODES, CODE_NONFINITE, CODE_REFINE, CODE_SKIP


def finish_numpy(parts: np.ndarray, algorithm: str, boxes, heatmap_size: tuple[int, int], udp: bool, n: int, k: int):
    """Per-keypoint GPU output (M, 9) -> DecodeResult, with numpy-cpu's vectorised steps."""
    score = parts[:, 0].copy()
    code = parts[:, 3]
    x, y = parts[:, 1], parts[:, 2]
    if algorithm == "dark-udp":
        out = udp_step(x, y, parts[:, 4:9])
    elif algorithm == "dark":
        out = dark_step(x, y, parts[:, 4:9])
    else:
        out = parts[:, 1:3] + np.sign(parts[:, 4:6]) * np.float32(0.25)
    keep = code != CODE_REFINE  # argmax kept as is (classic DARK at the border)
    out[keep] = parts[keep, 1:3]
    out[code == CODE_SKIP] = -1.0
    bad = code == CODE_NONFINITE
    out[bad] = np.nan
    score[bad] = np.nan
    return to_result(out.reshape(n, k, 2), score.reshape(n, k), boxes, heatmap_size, udp)


_UDP, _DARK = ALGORITHM_CODES["dark-udp"], ALGORITHM_CODES["dark"]
_EPS = EPS32
_F32 = np.float32


def finish_loop(parts, algo, centers, scales, has_boxes, k, w, h, udp, kp, sc):
    """One keypoint at a time, the arithmetic of ``finish_numpy`` in its order (numba compiles it)."""
    f32 = _F32
    for i in range(parts.shape[0]):
        x, y, code = parts[i, 1], parts[i, 2], int(parts[i, 3])
        fx, fy, score = x, y, parts[i, 0]
        if code == CODE_NONFINITE:
            fx, fy, score = f32(np.nan), f32(np.nan), f32(np.nan)
        elif code == CODE_SKIP:
            fx, fy = f32(-1.0), f32(-1.0)
        elif code == CODE_REFINE:  # anything else (KEEP) stays at the argmax
            d0, d1, d2, d3, d4 = parts[i, 4], parts[i, 5], parts[i, 6], parts[i, 7], parts[i, 8]
            if algo == _UDP:  # posefw.dark.udp_step
                a, c = np.float64(d2) + _EPS, np.float64(d4) + _EPS
                dxy = np.float64(d3)
                det = a * c - dxy * dxy
                ox = (c * np.float64(d0) - dxy * np.float64(d1)) / det
                oy = (a * np.float64(d1) - dxy * np.float64(d0)) / det
                if det != 0 and np.isfinite(ox) and np.isfinite(oy):
                    fx, fy = x - f32(ox), y - f32(oy)
            elif algo == _DARK:  # posefw.dark.dark_step (det tested in float32, like mmpose)
                det32 = f32(d2 * d4) - f32(d3 * d3)
                dxx, dxy, dyy = np.float64(d2), np.float64(d3), np.float64(d4)
                det = dxx * dyy - dxy * dxy
                ox = (dyy * np.float64(d0) - dxy * np.float64(d1)) / det
                oy = (dxx * np.float64(d1) - dxy * np.float64(d0)) / det
                if det32 != 0 and np.isfinite(ox) and np.isfinite(oy):
                    fx, fy = x - f32(ox), y - f32(oy)
            else:  # argmax: a quarter pixel toward the higher neighbour
                fx = x + f32(np.sign(d0)) * f32(0.25)
                fy = y + f32(np.sign(d1)) * f32(0.25)
        if has_boxes:  # transforms.heatmap_to_image
            j = i // k
            cx, cy, sx, sy = centers[j, 0], centers[j, 1], scales[j, 0], scales[j, 1]
            ux = sx / (w - 1.0) if udp else sx / np.float64(w)
            uy = sy / (h - 1.0) if udp else sy / np.float64(h)
            fx = f32(np.float64(fx) * ux + cx - sx * 0.5)
            fy = f32(np.float64(fy) * uy + cy - sy * 0.5)
        kp[i, 0], kp[i, 1], sc[i] = fx, fy, score


@functools.cache
def compiled_finisher():
    """``finish_loop`` compiled by numba (once per process, cached on disk), or None without numba."""
    try:
        from numba import njit
    except ImportError:
        return None
    return njit(cache=True, nogil=True, error_model="numpy")(finish_loop)


def finish_compiled(
    run, parts: np.ndarray, algorithm: str, boxes, heatmap_size: tuple[int, int], udp: bool, n: int, k: int
):
    """The same result as ``finish_numpy`` from ``run`` (``compiled_finisher()``, or ``finish_loop`` itself)."""
    from posefw.decoder import DecodeResult

    kp = np.empty((n * k, 2), np.float32)
    sc = np.empty(n * k, np.float32)
    has_boxes = boxes is not None
    centers, scales = boxes if has_boxes else (_NO_BOXES, _NO_BOXES)
    run(parts, ALGORITHM_CODES[algorithm], centers, scales, has_boxes, k, heatmap_size[0], heatmap_size[1], udp, kp, sc)
    return DecodeResult(kp.reshape(n, k, 2), sc.reshape(n, k))


_NO_BOXES = np.zeros((1, 2), np.float64)
