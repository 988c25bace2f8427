"""A straightforward per-keypoint port of mmpose 0.x ``keypoints_from_heatmaps`` (OpenCV blur).

This is the independent check on numpy-cpu: it follows the mmpose code line by line, one
heatmap and one keypoint at a time, with the two departures posefw documents:
(1) a keypoint whose maximum is <= 0 is not refined by DARK-UDP (mmpose reads another
heatmap there), (2) indices are integers (mmpose's float32 flat index fails past ~299 crops).
It is slow on purpose; benchmarks/ compares numpy-cpu against it.
"""

from __future__ import annotations

import numpy as np


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("the mmpose port needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k, h, w = heatmaps.shape
    reshaped = heatmaps.reshape((n, k, h * w))
    idx = np.argmax(reshaped, 2).reshape((n, k, 1))
    maxvals = np.amax(reshaped, 2).reshape((n, k, 1))
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = idx[:, :, 0] % w
    preds[:, :, 1] = idx[:, :, 0] // w
    preds = np.where(np.tile(maxvals, (1, 1, 2)) > 0.0, preds, -1)
    return preds.astype(np.float32), maxvals


def gaussian_blur(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """mmpose ``_gaussian_blur``: zero border, blur, rescale to the original maximum."""
    cv2 = _cv2()
    border = (kernel - 1) // 2
    n, k, h, w = heatmaps.shape
    for i in range(n):
        for j in range(k):
            origin_max = np.max(heatmaps[i, j])
            dr = np.zeros((h + 2 * border, w + 2 * border), dtype=np.float32)
            dr[border : border + h, border : border + w] = heatmaps[i, j].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            heatmaps[i, j] = dr[border : border + h, border : border + w].copy()
            heatmaps[i, j] *= origin_max / np.max(heatmaps[i, j])
    return heatmaps


def taylor(heatmap: np.ndarray, coord: np.ndarray) -> np.ndarray:
    h, w = heatmap.shape[:2]
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < w - 2 and 1 < py < h - 2:
        dx = 0.5 * (heatmap[py][px + 1] - heatmap[py][px - 1])
        dy = 0.5 * (heatmap[py + 1][px] - heatmap[py - 1][px])
        dxx = 0.25 * (heatmap[py][px + 2] - 2 * heatmap[py][px] + heatmap[py][px - 2])
        dxy = 0.25 * (
            heatmap[py + 1][px + 1] - heatmap[py - 1][px + 1] - heatmap[py + 1][px - 1] + heatmap[py - 1][px - 1]
        )
        dyy = 0.25 * (heatmap[py + 2][px] - 2 * heatmap[py][px] + heatmap[py - 2][px])
        derivative = np.array([[dx], [dy]])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if dxx * dyy - dxy**2 != 0:
            hessianinv = np.linalg.inv(hessian)
            offset = -hessianinv @ derivative
            offset = np.squeeze(np.array(offset.T), axis=0)
            coord += offset
    return coord


def post_dark_udp_one(heatmap: np.ndarray, coord: np.ndarray, kernel: int) -> np.ndarray:
    """mmpose ``post_dark_udp`` for one keypoint (its flat-array indexing made per map)."""
    cv2 = _cv2()
    hm = heatmap.astype(np.float32).copy()
    cv2.GaussianBlur(hm, (kernel, kernel), 0, hm)
    np.clip(hm, 0.001, 50, hm)
    np.log(hm, hm)
    pad = np.pad(hm, ((1, 1), (1, 1)), mode="edge")
    x, y = int(coord[0]) + 1, int(coord[1]) + 1
    i_ = pad[y, x]
    ix1, ix1_ = pad[y, x + 1], pad[y, x - 1]
    iy1, iy1_ = pad[y + 1, x], pad[y - 1, x]
    ix1y1, ix1_y1_ = pad[y + 1, x + 1], pad[y - 1, x - 1]
    dx = 0.5 * (ix1 - ix1_)
    dy = 0.5 * (iy1 - iy1_)
    dxx = ix1 - 2 * i_ + ix1_
    dyy = iy1 - 2 * i_ + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    derivative = np.array([[dx], [dy]], dtype=np.float32)
    hessian = np.array([[dxx, dxy], [dxy, dyy]], dtype=np.float32)
    hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
    out = coord.astype(np.float32).copy()
    out -= (hessian @ derivative).squeeze()
    return out


def keypoints_from_heatmaps(
    heatmaps: np.ndarray, algorithm: str = "dark-udp", kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) in heatmap pixels and scores (N, K), one keypoint at a time."""
    heatmaps = np.array(heatmaps, dtype=np.float32, copy=True)
    n, k, h, w = heatmaps.shape
    preds, maxvals = get_max_preds(heatmaps)
    if algorithm == "dark-udp":
        for i in range(n):
            for j in range(k):
                if maxvals[i, j, 0] > 0:
                    preds[i, j] = post_dark_udp_one(heatmaps[i, j], preds[i, j], kernel)
    elif algorithm == "dark":
        heatmaps = np.log(np.maximum(gaussian_blur(heatmaps, kernel), 1e-10))
        for i in range(n):
            for j in range(k):
                preds[i][j] = taylor(heatmaps[i][j], preds[i][j])
    elif algorithm == "argmax":
        for i in range(n):
            for j in range(k):
                heatmap = heatmaps[i][j]
                px, py = int(preds[i][j][0]), int(preds[i][j][1])
                if 1 < px < w - 1 and 1 < py < h - 1:
                    diff = np.array(
                        [heatmap[py][px + 1] - heatmap[py][px - 1], heatmap[py + 1][px] - heatmap[py - 1][px]]
                    )
                    preds[i][j] += np.sign(diff) * 0.25
    else:
        raise ValueError(f"algorithm: expected dark-udp, dark or argmax, got {algorithm!r}")
    return preds, maxvals[..., 0]
