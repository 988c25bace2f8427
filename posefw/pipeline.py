"""The top-down pipeline: preprocess -> engine -> decoder -> transform, batched across frames.

Boxes from any number of frames become one stream of crops, cut into batches of at most the
engine's maximum. With ``flip_test`` each crop's mirror rides in the same batch; its heatmaps
are mirrored back with the COCO left/right pairs swapped and averaged with the plain ones
(no shift: UDP is flip-consistent), as ViTPose evaluates. A bad box is reported by index and
gets NaN keypoints; it never costs the other boxes their results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posefw.arrays import framework, to_numpy
from posefw.coco import FLIP_PAIRS
from posefw.engine import Crops
from posefw.preprocess import check_boxes_xywh, crop_cpu
from posefw.transforms import box_to_center_scale


@dataclass
class PoseResult:
    """One frame's poses: keypoints (N, K, 2) and scores (N, K) in image pixels, per input box."""

    keypoints: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    errors: list[str] = field(default_factory=list)


def flip_permutation(k: int = 17) -> np.ndarray:
    perm = np.arange(k)
    for a, b in FLIP_PAIRS:
        if b < k:
            perm[a], perm[b] = b, a
    return perm


def flip_back(heatmaps: Any) -> Any:
    """Mirror heatmaps of flipped crops back: reverse W and swap left/right keypoints."""
    perm = flip_permutation(heatmaps.shape[1])
    if framework(heatmaps) == "torch":
        import torch

        return torch.flip(heatmaps, dims=[3])[:, torch.as_tensor(perm, device=heatmaps.device)]
    return np.ascontiguousarray(np.asarray(heatmaps)[:, perm, :, ::-1])


class Pipeline:
    def __init__(self, engine: Any, decoder: Any, flip_test: bool = False, udp: bool | None = None) -> None:
        self.engine, self.decoder, self.flip_test = engine, decoder, flip_test
        self.udp = decoder.udp if udp is None else udp
        if flip_test and not self.udp:
            raise ValueError("flip_test: implemented for UDP (dark-udp), which is flip-consistent without a shift")

    @classmethod
    def from_config(cls, config, flip_test: bool = False) -> Pipeline:
        import posefw

        engine = posefw.create_engine(config.engine.name, **config.engine.options)
        d = config.decoder
        decoder = posefw.create_decoder(d.name, algorithm=d.algorithm, kernel=d.kernel, **d.options)
        return cls(engine, decoder, flip_test=flip_test)

    def __call__(self, images: list[np.ndarray], boxes: list[Any], image_ids: list[int] | None = None) -> list[PoseResult]:
        if len(images) != len(boxes):
            raise ValueError(f"boxes: expected one box array per image ({len(images)}), got {len(boxes)}")
        image_ids = list(range(len(images))) if image_ids is None else list(image_ids)
        k = 17  # COCO; resized below if the engine's model has another keypoint count
        results, crops, owners, meta = [], [], [], []
        for f, (img, bx) in enumerate(zip(images, boxes)):
            bx = np.asarray(bx, np.float64).reshape(-1, 4)
            ok, reasons = check_boxes_xywh(bx, img.shape)
            n = len(bx)
            results.append(PoseResult(np.full((n, k, 2), np.nan, np.float32), np.full((n, k), np.nan, np.float32),
                                      ok, [r for r in reasons if r]))
            if not ok.any():
                continue
            c, s = box_to_center_scale(bx[ok])
            crops.append(crop_cpu(img, c, s, udp=self.udp))
            owners += [(f, i) for i in np.flatnonzero(ok)]
            meta.append((np.full(len(c), image_ids[f]), c, s))
        if not owners:
            return results
        x = np.concatenate(crops)
        ids, centers, scales = (np.concatenate(m) for m in zip(*meta))
        per = self.engine.max_batch // (2 if self.flip_test else 1)
        if per < 1:
            raise ValueError("engine max_batch must be >= 2 for the flip test")
        kps, scs = [], []
        for start in range(0, len(x), per):
            sl = slice(start, start + per)
            kp, sc = self._run(x[sl], ids[sl], centers[sl], scales[sl])
            kps.append(kp)
            scs.append(sc)
        kp, sc = np.concatenate(kps), np.concatenate(scs)
        if kp.shape[1] != k:  # a model with another keypoint count: size the results to it
            for r in results:
                n = len(r.valid)
                r.keypoints = np.full((n, kp.shape[1], 2), np.nan, np.float32)
                r.scores = np.full((n, kp.shape[1]), np.nan, np.float32)
        for row, (f, i) in enumerate(owners):
            results[f].keypoints[i], results[f].scores[i] = kp[row], sc[row]
        return results

    def _run(self, x, ids, centers, scales):
        n = len(x)
        flipped = np.zeros(n, bool)
        if self.flip_test:
            x = np.concatenate([x, x[..., ::-1]])
            ids, flipped = np.concatenate([ids, ids]), np.concatenate([flipped, ~flipped])
            c2, s2 = np.concatenate([centers, centers]), np.concatenate([scales, scales])
        else:
            c2, s2 = centers, scales
        hm = self.engine.infer(np.ascontiguousarray(x), Crops(ids, c2, s2, flipped, self.udp))
        if self.flip_test:
            hm = (hm[:n] + flip_back(hm[n:])) * 0.5
        res = self.decoder.decode(hm, centers, scales)
        return np.asarray(to_numpy(res.keypoints)), np.asarray(to_numpy(res.scores))
