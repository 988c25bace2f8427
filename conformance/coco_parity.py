"""COCO AP parity: a candidate decoder against numpy-cpu on real annotations (the paper's Table II).

Heatmaps are rendered from coco-mini's ground-truth keypoints with model-like degradation,
decoded by both decoders, transformed back to the image and scored by COCOeval. The candidate
passes when |AP - AP_ref| <= 0.001.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posefw.arrays import to_numpy
from posefw.coco import degraded_heatmaps, evaluate, load_persons, results

MAX_DELTA_AP = 1e-3


def run(make_decoder, algorithm: str, ann_file: str | Path, seed: int = 0, to_input=lambda a: a) -> dict[str, Any]:
    from posefw.conformance.numeric import Reference

    persons = load_persons(ann_file)
    maps, centers, scales = degraded_heatmaps(persons, udp=algorithm == "dark-udp", seed=seed)
    table = {}
    for label, dec in (("numpy-cpu", Reference(algorithm, 11)), ("candidate", make_decoder(algorithm=algorithm))):
        inp = maps if label == "numpy-cpu" else to_input(maps)
        res = dec.decode(inp, centers, scales)
        kp, sc = np.asarray(to_numpy(res.keypoints)), np.asarray(to_numpy(res.scores))
        table[label] = evaluate(ann_file, results(persons, kp, sc))
    delta = {m: table["candidate"][m] - table["numpy-cpu"][m] for m in ("AP", "AP50", "AP75", "AR")}
    return {
        "algorithm": algorithm,
        "annotations": str(ann_file),
        "instances": int(len(maps)),
        "seed": seed,
        "reference": table["numpy-cpu"],
        "candidate": table["candidate"],
        "delta": delta,
        "passed": abs(delta["AP"]) <= MAX_DELTA_AP,
    }
