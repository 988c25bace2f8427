"""posefw: real-time ViTPose pose estimation with pluggable, GPU-resident heatmap decoding.

Importing posefw loads only numpy and pluggy; GPU stacks are imported by the plugins that
need them, when they are used.
"""

from __future__ import annotations

from posefw.config import Config, load_config
from posefw.decoder import ALGORITHMS, Decoder, DecodeResult
from posefw.hookspecs import hookimpl
from posefw.registry import (
    PluginError,
    available_decoders,
    available_engines,
    available_sources,
    create_decoder,
    create_engine,
    get_registry,
)

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "Config",
    "DecodeResult",
    "Decoder",
    "PluginError",
    "__version__",
    "available_decoders",
    "available_engines",
    "available_sources",
    "create_decoder",
    "create_engine",
    "get_registry",
    "hookimpl",
    "load_config",
    "read_images",
]


def __getattr__(name: str):
    # The pipeline pulls in preprocessing; keep ``import posefw`` light.
    if name == "Pipeline":
        from posefw.pipeline import Pipeline

        return Pipeline
    if name == "read_images":
        from posefw.images import read_images

        return read_images
    raise AttributeError(f"module 'posefw' has no attribute {name!r}")
