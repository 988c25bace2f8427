"""onnxruntime: the exported model through Polygraphy's ONNX-Runtime runner.

Uses the TensorRT or CUDA execution provider when the installed onnxruntime has them, else
the CPU one; ``describe()`` says which ran.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.engine import Crops, Engine, check_batch

from .onnx_source import resolve_onnx

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    device = "cpu/cuda"

    @classmethod
    def available(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
            from polygraphy.backend.onnxrt import OnnxrtRunner  # noqa: F401
        except ImportError as exc:
            return f"{exc.name} is not installed: pip install 'posefw[onnx]'"
        return None

    def __init__(
        self,
        onnx: str | None = None,
        checkpoint: str | None = None,
        size: str = "b",
        providers: list[str] | None = None,
        max_batch: int = 64,
        precision: str = "fp32",
    ) -> None:
        import onnxruntime as ort
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        have = ort.get_available_providers()
        if providers:
            missing = [p for p in providers if p not in have]
            if missing:
                raise ValueError(f"providers: {missing} not in this onnxruntime (it has {have})")
        else:
            providers = [p for p in PREFERRED if p in have]
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision: expected 'fp32' or 'fp16', got {precision!r}")
        self.path, self.weights = resolve_onnx(onnx, checkpoint, size, precision=precision)
        self.session = OnnxrtRunner(SessionFromOnnx(str(self.path), providers=providers))
        self.session.activate()
        self.provider = self.session.sess.get_providers()[0]
        self.max_batch = max_batch
        first = self.session.sess.get_inputs()[0]
        self.input_name = first.name
        # The model's own input type: float16 for posefw's fp16 export, float32 otherwise.
        self.feed_dtype = np.float16 if first.type == "tensor(float16)" else np.float32

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "device": self.provider,
            "onnx": str(self.path),
            "input_dtype": np.dtype(self.feed_dtype).name,
        }

    def infer(self, batch: Any, crops: Crops | None = None) -> Any:
        check_batch(batch, self.max_batch, self.name)
        if type(batch).__module__.startswith("torch"):
            batch = batch.detach().cpu().numpy()
        out = self.session.infer({self.input_name: np.ascontiguousarray(batch, dtype=self.feed_dtype)})
        return next(iter(out.values()))

    def __del__(self) -> None:
        session = getattr(self, "session", None)
        if session is not None and session.is_active:
            session.deactivate()


@hookimpl
def posefw_register_engines():
    return [OnnxRuntimeEngine]
