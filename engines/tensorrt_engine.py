"""tensorrt: a strongly typed TensorRT engine built from posefw's ONNX export through Polygraphy.

One build path for TensorRT 10 (>= 10.0, the ``STRONGLY_TYPED`` network flag, which Polygraphy
sets with ``strongly_typed=True``) and 11 (always strongly typed). Precision is decided in the
ONNX graph, not by builder flags: ``precision="fp16"`` builds from ``posefw export --precision
fp16`` (fp16 weights and activations, LayerNorm in fp32 between Cast nodes, fp32 heatmaps), so
the weak-typing API TensorRT 11 removed (the FP16 builder flag, precision constraints, per-layer
precision) is used nowhere. TensorRT cannot be installed on the machines this project is
developed on: this module is import-safe, ``available()`` says why it is unusable, and
tests/engines/test_tensorrt_api.py checks every TensorRT name it uses against the real bindings
of 10.0, 10.16 and 11.4 (docs/engines.md says exactly what ran).

- Two optimization profiles like the paper: min 1 / opt 1 / max 64 and min 1 / opt 64 / max 64;
  a call uses the profile whose optimum is nearest its batch.
- The serialized engine and the timing cache live in the cache folder, keyed by the ONNX file's
  digest, the options, the TensorRT version and the GPU, and are reused when all match.
- Input and output buffers take the dtypes the engine declares (fp16 in, fp32 out for the fp16
  export) and stay on the device as torch tensors (zero-copy); with ``cuda_graph`` each batch
  size's ``execute_async_v3`` is captured once in a CUDA graph and replayed.
"""

from __future__ import annotations

import json
from typing import Any

from posefw import hookimpl
from posefw.engine import Crops, Engine, check_batch

from .onnx_source import cache_dir, file_digest, resolve_onnx

INPUT = "images"
#: TensorRT majors this engine is written and API-checked against (pyproject pins the same).
SUPPORTED = (10, 11)
#: Methods called on TensorRT objects (ICudaEngine, IExecutionContext), besides the ``trt.``
#: names in this module's source; the API-surface test checks both lists against the bindings.
TRT_METHODS = (
    "get_tensor_name",
    "num_io_tensors",
    "create_execution_context",
    "get_tensor_dtype",
    "set_optimization_profile_async",
    "set_input_shape",
    "set_tensor_address",
    "execute_async_v3",
)


