"""tensorrt: an FP16 TensorRT engine built from the ONNX model through Polygraphy.

Written against TensorRT 10 as Polygraphy wraps it; TensorRT cannot be installed on the
machines this project is developed on, so this module is import-safe and ``available()``
says why it is unusable (docs/engines.md states exactly what was and was not run).

- Two optimization profiles like the paper: min 1 / opt 1 / max 64 and min 1 / opt 64 / max 64;
  a call uses the profile whose optimum is nearest its batch.
- LayerNormalization layers are pinned to fp32 (precision constraints "obey"), the known fix for
  ViTPose's fp16 LayerNorm overflow; the ONNX export keeps them as single nodes (opset >= 17).
- The serialized engine and the timing cache live in the cache folder, keyed by the ONNX file's
  digest, the options, the TensorRT version and the GPU, and are reused when all match.
- Inputs and outputs stay on the device as torch tensors (zero-copy); with ``cuda_graph`` each
  batch size's ``execute_async_v3`` is captured once in a CUDA graph and replayed.
"""

from __future__ import annotations

import json
from typing import Any

from posefw import hookimpl
from posefw.engine import Crops, Engine, check_batch

from .onnx_source import cache_dir, file_digest, resolve_onnx

INPUT = "images"


def keep_norms_fp32(network: Any) -> Any:
    """Pin every normalization layer (and its output) to float32 inside an fp16 engine."""
    import tensorrt as trt

    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.precision = trt.float32
            layer.set_output_type(0, trt.float32)
    return network


class TensorRTEngine(Engine):
    name = "tensorrt"
    device = "cuda"
    runs_on = "cuda"

    @classmethod
    def available(cls) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return ("tensorrt is not installed: pip install 'posefw[tensorrt]' (NVIDIA's wheels, "
                    "served from NVIDIA's package index)")
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

    def __init__(self, onnx: str | None = None, checkpoint: str | None = None, size: str = "b", fp16: bool = True,
                 max_batch: int = 64, opt_batches: tuple[int, ...] = (1, 64), cuda_graph: bool = True,
                 workspace_gib: float = 4.0, rebuild: bool = False) -> None:
        import tensorrt as trt
        import torch
        from polygraphy.backend.trt import (
            CreateConfig,
            EngineFromBytes,
            EngineFromNetwork,
            NetworkFromOnnxPath,
            PostprocessNetwork,
            Profile,
            SaveEngine,
        )

        self.path, self.weights = resolve_onnx(onnx, checkpoint, size)
        self.max_batch, self.fp16, self.cuda_graph = max_batch, fp16, cuda_graph
        self.opt_batches = tuple(sorted(opt_batches))
        if any(b < 1 or b > max_batch for b in self.opt_batches):
            raise ValueError(f"opt_batches: each must lie in 1..{max_batch}, got {opt_batches}")
        options = {"fp16": fp16, "max_batch": max_batch, "opt": self.opt_batches, "workspace_gib": workspace_gib,
                   "norms": "fp32", "trt": trt.__version__, "gpu": torch.cuda.get_device_name()}
        key = file_digest(self.path)[:16] + "-" + _digest(json.dumps(options, sort_keys=True))
        folder = cache_dir() / "tensorrt"
        folder.mkdir(parents=True, exist_ok=True)
        self.engine_path = folder / f"{key}.engine"
        self.timing_cache = folder / f"timing-{_digest(options['trt'] + options['gpu'])}.cache"

        shape = lambda b: (b, 3, 256, 192)  # noqa: E731
        if self.engine_path.is_file() and not rebuild:
            loader = EngineFromBytes(self.engine_path.read_bytes())
        else:
            profiles = [Profile().add(INPUT, min=shape(1), opt=shape(b), max=shape(max_batch)) for b in self.opt_batches]
            network = PostprocessNetwork(NetworkFromOnnxPath(str(self.path)), func=keep_norms_fp32)
            config = CreateConfig(fp16=fp16, profiles=profiles, precision_constraints="obey",
                                  memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_gib * (1 << 30))},
                                  load_timing_cache=str(self.timing_cache) if self.timing_cache.is_file() else None)
            loader = SaveEngine(EngineFromNetwork(network, config=config, save_timing_cache=str(self.timing_cache)),
                                path=str(self.engine_path))
        self.engine = loader()
        self.contexts = [self.engine.create_execution_context() for _ in self.opt_batches]
        self.output = self.engine.get_tensor_name(self.engine.num_io_tensors - 1)
        self.stream = torch.cuda.Stream()
        for i, ctx in enumerate(self.contexts):
            ctx.set_optimization_profile_async(i, self.stream.cuda_stream)
        self.stream.synchronize()
        self._graphs: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "precision": "fp16 (norms fp32)" if self.fp16 else "fp32",
                "engine_file": str(self.engine_path), "profiles": [f"opt{b}" for b in self.opt_batches]}

    #: Set to a profile index to force it (the benchmark's opt1/opt64 rows); None picks the nearest.
    forced_profile: int | None = None

    def profile_for(self, n: int) -> int:
        if self.forced_profile is not None:
            return self.forced_profile
        return min(range(len(self.opt_batches)), key=lambda i: abs(self.opt_batches[i] - n))

    def _buffers(self, n: int):
        import torch

        dt = torch.float32
        return (torch.empty((n, 3, 256, 192), device="cuda", dtype=dt),
                torch.empty((n, 17, 64, 48), device="cuda", dtype=dt))

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
        batch = batch.to("cuda", torch.float32).contiguous()
        ctx = self.contexts[self.profile_for(n)]
        cur = torch.cuda.current_stream()
        if not self.cuda_graph:
            out = torch.empty((n, 17, 64, 48), device="cuda")
            self._enqueue(ctx, batch, out, cur.cuda_stream)
            return out
        key = (n, id(ctx))
        if key not in self._graphs:
            x, y = self._buffers(n)
            side = torch.cuda.Stream()
            self._enqueue(ctx, x, y, side.cuda_stream)  # warm-up outside capture, as TensorRT requires
            side.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                self._enqueue(ctx, x, y, side.cuda_stream)
            self._graphs[key] = (graph, x, y)
        graph, x, y = self._graphs[key]
        x.copy_(batch)
        graph.replay()
        return y


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


@hookimpl
def posefw_register_engines():
    return [TensorRTEngine]
