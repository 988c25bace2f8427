"""Helpers for testing posefw and its plugins; ``pytest_plugin`` is the shipped pytest plugin."""

from __future__ import annotations


def cuda_reason() -> str | None:
    """None when torch sees a CUDA GPU, else why GPU tests skip."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (GPU tests run on the GPU machine, see docs/conformance.md)"
    return None