def version_problem(version: str) -> str | None:
    """Why this TensorRT version is not supported, or None."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        return f"tensorrt {version!r}: cannot read its version"
    if major not in SUPPORTED:
        return (
            f"tensorrt {version} is installed; posefw's engine supports TensorRT "
            f"{SUPPORTED[0]}.x-{SUPPORTED[-1]}.x (pip install 'posefw[tensorrt]' pins that range)"
        )
    return None


class TensorRTEngine(Engine):
    name = "tensorrt"
    device = "cuda"
    runs_on = "cuda"

    @classmethod
    def available(cls) -> str | None:
        try:
            import tensorrt
        except ImportError:
            return (
                "tensorrt is not installed: pip install 'posefw[tensorrt]' (NVIDIA's wheels, "
                "served from NVIDIA's package index)"
            )
        why = version_problem(getattr(tensorrt, "__version__", "?"))
        if why:
            return why
        try:
            from polygraphy.backend.trt import TrtRunner  # noqa: F401
        except ImportError:
            return "polygraphy is not installed: pip install 'posefw[tensorrt]'"
        try:
            import torch
        except ImportError:
            return "torch is needed for device tensors: pip install torch"
        if not torch.cuda.is_available():
            return "no CUDA GPU visible to torch"
        return None

    def __init__(
        self,
        onnx: str | None = None,
        checkpoint: str | None = None,
        size: str = "b",
        precision: str = "fp16",
        max_batch: int = 64,
        opt_batches: tuple[int, ...] = (1, 64),
        cuda_graph: bool = True,
        workspace_gib: float = 4.0,
        rebuild: bool = False,
    ) -> None:
        import tensorrt as trt
        import torch
        from polygraphy.backend.trt import (
            CreateConfig,
            EngineFromBytes,
            EngineFromNetwork,
            NetworkFromOnnxPath,
            Profile,
            SaveEngine,
        )

        why = version_problem(trt.__version__)
        if why:
            raise RuntimeError(why)
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision: expected 'fp32' or 'fp16', got {precision!r}")
        # An explicit ONNX file carries its own precision (strongly typed: the graph decides).
        self.path, self.weights = resolve_onnx(onnx, checkpoint, size, precision=precision)
        self.precision = precision if onnx is None else "as exported"
        self.max_batch, self.cuda_graph = max_batch, cuda_graph
        self.opt_batches = tuple(sorted(opt_batches))
        if any(b < 1 or b > max_batch for b in self.opt_batches):
            raise ValueError(f"opt_batches: each must lie in 1..{max_batch}, got {opt_batches}")
        options = {
            "typing": "strong",
            "max_batch": max_batch,
            "opt": self.opt_batches,
            "workspace_gib": workspace_gib,
            "trt": trt.__version__,
            "gpu": torch.cuda.get_device_name(),
        }
        key = file_digest(self.path)[:16] + "-" + _digest(json.dumps(options, sort_keys=True))
        folder = cache_dir() / "tensorrt"
        folder.mkdir(parents=True, exist_ok=True)
        self.engine_path = folder / f"{key}.engine"
        self.timing_cache = folder / f"timing-{_digest(options['trt'] + options['gpu'])}.cache"

        shape = lambda b: (b, 3, 256, 192)  # noqa: E731
        if self.engine_path.is_file() and not rebuild:
            loader = EngineFromBytes(self.engine_path.read_bytes())
        else:
            profiles = [
                Profile().add(INPUT, min=shape(1), opt=shape(b), max=shape(max_batch)) for b in self.opt_batches
            ]
            network = NetworkFromOnnxPath(str(self.path), strongly_typed=True)
            config = CreateConfig(
                profiles=profiles,
                memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_gib * (1 << 30))},
                load_timing_cache=str(self.timing_cache) if self.timing_cache.is_file() else None,
            )
            loader = SaveEngine(
                EngineFromNetwork(network, config=config, save_timing_cache=str(self.timing_cache)),
                path=str(self.engine_path),
            )
        self.engine = loader()
        self.contexts = [self.engine.create_execution_context() for _ in self.opt_batches]
        self.output = self.engine.get_tensor_name(self.engine.num_io_tensors - 1)
        self.dtypes = {name: _torch_dtype(self.engine.get_tensor_dtype(name)) for name in (INPUT, self.output)}
        self.stream = torch.cuda.Stream()
        for i, ctx in enumerate(self.contexts):
            ctx.set_optimization_profile_async(i, self.stream.cuda_stream)
        self.stream.synchronize()
        self._graphs: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "precision": self.precision,
            "typing": "strong",
            "input_dtype": self.input_dtype,
            "engine_file": str(self.engine_path),
            "profiles": [f"opt{b}" for b in self.opt_batches],
        }

    @property
    def input_dtype(self) -> str:
        return str(self.dtypes[INPUT]).removeprefix("torch.")

    def profile_for(self, n: int) -> int:
        if self.forced_profile is not None:
            return self.forced_profile
        return min(range(len(self.opt_batches)), key=lambda i: abs(self.opt_batches[i] - n))

    def _buffers(self, n: int):
        import torch

        return (
            torch.empty((n, 3, 256, 192), device="cuda", dtype=self.dtypes[INPUT]),
            torch.empty((n, 17, 64, 48), device="cuda", dtype=self.dtypes[self.output]),
        )

    def _enqueue(self, ctx, x, y, stream) -> None:
        ctx.set_input_shape(INPUT, tuple(x.shape))
        ctx.set_tensor_address(INPUT, x.data_ptr())
        ctx.set_tensor_address(self.output, y.data_ptr())
        if not ctx.execute_async_v3(stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed")

    def infer(self, batch: Any, crops: Crops | None = None) -> Any:
        import torch

        n = check_batch(batch, self.max_batch, self.name)[0]
        if not isinstance(batch, torch.Tensor):
            batch = torch.from_numpy(batch)
        batch = batch.to("cuda", self.dtypes[INPUT]).contiguous()
        ctx = self.contexts[self.profile_for(n)]
        cur = torch.cuda.current_stream()
        if not self.cuda_graph:
            out = torch.empty((n, 17, 64, 48), device="cuda", dtype=self.dtypes[self.output])
            self._enqueue(ctx, batch, out, cur.cuda_stream)
            return out
        key = (n, id(ctx))
        if key not in self._graphs:
            x, y = self._buffers(n)
            side = torch.cuda.Stream()
            self._enqueue(ctx, x, y, side.cuda_stream)  # warm-up outside capture, as TensorRT requires
            side.synchronize()
            graph = torch.cuda.CUDAGraph()
            # thread_local: a decoder thread's CUDA calls (NVDEC, copies) must not void this capture
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                self._enqueue(ctx, x, y, side.cuda_stream)
            self._graphs[key] = (graph, x, y)
        graph, x, y = self._graphs[key]
        x.copy_(batch)
        graph.replay()
        return y


def _torch_dtype(trt_dtype: Any):
    """The torch dtype of a TensorRT tensor dtype (through NumPy's, which trt.nptype gives)."""
    import numpy as np
    import tensorrt as trt
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}[np.dtype(trt.nptype(trt_dtype))]


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


@hookimpl
def posefw_register_engines():
    return [TensorRTEngine]
