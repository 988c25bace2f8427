"""torch-full: DARK in plain torch ops, for the same CUDA graph as a torch model and for export.

Runs wherever torch runs (CPU or CUDA), on torch's current stream. ``posefw export
--with-decoder`` appends the same module after the heatmap head so an engine outputs keypoints.
Options: ``device`` for NumPy input ("cpu" by default), ``solve_dtype`` ("float64" or "float32").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.arrays import framework, is_cuda
from posefw.decoder import Decoder, DecodeResult, check_boxes, check_device_boxes, check_heatmaps


class TorchFullDecoder(Decoder):
    name = "torch-full"
    graph_safe = True
    device = "cpu/cuda"
    options = ("device", "solve_dtype")

    @classmethod
    def available(cls) -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed: pip install torch (the CPU build is enough)"
        return None

    def __init__(self, algorithm: str = "dark-udp", kernel: int = 11, **options: Any) -> None:
        super().__init__(algorithm, kernel, **options)
        import torch

        from posefw.dark_torch import DarkDecode

        solve = self.opts.get("solve_dtype", "float64")
        if solve not in ("float64", "float32"):
            raise ValueError(f"solve_dtype: expected 'float64' or 'float32', got {solve!r}")
        self.module = DarkDecode(self.algorithm, self.kernel, getattr(torch, solve))
        self.default_device = str(self.opts.get("device", "cpu"))
        if self.default_device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device: {self.default_device!r} requested but torch sees no CUDA GPU "
                "(a CPU build of torch, or no driver); use device='cpu'"
            )

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None) -> DecodeResult:
        import torch

        n, k, _, _ = check_heatmaps(heatmaps)
        if framework(heatmaps) != "torch":
            heatmaps = _as_torch(heatmaps, self.default_device)
        dev = heatmaps.device
        self.module.to(dev)
        c = s = None
        if centers is not None or scales is not None:
            if is_cuda(centers) and is_cuda(scales) and framework(centers) == "torch" == framework(scales):
                check_device_boxes(centers, scales, n)
                c, s = centers.to(dev), scales.to(dev)
                if not torch.cuda.is_current_stream_capturing():
                    check_boxes(c, s, n)  # the values, as every backend checks them (a sync; never in a graph)
            else:
                cc, ss = check_boxes(centers, scales, n)
                c, s = torch.as_tensor(cc, device=dev), torch.as_tensor(ss, device=dev)
        if n == 0:
            return DecodeResult(torch.zeros((0, k, 2), device=dev), torch.zeros((0, k), device=dev))
        with torch.no_grad():
            kp, sc = self.module(heatmaps.detach(), c, s)
            if c is not None and dev.type == "cuda" and torch.cuda.is_current_stream_capturing():
                # In a graph no value can be read back: a box that fails the checks gets NaN instead.
                bad = ~(torch.isfinite(c).all(1) & torch.isfinite(s).all(1) & (s > 0).all(1))
                kp = torch.where(bad[:, None, None], torch.nan, kp)
                sc = torch.where(bad[:, None], torch.nan, sc)
        return DecodeResult(kp, sc)


def _as_torch(x: Any, device: str):
    """Zero-copy for CUDA arrays (DLPack, else __cuda_array_interface__); NumPy is copied once."""
    import torch

    if is_cuda(x):
        if hasattr(x, "__dlpack__"):
            return torch.from_dlpack(x)
        return torch.as_tensor(x, device="cuda")
    return torch.as_tensor(np.asarray(x), device=device)


@hookimpl
def posefw_register_decoders():
    return [TorchFullDecoder]
