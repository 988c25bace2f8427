"""cupy-full: the whole DARK decode in one fused CUDA kernel; nothing leaves the device.

Keypoints and scores are returned on the heatmaps' device, in their framework (torch in,
torch out; CuPy or NumPy in, CuPy out); ``result.numpy()`` copies them to the host. Runs on
the caller's current stream (or ``stream=``), allocates only its outputs (through torch's
graph-safe allocator for torch input, or ``out=``), so it can be captured in a CUDA graph.
"""

from __future__ import annotations

from typing import Any

from posefw import hookimpl
from posefw.decoder import Decoder, DecodeResult

from .cuda_arrays import device_view, empty_like_framework
from .cupy_common import Launch, cupy_unavailable


class CupyFullDecoder(Decoder):
    name = "cupy-full"
    graph_safe = True
    device = "cuda"
    #: blur_staging forces where classic DARK's full blur runs (0 global, 1 shared; default by size).
    options = ("blur_staging",)

    @classmethod
    def available(cls) -> str | None:
        return cupy_unavailable()

    def decode(
        self,
        heatmaps: Any,
        centers: Any = None,
        scales: Any = None,
        *,
        stream: Any = None,
        out: tuple[Any, Any] | None = None,
    ) -> DecodeResult:
        call = Launch(heatmaps, centers, scales, stream)
        shape = (call.n, call.k)
        if out is not None:
            kp, sc = out
            for name, arr, want in (("out[0]", kp, (*shape, 2)), ("out[1]", sc, shape)):
                v = device_view(arr)
                if v.shape != want or v.dtype != "float32":
                    raise ValueError(f"{name}: expected contiguous float32 {want}, got {v.dtype} {v.shape}")
        else:
            kp = empty_like_framework(call.fw, (*shape, 2), call.view.device)
            sc = empty_like_framework(call.fw, shape, call.view.device)
        if call.n:
            call.run(
                self.algorithm,
                self.kernel,
                0,
                device_view(kp).ptr,
                device_view(sc).ptr,
                0,
                self.opts.get("blur_staging"),
            )
        return DecodeResult(kp, sc)


@hookimpl
def posefw_register_decoders():
    return [CupyFullDecoder]
