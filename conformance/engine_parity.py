"""Engine parity: heatmaps from an engine against torch fp32 on the same crops, and what they decode to.

Polygraphy's Comparator runs a torch-fp32 runner and the engine's runner on the same batch of
real crops (coco-mini persons, or random crops without the data) and reports max absolute and
relative error as Polygraphy computes them. Both heatmap sets are then decoded by numpy-cpu;
the share of keypoints within 0.5 heatmap px of the fp32 result is the engine's keypoint parity.
Tolerances (docs/conformance.md), by the engine's precision: fp32 atol 1e-3 and >= 99% of
keypoints within 0.5 px; fp16 atol 5e-2 and >= 95%; bf16 (8 mantissa bits) atol 1e-1 and >= 85%.
Random-weight heatmaps have no clear peak, so their argmax moves more easily than a trained
model's: these bounds are for that harder case.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from posefw.arrays import to_numpy

TOLERANCES = {"fp32": (1e-3, 0.99), "fp16": (5e-2, 0.95), "bf16": (1e-1, 0.85)}


def crops(n: int = 8, seed: int = 0) -> np.ndarray:
    """Real person crops from coco-mini when present, else seeded random normalised images."""
    from posefw.data import coco_mini, coco_mini_annotations

    ann = coco_mini_annotations()
    if ann.is_file() and (coco_mini() / "images" / "val2017").is_dir():
        from posefw.coco import load_persons
        from posefw.preprocess import crop_cpu, read_image
        from posefw.transforms import box_to_center_scale

        persons = load_persons(ann)
        out = []
        for iid in list(dict.fromkeys(persons.image_ids.tolist())):
            name = persons.images[iid]
            boxes = persons.boxes[persons.image_ids == iid]
            c, s = box_to_center_scale(boxes)
            out.append(crop_cpu(read_image(coco_mini() / "images" / "val2017" / name), c, s))
            if sum(len(o) for o in out) >= n:
                break
        return np.concatenate(out)[:n]
    return np.random.default_rng(seed).standard_normal((n, 3, 256, 192)).astype(np.float32)


def _runner(name: str, fn):
    import time

    from polygraphy.backend.base import BaseRunner

    class EngineRunner(BaseRunner):
        def __init__(self):
            super().__init__(name=name, prefix="posefw-engine")

        def activate_impl(self):
            pass

        def get_input_metadata_impl(self):
            from polygraphy.common import TensorMetadata

            return TensorMetadata().add("images", np.float32, (-1, 3, 256, 192))

        def infer_impl(self, feed_dict):
            t = time.time()
            out = np.ascontiguousarray(np.asarray(to_numpy(fn(feed_dict["images"])), dtype=np.float32))
            self.inference_time = time.time() - t
            return OrderedDict(heatmaps=out)

        def deactivate_impl(self):
            pass

    return EngineRunner()


def run(engine: Any, reference: Any, batch: np.ndarray | None = None) -> dict[str, Any]:
    """Compare ``engine`` with ``reference`` (a torch fp32 engine with the same weights)."""
    from polygraphy.comparator import Comparator, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    import posefw

    G_LOGGER.module_severity = G_LOGGER.WARNING
    x = crops() if batch is None else batch
    precision = str(engine.describe().get("precision", "fp32")).split()[0]
    atol, share = TOLERANCES.get(precision, TOLERANCES["fp16"])
    runners = [_runner("torch-fp32", reference.infer), _runner(engine.name, engine.infer)]
    results = Comparator.run(runners, data_loader=[{"images": x}], warm_up=0)
    accuracy = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=atol, rtol=atol))
    ref_hm = np.asarray(results[0][1][0]["heatmaps"])
    got_hm = np.asarray(results[1][1][0]["heatmaps"])
    diff = np.abs(got_hm - ref_hm)
    dec = posefw.create_decoder("numpy-cpu")
    a, b = dec.decode(ref_hm).keypoints, dec.decode(got_hm).keypoints
    within = float((np.abs(a - b).max(axis=-1) <= 0.5).mean())
    return {
        "engine": engine.describe(),
        "reference": "torch fp32",
        "batch": int(len(x)),
        "polygraphy_passed": bool(accuracy),
        "max_abs_error": float(diff.max()),
        "max_rel_error": float((diff / np.maximum(np.abs(ref_hm), 1e-12)).max()),
        "mean_abs_error": float(diff.mean()),
        "keypoints_within_half_px": within,
        "tolerance": {"atol": atol, "min_within": share},
        "passed": within >= share,
    }
