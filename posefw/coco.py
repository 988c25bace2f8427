"""COCO person keypoints: loading annotations, rendering heatmaps from them, scoring with COCOeval.

Rendering is what the oracle engine and the AP-parity check share: ground-truth keypoints
are mapped into each crop's heatmap (UDP or standard encoding, Gaussian sigma 2), optionally
degraded like a model's output. pycocotools is imported only by ``evaluate``.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posefw.transforms import (
    HEATMAP_SIZE,
    INPUT_SIZE,
    apply_affine,
    box_to_center_scale,
    crop_matrix,
    input_to_heatmap_factor,
)

#: COCO left/right keypoint pairs (for flip test) and the skeleton (for drawing), 0-based.
FLIP_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
SKELETON = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
]


@dataclass
class Persons:
    """Non-crowd person instances with keypoints, in annotation order."""

    image_ids: np.ndarray  # (P,)
    boxes: np.ndarray  # (P, 4) x, y, w, h
    keypoints: np.ndarray  # (P, 17, 3) x, y, v
    ann_file: str
    images: dict[int, str]  # image id -> file name


def load_persons(ann_file: str | Path) -> Persons:
    path = Path(ann_file)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"annotations: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"annotations: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(
            f"annotations: {path} is not a COCO keypoints file (expected an object with "
            f"'images' and 'annotations' lists, got a {type(data).__name__})"
        )
    anns = [a for a in data.get("annotations", []) if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]
    if not anns:
        raise ValueError(f"annotations: {path} has no non-crowd person with keypoints")
    return Persons(
        image_ids=np.array([a["image_id"] for a in anns], np.int64),
        boxes=np.array([a["bbox"] for a in anns], np.float64),
        keypoints=np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), 17, 3),
        ann_file=str(path),
        images={im["id"]: im["file_name"] for im in data.get("images", [])},
    )


def keypoints_to_heatmap(
    points: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    udp: bool,
    heatmap_size=HEATMAP_SIZE,
    input_size=INPUT_SIZE,
) -> np.ndarray:
    """(N, K, 2) image pixels -> heatmap pixels of each crop (the inverse of the decode transform)."""
    out = np.empty(points.shape, np.float64)
    factor = input_to_heatmap_factor(input_size, heatmap_size, udp)
    for i in range(points.shape[0]):
        m = crop_matrix(centers[i], scales[i], input_size, udp=udp)
        out[i] = apply_affine(points[i], m) * factor
    return out


def render(
    hm_points: np.ndarray,
    visible: np.ndarray,
    sigma: float | np.ndarray = 2.0,
    amplitude=1.0,
    heatmap_size=HEATMAP_SIZE,
) -> np.ndarray:
    """Gaussian heatmaps (N, K, H, W) at sub-pixel heatmap positions; invisible joints stay zero."""
    w, h = heatmap_size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = hm_points[..., 0][..., None, None]
    y = hm_points[..., 1][..., None, None]
    sig = np.broadcast_to(np.asarray(sigma, np.float64), visible.shape)[..., None, None]
    amp = np.broadcast_to(np.asarray(amplitude, np.float64), visible.shape)[..., None, None]
    maps = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig * sig))
    return (maps * visible[..., None, None]).astype(np.float32)


def degraded_heatmaps(persons: Persons, udp: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model-like heatmaps from ground truth: sigma jitter, sub-pixel error, noise, missed joints."""
    rng = np.random.default_rng(seed)
    centers, scales = box_to_center_scale(persons.boxes)
    pts = keypoints_to_heatmap(persons.keypoints[..., :2], centers, scales, udp)
    n, k = pts.shape[:2]
    pts = pts + rng.normal(0.0, 0.35, pts.shape)
    visible = (persons.keypoints[..., 2] > 0) & (rng.random((n, k)) > 0.08)
    maps = render(pts, visible, sigma=rng.uniform(1.7, 2.6, (n, k)), amplitude=rng.uniform(0.35, 1.0, (n, k)))
    maps += rng.normal(0.0, 0.015, maps.shape).astype(np.float32)
    return maps, centers, scales


def results(
    image_ids: Any, keypoints: np.ndarray, scores: np.ndarray, box_scores=None, threshold: float = 0.2
) -> list[dict[str, Any]]:
    """COCO result entries, one per row; instance score = mean of keypoint scores above
    threshold (mmpose's rescoring) times the box's score. ``image_ids`` may be a :class:`Persons`."""
    image_ids = np.asarray(getattr(image_ids, "image_ids", image_ids))
    out = []
    box_scores = np.ones(len(keypoints)) if box_scores is None else box_scores
    for i in range(len(keypoints)):
        s = np.nan_to_num(scores[i], nan=0.0)
        kp = np.nan_to_num(keypoints[i], nan=0.0)
        good = s > threshold
        inst = float(s[good].mean()) if good.any() else 0.0
        flat = np.concatenate([kp, s[:, None]], axis=1).reshape(-1)
        out.append(
            {
                "image_id": int(image_ids[i]),
                "category_id": 1,
                "keypoints": [float(v) for v in flat],
                "score": inst * float(box_scores[i]),
            }
        )
    return out


def evaluate(ann_file: str | Path, entries: list[dict[str, Any]]) -> dict[str, float]:
    """OKS AP, AP50, AP75, AR with pycocotools' COCOeval (its printing captured)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise ImportError("COCO evaluation needs pycocotools: pip install 'posefw[eval]'") from exc
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(entries) if entries else None
        if dt is None:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = sorted({e["image_id"] for e in entries} | set(gt.getImgIds()))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"AP": float(s[0]), "AP50": float(s[1]), "AP75": float(s[2]), "AR": float(s[5])}
