"""Where the reference data lives: ``$POSEFW_DATA``, else ``shared/data`` beside the checkout.

posefw never copies or downloads data; the COCO mini set is read in place.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("POSEFW_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


def coco_mini() -> Path:
    return data_dir() / "coco-mini"


def coco_mini_annotations() -> Path:
    return coco_mini() / "annotations" / "person_keypoints_val2017_coco-mini.json"
