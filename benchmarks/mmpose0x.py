"""mmpose 0.x's own DARK decoders, as ViTPose runs them, for ``benchmarks/decoders.py`` to time
numpy-cpu against (not against the slower per-keypoint port in conformance).

- ``dark-udp``: ``post_dark_udp``: ``cv2.GaussianBlur`` on every heatmap in place, clip, log,
  edge padding, then the Taylor step for all keypoints at once through a flat index
  (vectorised NumPy, ``np.linalg.inv`` of the batched Hessians).
- ``dark``: ``_gaussian_blur`` (zero border, blur, rescale to the original maximum) on every
  heatmap, log, then ``_taylor`` one keypoint at a time, as mmpose 0.x loops.

Written from the formulas in shared/reference/vitpose-facts.md in mmpose's order of operations.
Coordinates come back in heatmap pixels, as numpy-cpu's do without boxes.
"""

from __future__ import annotations

import numpy as np
from posefw.conformance.mmpose_port import gaussian_blur, get_max_preds, taylor


def post_dark_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """mmpose 0.x ``post_dark_udp``: ``coords`` (N, K, 2) refined from ``heatmaps`` (blurred in place)."""
    import cv2

    n, k, h, w = heatmaps.shape
    for maps in heatmaps:
        for hm in maps:
            cv2.GaussianBlur(hm, (kernel, kernel), 0, hm)
    np.clip(heatmaps, 0.001, 50, heatmaps)
    np.log(heatmaps, heatmaps)
    pad = np.pad(heatmaps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    index = coords[..., 0] + 1 + (coords[..., 1] + 1) * (w + 2)
    index += (w + 2) * (h + 2) * np.arange(0, n * k).reshape(-1, k)
    index = index.astype(int).reshape(-1, 1)
    i_ = pad[index]
    ix1, ix1_ = pad[index + 1], pad[index - 1]
    iy1, iy1_ = pad[index + w + 2], pad[index - 2 - w]
    ix1y1, ix1_y1_ = pad[index + w + 3], pad[index - w - 3]
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    derivative = np.concatenate([dx, dy], axis=1).reshape(n, k, 2, 1)
    dxx = ix1 - 2 * i_ + ix1_
    dyy = iy1 - 2 * i_ + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    hessian = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(n, k, 2, 2)
    hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
    coords -= np.einsum("ijmn,ijnk->ijmk", hessian, derivative).squeeze(-1)
    return coords


def decode(heatmaps: np.ndarray, algorithm: str, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(coords (N, K, 2), maxvals (N, K)) as mmpose 0.x's ``keypoints_from_heatmaps`` before the
    transform back; ``heatmaps`` is copied first (mmpose blurs its argument in place)."""
    hm = np.array(heatmaps, dtype=np.float32, copy=True)
    coords, maxvals = get_max_preds(hm)
    if algorithm == "dark-udp":
        coords = post_dark_udp(coords, hm, kernel)
    elif algorithm == "dark":
        hm = np.log(np.maximum(gaussian_blur(hm, kernel), 1e-10))
        for i in range(hm.shape[0]):
            for j in range(hm.shape[1]):
                coords[i, j] = taylor(hm[i, j], coords[i, j])
    elif algorithm != "argmax":
        raise ValueError(f"algorithm: expected dark-udp, dark or argmax, got {algorithm!r}")
    return coords, maxvals[..., 0]
