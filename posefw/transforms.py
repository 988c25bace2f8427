"""Boxes, crop matrices and the way back from heatmap to image pixels (mmpose 0.x semantics).

``scales`` are the crop's (width, height) in image pixels, i.e. mmpose's ``scale * 200``.
Two families: the standard transform (``get_affine_transform``, heatmap scale = size) and
UDP (``get_warp_matrix``, heatmap scale = size - 1), which ViTPose uses.
"""

from __future__ import annotations

import numpy as np

#: Network input (width, height) and heatmap (width, height) of ViTPose 256x192.
INPUT_SIZE = (192, 256)
HEATMAP_SIZE = (48, 64)


def box_to_center_scale(
    boxes: np.ndarray, input_size: tuple[int, int] = INPUT_SIZE, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes x, y, w, h -> centres (N, 2) and scales (N, 2) in pixels.

    The box is widened or heightened to the input's aspect ratio, then padded (mmpose's
    ``_xywh2cs``).
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4) as x, y, w, h, got {b.shape}")
    aspect = input_size[0] / input_size[1]
    wh = b[:, 2:]
    centers = b[:, :2] + wh * 0.5
    as_wide = wh[:, :1] / np.array([1.0, aspect])  # (w, w / aspect)
    as_tall = wh[:, 1:] * np.array([aspect, 1.0])  # (h * aspect, h)
    scales = np.where(wh[:, :1] > as_tall[:, :1], as_wide, as_tall) * padding
    return centers, scales


def _rotation(rot_deg: float) -> np.ndarray:
    r = np.deg2rad(rot_deg)
    return np.array([[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]])


def _invert(m: np.ndarray) -> np.ndarray:
    a = m[:, :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -inv @ m[:, 2:]], axis=1)


def get_affine_transform(
    center, scale, output_size: tuple[int, int] = INPUT_SIZE, rot: float = 0.0, inv: bool = False
) -> np.ndarray:
    """Standard crop matrix (2, 3): image -> crop (or crop -> image with ``inv``).

    Closed form of mmpose's three-point construction: one isotropic factor
    ``output_w / scale_w``, rotation, and the centre mapped to the crop's centre.
    """
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    a = (output_size[0] / s[0]) * _rotation(rot)
    t = np.array([output_size[0] * 0.5, output_size[1] * 0.5]) - a @ c
    m = np.concatenate([a, t[:, None]], axis=1)
    return _invert(m) if inv else m


def get_warp_matrix(
    center, scale, output_size: tuple[int, int] = INPUT_SIZE, rot: float = 0.0, inv: bool = False
) -> np.ndarray:
    """UDP crop matrix (2, 3) as mmpose's ``get_warp_matrix(rot, 2c, size - 1, scale)``."""
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    th = np.deg2rad(rot)
    sx = (output_size[0] - 1.0) / s[0]
    sy = (output_size[1] - 1.0) / s[1]
    cos, sin = np.cos(th), np.sin(th)
    m = np.array(
        [
            [cos * sx, -sin * sx, sx * (-c[0] * cos + c[1] * sin + 0.5 * s[0])],
            [sin * sy, cos * sy, sy * (-c[0] * sin - c[1] * cos + 0.5 * s[1])],
        ]
    )
    return _invert(m) if inv else m


def crop_matrix(center, scale, output_size=INPUT_SIZE, udp: bool = True, inv: bool = False) -> np.ndarray:
    """The crop matrix of either family."""
    fn = get_warp_matrix if udp else get_affine_transform
    return fn(center, scale, output_size, inv=inv)


def input_to_heatmap_factor(input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, udp: bool = True) -> np.ndarray:
    """Per-axis factor from network-input pixels to heatmap pixels."""
    i = np.asarray(input_size, dtype=np.float64)
    h = np.asarray(heatmap_size, dtype=np.float64)
    return (h - 1.0) / (i - 1.0) if udp else h / i


def heatmap_to_image(
    coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size: tuple[int, int], udp: bool
) -> np.ndarray:
    """(N, K, 2) heatmap pixels -> image pixels (mmpose's ``transform_preds``), float32 out.

    ``heatmap_size`` is (W, H). NaN coordinates stay NaN.
    """
    c = np.asarray(coords, dtype=np.float64)
    ctr = np.asarray(centers, dtype=np.float64)[:, None, :]
    sc = np.asarray(scales, dtype=np.float64)[:, None, :]
    size = np.asarray(heatmap_size, dtype=np.float64)
    unit = sc / (size - 1.0) if udp else sc / size
    return (c * unit + ctr - sc * 0.5).astype(np.float32)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to (..., 2) points."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]
