"""Shared fixtures: the reference data folder, GPU detection, seeded heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posefw.data import coco_mini

COCO_MINI = coco_mini()


@pytest.fixture
def coco_mini() -> Path:
    if not (COCO_MINI / "annotations").is_dir():
        pytest.skip(f"COCO mini data not found at {COCO_MINI} (set POSEFW_DATA)")
    return COCO_MINI


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
