"""The DARK family's one home: its constants and the reference stages every backend answers to.

The formulas are those of ``shared/reference/vitpose-facts.md`` (mmpose 0.x, which ViTPose
ships); docs/decoding.md states them with posefw's documented departures. The stages are
vectorised NumPy over batch and keypoints (no per-keypoint Python loop). The modulation is
computed only where the Taylor step reads it: a (2r+3)^2 (DARK-UDP) or (2r+5)^2 (DARK) window
around each argmax, blurred separably. For classic DARK the rescale to the original maximum is a
constant in log space except through the 1e-10 floor; it is computed from the full blurred map
only for the keypoints where that floor could bite (docs/decoding.md has the proof).

numpy-cpu is this module behind the decoder interface; cupy-partial computes the derivatives on
the GPU and finishes with the steps here; conformance takes its reference answers from
:func:`reference_decode`.
"""

from __future__ import annotations

import functools
from typing import Any

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


def peaks(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Argmax (first maximum, row-major), raw maximum and all-finite flag per map (M, H*W)."""
    idx = flat.argmax(axis=1)
    score = np.take_along_axis(flat, idx[:, None], axis=1)[:, 0]
    # argmax returns the first NaN when there is one, so the score is NaN/+inf for those maps;
    # the minimum catches -inf.
    finite = np.isfinite(score) & np.isfinite(flat.min(axis=1))
    return idx, score, finite


def blur_window(flat, x, y, h, w, g, reach, zero_pad, which=None):
    """Blurred values on the (2*reach+1)^2 grid around (x, y): (M, 2*reach+1, 2*reach+1) f32.

    ``flat`` is (maps, H*W); ``which`` picks the map of each (x, y) (default: one map each, in
    order), so a batch's valid maps are read in place, never copied. The separable blur is two
    GEMMs against band matrices of the taps (float32, as OpenCV's separable filter).
    """
    r = (g.size - 1) // 2
    off = np.arange(-(r + reach), r + reach + 1)
    rows = y[:, None] + off
    cols = x[:, None] + off
    if zero_pad:
        rin = (rows >= 0) & (rows < h)
        cin = (cols >= 0) & (cols < w)
        rows, cols = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    else:
        rows, cols = reflect101(rows, h), reflect101(cols, w)
    base = (np.arange(len(x)) if which is None else np.asarray(which)) * (h * w)
    index = base[:, None, None] + rows[:, :, None] * w + cols[:, None, :]
    win = flat.reshape(-1)[index]
    if zero_pad:
        win = win * (rin[:, :, None] & cin[:, None, :])
    n, size = 2 * reach + 1, off.size
    band = _taps_band(g, n)  # (size, n): column j holds the taps at rows j..j+2r
    hor = (win.reshape(-1, size) @ band).reshape(len(x), size, n)
    ver = np.swapaxes(hor, 1, 2).reshape(-1, size) @ band
    return np.swapaxes(ver.reshape(len(x), n, n), 1, 2).astype(np.float32, copy=False)


def _taps_band(g: np.ndarray, n: int) -> np.ndarray:
    """(g.size + n - 1, n) float32: column j holds the taps ``g`` at rows j .. j + g.size - 1."""
    return _taps_band_of(np.asarray(g, np.float32).tobytes(), n)


@functools.lru_cache(maxsize=32)
def _taps_band_of(taps: bytes, n: int) -> np.ndarray:
    g = np.frombuffer(taps, np.float32)
    band = np.zeros((g.size + n - 1, n), np.float32)
    for j in range(n):
        band[j : j + g.size, j] = g
    band.setflags(write=False)
    return band


def udp_derivatives(flat, x, y, h, w, kernel, which=None) -> np.ndarray:
    """DARK-UDP first and second derivatives (M, 5) as dx, dy, dxx, dxy, dyy (float32).

    Blur (reflect-101), clip to [0.001, 50], log, edge padding, 1-pixel central differences,
    in mmpose's float32 operation order.
    """
    g = gaussian_kernel1d(kernel)
    b = blur_window(flat, x, y, h, w, g, 1, zero_pad=False, which=which)
    # Edge padding of the blurred map: neighbours outside the map read the edge pixel.
    ry = np.stack([np.maximum(y - 1, 0), y, np.minimum(y + 1, h - 1)], 1) - y[:, None] + 1
    rx = np.stack([np.maximum(x - 1, 0), x, np.minimum(x + 1, w - 1)], 1) - x[:, None] + 1
    b = np.take_along_axis(b, ry[:, :, None], axis=1)
    b = np.take_along_axis(b, rx[:, None, :], axis=2)
    f = np.log(np.clip(b, np.float32(UDP_CLIP[0]), np.float32(UDP_CLIP[1])))
    i_, ix1, ix1_ = f[:, 1, 1], f[:, 1, 2], f[:, 1, 0]
    iy1, iy1_ = f[:, 2, 1], f[:, 0, 1]
    ix1y1, ix1_y1_ = f[:, 2, 2], f[:, 0, 0]
    half = np.float32(0.5)
    dx = half * (ix1 - ix1_)
    dy = half * (iy1 - iy1_)
    dxx = ix1 - np.float32(2) * i_ + ix1_
    dyy = iy1 - np.float32(2) * i_ + iy1_
    dxy = half * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    return np.stack([dx, dy, dxx, dxy, dyy], axis=1)


def dark_derivatives(flat, x, y, h, w, kernel, maxima, which=None) -> np.ndarray:
    """Classic DARK derivatives (M, 5) at interior argmaxes (float32, mmpose's order).

    The map is zero-padded, blurred and rescaled by maximum / blurred maximum, then floored
    at 1e-10 and logged. log(s*b) = log(s) + log(b), so the rescale s cancels in every
    difference unless the floor is hit; since s >= 1 (a normalised non-negative kernel over a
    zero-padded map cannot exceed the map's positive maximum), the floor cannot be hit when
    every sampled b >= 1e-10. Only maps with a smaller sample get the exact s from a full blur.
    """
    g = gaussian_kernel1d(kernel)
    b = blur_window(flat, x, y, h, w, g, 2, zero_pad=True, which=which)
    taps = b[:, [0, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4], [2, 1, 2, 3, 0, 1, 2, 3, 4, 1, 2, 3, 2]]
    need = np.flatnonzero((taps < DARK_RESCALE_GUARD).any(axis=1))
    if need.size:
        maps = flat[need if which is None else np.asarray(which)[need]]
        blurred_max = _full_blur_max(maps.reshape(-1, h, w), g)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (maxima[need] / blurred_max).astype(np.float32)
        b[need] = b[need] * s[:, None, None]
    f = np.log(np.maximum(b, np.float32(DARK_FLOOR)))
    c = f[:, 2, 2]
    q = np.float32(0.25)
    dx = np.float32(0.5) * (f[:, 2, 3] - f[:, 2, 1])
    dy = np.float32(0.5) * (f[:, 3, 2] - f[:, 1, 2])
    dxx = q * (f[:, 2, 4] - np.float32(2) * c + f[:, 2, 0])
    dxy = q * (f[:, 3, 3] - f[:, 1, 3] - f[:, 3, 1] + f[:, 1, 1])
    dyy = q * (f[:, 4, 2] - np.float32(2) * c + f[:, 0, 2])
    return np.stack([dx, dy, dxx, dxy, dyy], axis=1)


def _band(size: int, g: np.ndarray) -> np.ndarray:
    """(size, size) matrix of the zero-padded 1-D blur: out = band @ signal."""
    r = (g.size - 1) // 2
    i = np.arange(size)
    off = i[None, :] - i[:, None] + r
    inside = (off >= 0) & (off < g.size)
    return np.where(inside, g[np.clip(off, 0, g.size - 1)], 0).astype(np.float32)


def _full_blur_max(maps: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Maximum of the zero-padded separable blur of each (h, w) map (float32), as two matmuls."""
    m, h, w = maps.shape
    blurred = _band(h, g) @ maps @ _band(w, g).T
    return blurred.reshape(m, -1).max(axis=1)


def _apply(x: np.ndarray, y: np.ndarray, ox: np.ndarray, oy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(x, y) as float32, minus the float32 offsets where ``ok`` (float32 subtraction, like mmpose)."""
    out = np.empty((x.shape[0], 2), np.float32)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 0] -= np.where(ok, ox, 0.0).astype(np.float32)
    out[:, 1] -= np.where(ok, oy, 0.0).astype(np.float32)
    return out


def udp_step(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(x, y) - inv(H + eps*I) @ grad, solved in float64; a singular system keeps the argmax."""
    dx, dy, dxx, dxy, dyy = d.astype(np.float64).T
    a, c = dxx + EPS32, dyy + EPS32
    det = a * c - dxy * dxy
    with np.errstate(divide="ignore", invalid="ignore"):
        ox = (c * dx - dxy * dy) / det
        oy = (a * dy - dxy * dx) / det
    return _apply(x, y, ox, oy, (det != 0) & np.isfinite(ox) & np.isfinite(oy))


def dark_step(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(x, y) - inv(H) @ grad where det(H) != 0 (mmpose's ``_taylor``, which tests det in float32)."""
    det32 = d[:, 2] * d[:, 4] - d[:, 3] * d[:, 3]
    dx, dy, dxx, dxy, dyy = d.astype(np.float64).T
    det = dxx * dyy - dxy * dxy
    with np.errstate(divide="ignore", invalid="ignore"):
        ox = (dyy * dx - dxy * dy) / det
        oy = (dxx * dy - dxy * dx) / det
    return _apply(x, y, ox, oy, (det32 != 0) & np.isfinite(ox) & np.isfinite(oy))


def dark_interior(x: np.ndarray, y: np.ndarray, h: int, w: int) -> np.ndarray:
    """Where classic DARK refines: 1 < x < W-2 and 1 < y < H-2."""
    return (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)


def argmax_shift(flat, x, y, h, w) -> np.ndarray:
    """Quarter-pixel shift toward the higher neighbour where 1 < x < W-1 and 1 < y < H-1."""
    out = np.stack([x, y], axis=1).astype(np.float32)
    inner = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
    i = np.flatnonzero(inner)
    if i.size:
        xi, yi, fi = x[i], y[i], flat[i]
        r = np.arange(i.size)
        ddx = fi[r, yi * w + xi + 1] - fi[r, yi * w + xi - 1]
        ddy = fi[r, (yi + 1) * w + xi] - fi[r, (yi - 1) * w + xi]
        out[i, 0] += np.sign(ddx).astype(np.float32) * np.float32(0.25)
        out[i, 1] += np.sign(ddy).astype(np.float32) * np.float32(0.25)
    return out


def decode_coords(hm: np.ndarray, algorithm: str, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) float32 -> keypoints (N, K, 2) in heatmap pixels and scores (N, K).

    Rules (identical in every backend): maximum <= 0 -> (-1, -1), never refined; any
    non-finite value in a map -> NaN keypoint and NaN score.
    """
    n, k, h, w = hm.shape
    flat = hm.reshape(n * k, h * w)
    idx, score, finite = peaks(flat)
    y, x = np.divmod(idx, w)
    valid = finite & (score > 0)
    out = np.full((n * k, 2), -1.0, np.float32)
    v = np.flatnonzero(valid)
    if v.size:
        xv, yv = x[v], y[v]  # the valid maps are read in place through ``v``, not copied
        with np.errstate(all="ignore"):
            if algorithm == "dark-udp":
                out[v] = udp_step(xv, yv, udp_derivatives(flat, xv, yv, h, w, kernel, which=v))
            elif algorithm == "dark":
                out[v] = np.stack([xv, yv], 1)
                inner = np.flatnonzero(dark_interior(xv, yv, h, w))
                if inner.size:
                    xi, yi = xv[inner], yv[inner]
                    d = dark_derivatives(flat, xi, yi, h, w, kernel, score[v][inner], which=v[inner])
                    out[v[inner]] = dark_step(xi, yi, d)
            else:
                out[v] = argmax_shift(flat[v], xv, yv, h, w)
    bad = ~finite
    out[bad] = np.nan
    score = score.astype(np.float32, copy=True)
    score[bad] = np.nan
    return out.reshape(n, k, 2), score.reshape(n, k)


def to_result(coords: np.ndarray, scores: np.ndarray, boxes, heatmap_size, udp: bool):
    """A DecodeResult, with the heatmap -> image transform applied when boxes were given."""
    from posefw.decoder import DecodeResult
    from posefw.transforms import heatmap_to_image

    if boxes is not None and coords.shape[0]:
        coords = heatmap_to_image(coords, boxes[0], boxes[1], heatmap_size, udp)
    return DecodeResult(coords.astype(np.float32, copy=False), scores.astype(np.float32, copy=False))


def reference_decode(
    heatmaps: Any,
    algorithm: str = "dark-udp",
    kernel: int = 11,
    centers: Any = None,
    scales: Any = None,
    udp: bool | None = None,
):
    """The reference answer: heatmaps (N, K, H, W) -> DecodeResult in heatmap or image pixels
    (the UDP transform for dark-udp unless ``udp`` says otherwise)."""
    from posefw.arrays import to_numpy
    from posefw.decoder import DecodeResult, check_boxes, check_heatmaps

    n, k, h, w = check_heatmaps(heatmaps)
    boxes = check_boxes(centers, scales, n)
    hm = np.ascontiguousarray(to_numpy(heatmaps), dtype=np.float32)
    if n == 0:
        return DecodeResult(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32))
    coords, score = decode_coords(hm, algorithm, kernel)
    return to_result(coords, score, boxes, (w, h), algorithm == "dark-udp" if udp is None else udp)
