"""Poses drawn over frames: the COCO skeleton, keypoints, boxes and a caption (OpenCV)."""

from __future__ import annotations

import numpy as np


def draw(
    image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, label: str, threshold: float = 0.0
) -> np.ndarray:
    """The COCO skeleton and keypoints over an RGB image (returns a new image)."""
    import cv2

    from posefw.coco import SKELETON

    out = image.copy()
    scale = max(1, round(max(image.shape[:2]) / 640))
    for b in boxes:
        x, y, w, h = (int(round(v)) for v in b)
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 200, 255), scale)
    for kp, sc in zip(keypoints, scores):
        ok = np.isfinite(sc) & (sc > threshold) & np.isfinite(kp).all(-1)
        for a, b in SKELETON:
            if ok[a] and ok[b]:
                cv2.line(
                    out, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), (0, 255, 0), 2 * scale, cv2.LINE_AA
                )
        for j in np.flatnonzero(ok):
            cv2.circle(out, tuple(int(v) for v in kp[j]), 3 * scale, (255, 0, 0), -1, cv2.LINE_AA)
    # One pass of text on a filled box: OpenCV 5 advances glyphs by stroke width, so an outline
    # drawn as a thicker second pass no longer lines up with the text.
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale
    (tw, th), base = cv2.getTextSize(label, font, size, scale)
    cv2.rectangle(out, (0, 0), (tw + 16, th + base + 12), (0, 0, 0), -1)
    cv2.putText(out, label, (8, th + 6), font, size, (255, 255, 255), scale, cv2.LINE_AA)
    return out
