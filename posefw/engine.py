"""The inference-engine contract: normalised crops in, heatmaps out, on the device.

``infer(batch)`` takes (N, 3, 256, 192) float images (NumPy or a torch tensor, on the engine's
device or the host) and returns (N, K, 64, 48) heatmaps, left where the engine produced them
(a CUDA tensor for GPU engines) so a GPU decoder reads them without a copy. ``crops`` carries
per-crop metadata for engines that need it (the oracle); others ignore it.
"""

from __future__ import annotations

from collections.abc import Callable
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

    @classmethod
    def of_batch(
        cls, image_ids: np.ndarray, centers: np.ndarray, scales: np.ndarray, udp: bool, flip: bool = False
    ) -> Crops:
        """A batch's metadata; with ``flip`` the mirrored crops follow the plain ones (the flip test)."""
        n = len(image_ids)
        if not flip:
            return cls(image_ids, centers, scales, np.zeros(n, bool), udp)
        return cls(
            np.tile(image_ids, 2), np.tile(centers, (2, 1)), np.tile(scales, (2, 1)), np.repeat([False, True], n), udp
        )


class Engine:
    """Base class for engines; plugins may subclass it or follow the same protocol."""

    name: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    #: Largest batch one ``infer`` call accepts (the pipeline chunks larger ones).
    max_batch: int = 64
    #: "random weights" unless a trained checkpoint was loaded.
    weights: str = "random weights"
    #: Where ``infer`` runs and leaves its heatmaps ("cpu", "cuda:0", ...): the pipeline makes
    #: crops on a CUDA device when the engine is there.
    runs_on: str = "cpu"
    #: Whether ``infer`` reads the ``crops`` metadata (image ids, boxes): only then does the
    #: pipeline build it for every batch.
    needs_crops: ClassVar[bool] = False
    #: Batch sizes the engine is optimised for (TensorRT's optimisation profiles); the benchmark
    #: measures each, forcing it through ``forced_profile`` (an index into ``opt_batches``).
    opt_batches: tuple[int, ...] = ()
    forced_profile: int | None = None
    #: The dtype of the crops the engine wants (the pipeline's GPU crop kernel writes it directly).
    input_dtype: str = "float32"

    @classmethod
    def available(cls) -> str | None:
        return None

    def infer(self, batch: Any, crops: Crops | None = None) -> Any:
        raise NotImplementedError

    def runner(
        self, batch_size: int, pre: Callable[[], Any] | None = None, post: Callable[[Any], Any] | None = None
    ) -> Callable[..., Any]:
        """A callable ``(batch=None, crops=None) -> post(heatmaps)`` for one batch size.

        ``pre()``, when given, makes the batch on the device (the pipeline's crop kernel) and the
        ``batch`` argument is not used. Engines that capture CUDA graphs override this to put
        ``pre``, the network and ``post`` into one graph; here they simply run in turn.

        A runner that is exactly one CUDA graph launch (with ``pre``) may say so as
        ``runner.graph = (graph_exec, output, device_index)``: a caller may then launch the
        cudaGraphExec_t on the device's current stream itself and read ``output`` (the pipeline
        does, through :mod:`posefw.cudart`, to keep torch's wrappers off a one-box call's path).
        """

        def run(batch: Any = None, crops: Crops | None = None) -> Any:
            heatmaps = self.infer(pre() if pre is not None else batch, crops)
            return post(heatmaps) if post is not None else heatmaps

        return run

    def describe(self) -> dict[str, Any]:
        """What this engine is, for reports (name, device, precision, weights...)."""
        return {"engine": self.name, "device": self.device, "weights": self.weights}


def check_batch(batch: Any, max_batch: int, name: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in getattr(batch, "shape", ()))
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"batch: expected images (N, 3, H, W), got shape {shape}")
    if shape[0] > max_batch:
        raise ValueError(
            f"batch: {shape[0]} crops exceed engine {name!r}'s maximum batch {max_batch} "
            "(the pipeline chunks larger batches)"
        )
    return shape
