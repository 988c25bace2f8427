"""Test videos made from real coco-mini frames, with their ground-truth person boxes.

Each video shows COCO images one after another (resized to one frame size), so its boxes are
real annotations; tests, the GPU check and the docs' examples make them with PyAV (H.264 where
FFmpeg has libx264, which NVDEC decodes too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def coco_frames(count: int, offset: int = 0, size: tuple[int, int] = (320, 240), min_persons: int = 1):
    """``count`` coco-mini images resized to ``size`` (w, h), with their person boxes scaled:
    a list of (RGB frame, boxes (N, 4) [x, y, w, h])."""
    import cv2

    from posefw.coco import load_persons
    from posefw.data import coco_mini, coco_mini_annotations
    from posefw.images import read_image_cpu

    persons = load_persons(coco_mini_annotations())
    ids = [i for i in dict.fromkeys(persons.image_ids.tolist()) if (persons.image_ids == i).sum() >= min_persons]
    out = []
    for iid in (ids * (1 + (offset + count) // max(len(ids), 1)))[offset : offset + count]:
        img = read_image_cpu(coco_mini() / "images" / "val2017" / persons.images[iid])
        sx, sy = size[0] / img.shape[1], size[1] / img.shape[0]
        boxes = persons.boxes[persons.image_ids == iid] * np.array([sx, sy, sx, sy])
        out.append((cv2.resize(img, size, interpolation=cv2.INTER_AREA), boxes))
    return out


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 10, codec: str | None = None) -> Path:
    """RGB frames to a video file (H.264 by default where available, else MPEG-4)."""
    from posefw.video_out import VideoWriter

    writer = VideoWriter(path, fps, codec)
    for rgb in frames:
        writer.write(rgb)
    writer.close()
    return writer.path


def coco_video(
    folder: str | Path, name: str, count: int, offset: int = 0, size: tuple[int, int] = (320, 240), repeat: int = 1
) -> tuple[Path, Path]:
    """A video of ``count`` coco-mini frames, each shown ``repeat`` times (a static scene for a
    moment: long videos stay small), and its COCO detections file (image_id = frame index,
    score 1): returns (video path, detections path)."""
    folder = Path(folder)
    frames = [f for f in coco_frames(count, offset, size) for _ in range(repeat)]
    video = write_video(folder / f"{name}.mp4", [f for f, _ in frames])
    dets = [
        {"image_id": i, "category_id": 1, "bbox": [round(float(v), 2) for v in b], "score": 1.0}
        for i, (_, boxes) in enumerate(frames)
        for b in boxes
    ]
    det_path = folder / f"{name}-dets.json"
    det_path.write_text(json.dumps(dets))
    return video, det_path
