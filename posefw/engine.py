"""The inference-engine contract: normalised crops in, heatmaps out, on the device.

``infer(batch)`` takes (N, 3, 256, 192) float images (NumPy or a torch tensor, on the engine's
device or the host) and returns (N, K, 64, 48) heatmaps, left where the engine produced them
(a CUDA tensor for GPU engines) so a GPU decoder reads them without a copy. ``crops`` carries
per-crop metadata for engines that need it (the oracle); others ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass
class Crops:
    """Per-crop metadata the pipeline passes along with a batch."""

    image_ids: np.ndarray  # (N,)
    centers: np.ndarray  # (N, 2) image pixels
    scales: np.ndarray  # (N, 2) image pixels
    flipped: np.ndarray  # (N,) bool: crop was mirrored (flip test)
    udp: bool = True


class Engine:
    """Base class for engines; plugins may subclass it or follow the same protocol."""

    name: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    #: Largest batch one ``infer`` call accepts (the pipeline chunks larger ones).
    max_batch: int = 64
    #: "random weights" unless a trained checkpoint was loaded.
    weights: str = "random weights"

    @classmethod
    def available(cls) -> str | None:
        return None

    def infer(self, batch: Any, crops: Crops | None = None) -> Any:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What this engine is, for reports (name, device, precision, weights...)."""
        return {"engine": self.name, "device": self.device, "weights": self.weights}


def check_batch(batch: Any, max_batch: int, name: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in getattr(batch, "shape", ()))
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"batch: expected images (N, 3, H, W), got shape {shape}")
    if shape[0] > max_batch:
        raise ValueError(f"batch: {shape[0]} crops exceed engine {name!r}'s maximum batch {max_batch} "
                         "(the pipeline chunks larger batches)")
    return shape
