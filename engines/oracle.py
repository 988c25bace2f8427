"""oracle: renders ground-truth heatmaps for each crop from COCO annotations.

It stands where the network would, so preprocess -> heatmaps -> decode -> transform ->
COCOeval is checked end to end on real annotations: with exact Gaussians (sigma 2, UDP or
standard encoding) a correct chain scores AP close to 1. Each crop is matched to the
annotated person of its image whose box centre is nearest the crop centre.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.coco import FLIP_PAIRS, keypoints_to_heatmap, load_persons, render
from posefw.data import coco_mini_annotations
from posefw.engine import Crops, Engine
from posefw.transforms import HEATMAP_SIZE, box_to_center_scale


class OracleEngine(Engine):
    name = "oracle"
    device = "cpu"
    weights = "ground truth (oracle)"
    needs_crops = True

    def __init__(self, annotations: str | None = None, sigma: float = 2.0, max_batch: int = 64) -> None:
        self.persons = load_persons(annotations or coco_mini_annotations())
        self.centers, _ = box_to_center_scale(self.persons.boxes)
        self.sigma, self.max_batch = sigma, max_batch

    def infer(self, batch: Any, crops: Crops | None = None) -> np.ndarray:
        if crops is None:
            raise ValueError("crops: the oracle engine needs the crops' image ids, centres and scales")
        n = len(crops.image_ids)
        out = np.zeros((n, 17, HEATMAP_SIZE[1], HEATMAP_SIZE[0]), np.float32)
        for i in range(n):
            cand = np.flatnonzero(self.persons.image_ids == crops.image_ids[i])
            if cand.size == 0:
                continue
            j = cand[np.argmin(np.linalg.norm(self.centers[cand] - crops.centers[i], axis=1))]
            kp = self.persons.keypoints[j]
            pts = keypoints_to_heatmap(kp[None, :, :2], crops.centers[i : i + 1], crops.scales[i : i + 1], crops.udp)[0]
            vis = kp[:, 2] > 0
            if crops.flipped[i]:
                if not crops.udp:
                    raise ValueError("crops: the oracle renders flipped crops only with UDP encoding")
                pts[:, 0] = (HEATMAP_SIZE[0] - 1) - pts[:, 0]
                order = np.arange(17)
                for a, b in FLIP_PAIRS:
                    order[a], order[b] = b, a
                pts, vis = pts[order], vis[order]
            out[i] = render(pts[None], vis[None], self.sigma)[0]
        return out


@hookimpl
def posefw_register_engines():
    return [OracleEngine]
