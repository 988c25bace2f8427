"""Person crops for the network: box -> centre/scale -> affine warp -> ImageNet normalisation.

One sampling rule on every path: OpenCV 4's ``warpAffine`` fixed point (bilinear, positions
rounded to 1/32 pixel, constant 0 border, uint8 result), which ViTPose's published numbers
were made with. OpenCV 5 samples in float and differs by up to ~5 grey levels at edges, so
the CPU crop does not call ``warpAffine``: it builds the fixed-point maps itself and lets
``cv2.remap`` (whose fixed-point path is unchanged) interpolate. The GPU crop
(:mod:`posefw.crop_kernel`) computes the same positions and weights, so both agree bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw.crop_kernel import MEAN, STD, crop_matrices
from posefw.images import read_image_cpu as read_image
from posefw.transforms import INPUT_SIZE

__all__ = [
    "MEAN",
    "STD",
    "box_checks",
    "box_reason",
    "check_boxes_xywh",
    "crop_cpu",
    "fixed_point_positions",
    "read_image",
]

#: A box wider or taller than this many times the frame's larger side is refused: its crop
#: would be the frame shrunk to a few pixels, and at 1e300 its keypoints overflow to infinity.
MAX_BOX_FACTOR = 16.0
#: A box narrower or lower than this (pixels) is empty: at 1e-300 px its crop matrix is
#: infinity times zero, NaN, and nothing could be read or drawn.
MIN_BOX_SIDE = 1e-3


def fixed_point_positions(inv: np.ndarray, size=INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Source positions of every crop pixel in 1/32 pixel, as OpenCV 4's ``warpAffine`` makes them.

    ``inv`` is one (2, 3) crop -> image matrix. Each of the row and column terms is rounded to
    1/1024 pixel half to even (``saturate_cast<int>``), then ``(sum + 16) >> 5``.
    """
    ow, oh = size
    x = np.arange(ow, dtype=np.float64)
    y = np.arange(oh, dtype=np.float64)
    (m00, m01, m02), (m10, m11, m12) = np.asarray(inv, np.float64)

    def r(v):
        return np.rint(v * 1024.0).astype(np.int64)

    gx = (r(m01 * y + m02)[:, None] + r(m00 * x)[None, :] + 16) >> 5
    gy = (r(m11 * y + m12)[:, None] + r(m10 * x)[None, :] + 16) >> 5
    return gx, gy


#: (v / 255 - mean) / std for every uint8 value v, per channel, computed as the formula computes
#: it in float32: normalising is then one table lookup per sample.
NORMALISE = ((np.arange(256, dtype=np.float32)[None, :] / 255.0 - MEAN[:, None]) / STD[:, None]).astype(np.float32)


def _maps(m: np.ndarray, size, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap``'s fixed-point maps: int16 (H, W, 2) integer positions and uint16 (H, W) 1/32 fractions.

    Positions far outside the frame are clipped to just outside it: they read the border either way.
    """
    ow, oh = size
    xy = np.empty((oh, ow, 2), np.int16)
    if m[0, 1] == 0 and m[1, 0] == 0:  # no rotation: x depends on the column only, y on the row only
        # fixed_point_positions' first row and column (its row and column terms are then constants)
        gx, gy = fixed_point_positions(m, (ow, 1))[0][0], fixed_point_positions(m, (1, oh))[1][:, 0]
        xy[..., 0] = np.clip(gx >> 5, -2, w)[None, :]
        xy[..., 1] = np.clip(gy >> 5, -2, h)[:, None]
        return xy, ((gy & 31) * 32).astype(np.uint16)[:, None] + (gx & 31).astype(np.uint16)[None, :]
    gx, gy = fixed_point_positions(m, size)
    xy[..., 0], xy[..., 1] = np.clip(gx >> 5, -2, w), np.clip(gy >> 5, -2, h)
    return xy, ((gy & 31) * 32 + (gx & 31)).astype(np.uint16)


def crop_cpu(
    image: np.ndarray, centers: np.ndarray, scales: np.ndarray, udp: bool = True, flip: bool = False, size=INPUT_SIZE
) -> np.ndarray:
    """(N, 3, H, W) float32 normalised crops of one RGB uint8 image."""
    import cv2

    inv = crop_matrices(centers, scales, udp, size)
    out = np.empty((len(inv), 3, size[1], size[0]), np.float32)
    h, w = image.shape[:2]
    for i, m in enumerate(inv):
        xy, frac = _maps(m, size, h, w)
        crop = cv2.remap(image, xy, frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if flip:
            crop = crop[:, ::-1]
        for c in range(3):
            np.take(NORMALISE[c], crop[..., c], out=out[i, c])
    return out


def box_checks(boxes: np.ndarray, heights: Any, widths: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Valid-box mask and a failure code per (N, 4) x, y, w, h box, each against its own frame's
    size (scalars or (N,) arrays): 0 valid, 1 non-finite, 2 empty, 3 too large, 4 outside.
    Vectorised over every box of every frame of a call; the codes are None when every box is
    valid (working them out costs as much again, on every call's critical path)."""
    x, y, bw, bh = boxes.T
    h, w = np.asarray(heights, np.float64), np.asarray(widths, np.float64)
    limit = MAX_BOX_FACTOR * np.maximum(h, w)
    with np.errstate(invalid="ignore", over="ignore"):
        # every comparison with NaN is False and every infinity fails one of them: non-finite
        # boxes are refused here without a test of their own
        ok = (bw >= MIN_BOX_SIDE) & (bh >= MIN_BOX_SIDE) & (bw <= limit) & (bh <= limit)
        ok &= (x < w) & (y < h) & (x + bw > 0) & (y + bh > 0)
        if ok.all():
            return ok, None
        finite = np.isfinite(boxes).all(axis=1)
        positive = finite & (bw >= MIN_BOX_SIDE) & (bh >= MIN_BOX_SIDE)
        sane = positive & (bw <= limit) & (bh <= limit)
    code = np.where(~finite, 1, np.where(~positive, 2, np.where(~sane, 3, np.where(~ok, 4, 0))))
    return ok, code


def box_reason(box: np.ndarray, index: int, code: int, h: int, w: int) -> str:
    """The message for one refused box (``box_checks``' code), naming its index."""
    if code == 1:
        return f"box {index}: non-finite values {box.tolist()}"
    if code == 2:
        return f"box {index}: width and height must be at least {MIN_BOX_SIDE:g} px, got {box[2]} x {box[3]}"
    if code == 3:
        return f"box {index}: {box[2]:.4g} x {box[3]:.4g} is more than {MAX_BOX_FACTOR:g} times the {w}x{h} frame"
    return f"box {index}: {box.tolist()} lies entirely outside the {w}x{h} image"


def check_boxes_xywh(boxes: Any, image_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Valid-box mask and a reason per box ('' when valid) for (N, 4) x, y, w, h boxes of one image."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4) as x, y, w, h, got {b.shape}")
    h, w = image_shape[:2]
    ok, code = box_checks(b, h, w)
    reasons = [""] * len(b)
    for i in np.flatnonzero(~ok):
        reasons[i] = box_reason(b[i], int(i), int(code[i]), h, w)
    return ok, reasons
