"""torch: ViTPose in PyTorch, eager or torch.compile, fp32/fp16/bf16, CPU or CUDA, CUDA graphs.

With ``cuda_graph=True`` each batch size is captured once into a CUDA graph with a static
input buffer; ``runner(batch_size, post=fn)`` captures the model and a post-processing step
(a full GPU decoder) in the same graph, so heatmaps never leave the device between them.
Outputs stay on the device; a graph's outputs are its static buffers, overwritten by the
next replay of that batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from posefw import hookimpl
from posefw.engine import Crops, Engine, check_batch

PRECISIONS = ("fp32", "fp16", "bf16")
#: Attention kernels: "sdpa" (scaled_dot_product_attention: cuDNN/flash on CUDA) or "flex"
#: (flex_attention, compiled; the default when compiling for CUDA, docs/engines.md).
ATTENTIONS = ("sdpa", "flex")
#: Fewest images per stream slice (``streams``): ViTPose-B fp16 on an H100 gained 1-3% from two
#: slices at batch 64 and lost 10% at batch 8 (docs/results/benchmarks-history.md), where slices underfill the GPU.
SPLIT_MIN = 32


@dataclass(frozen=True)
class TorchOptions:
    """How a TorchEngine is built. Each field is a constructor keyword and a TOML key; values are
    checked here, what depends on the machine (CUDA present) when the engine is built."""

    checkpoint: str | None = None  # official .pth or HuggingFace .safetensors; None: random weights
    size: str = "b"  # s, b, l, h (random weights)
    precision: str = "fp32"  # fp32, fp16 (CUDA), bf16
    device: str | None = None  # default: cuda when torch sees a GPU
    compile: bool | str = False  # torch.compile; a string is its mode
    cuda_graph: bool = False  # one graph per batch size
    max_batch: int = 64
    seed: int = 0  # random weights' seed
    channels_last: bool = False
    fuse_gelu: bool | None = None  # default: on for fp16 on CUDA
    streams: int | None = None  # stream slices per batch; default 2 with graphs, else 1
    attention: str | None = None  # sdpa or flex; default flex when compiling for CUDA
    fuse_head: bool | None = None  # default: wherever it can (CUDA, Triton)

    def __post_init__(self) -> None:
        from posefw.models.vitpose import SIZES

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {sorted(SIZES)}, got {self.size!r}")
        if self.streams is not None and (
            not isinstance(self.streams, int) or isinstance(self.streams, bool) or self.streams < 1
        ):
            raise ValueError(f"streams: expected an integer >= 1, got {self.streams!r}")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise ValueError(f"attention: expected one of {ATTENTIONS}, got {self.attention!r}")

    @classmethod
    def of(cls, given: dict[str, Any]) -> TorchOptions:
        """From keywords; an unknown one is named with the accepted ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise TypeError(f"options: engine 'torch' accepts {', '.join(known + ['model'])}; unknown {unknown}")
        return cls(**given)


class TorchEngine(Engine):
    name = "torch"
    device = "cpu/cuda"

    @classmethod
    def available(cls) -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed: pip install torch"
        return None

    #: Constructor keywords (and TOML ``[engine.options]`` keys): TorchOptions' fields and ``model``.
    options = ("model",)  # completed below the class from TorchOptions

    def __init__(self, options: TorchOptions | None = None, *, model: Any = None, **given: Any) -> None:
        import torch

        from posefw.models.checkpoints import load_vitpose
        from posefw.models.vitpose import random_vitpose

        if options is not None and given:
            raise TypeError("TorchEngine: give a TorchOptions or keywords, not both")
        o = options if options is not None else TorchOptions.of(given)
        self.opts = o
        precision, compile = o.precision, o.compile
        fuse_gelu, streams = o.fuse_gelu, o.streams  # None: resolved below from the device
        dev = o.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device: {dev!r} requested but torch sees no CUDA GPU")
        if dev == "cpu" and precision == "fp16":
            raise ValueError("precision: fp16 needs a CUDA device (use fp32 or bf16 on the CPU)")
        if o.cuda_graph and not dev.startswith("cuda"):
            raise ValueError("cuda_graph: needs a CUDA device")
        if streams is None:  # default: two slices where they were measured to pay, in CUDA graphs
            streams = 2 if o.cuda_graph else 1
        if streams > 1 and not dev.startswith("cuda"):
            raise ValueError("streams: more than one stream needs a CUDA device")
        if o.attention == "flex" and not compile:
            raise ValueError("attention: 'flex' needs compile (eager flex attention is an unfused reference)")
        self.checkpoint, self.size, self.seed = o.checkpoint, o.size, o.seed
        if model is not None:
            self.model = model
        elif o.checkpoint:
            self.model = load_vitpose(o.checkpoint)
            self.weights = f"checkpoint {o.checkpoint}"
        else:
            self.model = random_vitpose(o.size, seed=o.seed)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.torch_device = torch.device(dev)
        self.model = self.model.to(self.torch_device, self.dtype).eval()
        if o.channels_last:
            self.model.channels_last_head()
        if fuse_gelu is None:  # default: on for fp16 on CUDA, where tanh GELU is below fp16's rounding
            fuse_gelu = precision == "fp16" and hasattr(self.model, "fuse_gelu")
        if fuse_gelu:  # GELU's tanh form inside the fc1 GEMM (see ViTPose.fuse_gelu)
            if not hasattr(self.model, "fuse_gelu"):
                raise ValueError("fuse_gelu: needs posefw's ViTPose module, got " + type(self.model).__name__)
            self.model.fuse_gelu()
        self.fuse_gelu = bool(fuse_gelu)
        flexible = hasattr(self.model, "flex_attention")
        if o.attention == "flex" and not flexible:
            raise ValueError("attention: 'flex' needs posefw's ViTPose module, got " + type(self.model).__name__)
        # Default: flex where it is fast, i.e. as the Triton kernel torch.compile makes for CUDA.
        self.attention = o.attention or ("flex" if compile and dev.startswith("cuda") and flexible else "sdpa")
        if self.attention == "flex":
            self.model.flex_attention()
        self.fuse_head = self._fuse_head(o.fuse_head, dev)
        # No fp32 casts around LayerNorm here: PyTorch's fused layer_norm already accumulates in fp32
        # for half inputs (the fp16 LayerNorm overflow is TensorRT's decomposed norm, see tensorrt_engine).
        # compile=True uses torch.compile's default mode; a string picks the mode
        # (e.g. "max-autotune-no-cudagraphs": posefw captures its own graphs).
        mode = compile if isinstance(compile, str) else None
        self.forward: Callable = torch.compile(self.model, mode=mode) if compile else self.model
        self.precision, self.cuda_graph, self.max_batch = precision, o.cuda_graph, o.max_batch
        self.compiled, self.streams = compile, streams
        self._side_streams = [torch.cuda.Stream(self.torch_device) for _ in range(streams)] if streams > 1 else []
        self._graphs: dict[tuple[int, Any], Any] = {}

    def _fuse_head(self, wanted: bool | None, dev: str) -> bool:
        """Whether the head's tail runs as one Triton kernel: by default wherever it can (CUDA, Triton,
        posefw's ViTPose with the classic head); asked for where it cannot, a clear error."""
        from posefw.models.head_kernel import triton_unavailable

        if not dev.startswith("cuda"):
            why = "needs a CUDA device"
        elif not (
            hasattr(self.model, "fuse_head") and hasattr(getattr(self.model, "keypoint_head", None), "fused_tail")
        ):
            why = "needs posefw's ViTPose module with the classic head"
        else:
            why = triton_unavailable()
        if wanted and why:
            raise ValueError(f"fuse_head: {why}")
        on = bool(wanted if wanted is not None else not why)
        if on:
            self.model.fuse_head()
        return on

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "device": str(self.torch_device),
            "size": self.size,
            "precision": self.precision,
            "compile": self.compiled,
            "cuda_graph": self.cuda_graph,
            "fuse_gelu": self.fuse_gelu,
            "streams": self.streams,
            "attention": self.attention,
            "fuse_head": self.fuse_head,
        }

    def _to_input(self, batch: Any):
        import torch

        if not isinstance(batch, torch.Tensor):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        return batch.to(self.torch_device, self.dtype, non_blocking=True)

    def infer(self, batch: Any, crops: Crops | None = None) -> Any:
        n = check_batch(batch, self.max_batch, self.name)[0]
        return self.runner(n)(batch)  # a graph replay, or the same step run eagerly

    def _slices(self, batch: int) -> int:
        """How many stream slices a batch is cut into: at most ``streams``, none under SPLIT_MIN images."""
        return max(1, min(self.streams, batch // SPLIT_MIN)) if self._side_streams else 1

    def _split_forward(self, x):
        """The batch in slices, one per CUDA stream, forked from and joined to the current one.

        Slices run concurrently, so one slice's memory-bound kernels (norms, attention) and the gaps
        between dependent launches overlap another slice's GEMMs. Inside a graph capture the fork
        and join become graph edges.
        """
        import torch

        cur = torch.cuda.current_stream(x.device)
        chunks = x.tensor_split(self._slices(x.shape[0]))
        out = torch.empty((x.shape[0], self.model.cfg.num_keypoints, *self.heatmap_size), device=x.device)
        start = 0
        for s, c in zip(self._side_streams, chunks):
            s.wait_stream(cur)
            with torch.cuda.stream(s):
                out[start : start + c.shape[0]].copy_(self.forward(c))
            start += c.shape[0]
        for s in self._side_streams[: len(chunks)]:
            cur.wait_stream(s)
        return out

    @property
    def heatmap_size(self) -> tuple[int, int]:
        h, w = self.model.cfg.image_size
        return h // 4, w // 4

    @property
    def runs_on(self) -> str:
        return str(self.torch_device)

    @property
    def input_dtype(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def runner(
        self, batch_size: int, pre: Callable[[], Any] | None = None, post: Callable[[Any], Any] | None = None
    ) -> Callable[..., Any]:
        """A callable ``(batch=None, crops=None) -> post(heatmaps)`` for one batch size; with
        ``cuda_graph`` it is one graph replay holding ``pre`` (the pipeline's crop kernel), the
        model and ``post`` (a full GPU decoder). With ``pre`` the batch argument is unused."""
        import torch

        def step(x):
            if pre is not None:
                x = pre()
            heatmaps = self._split_forward(x) if self._slices(x.shape[0]) > 1 else self.forward(x).float()
            return post(heatmaps) if post else heatmaps

        if not self.cuda_graph:

            def eager(batch=None, crops=None):
                with torch.inference_mode():
                    return step(None if pre is not None else self._to_input(batch))

            return eager
        key = (batch_size, pre, post)
        # Graphs capture and replay on the current device's streams: make it the engine's (an
        # engine on cuda:1 while cuda:0 is current). The capture stream is the engine's own:
        # torch.cuda.graph's default one is made once per process, on the device current then,
        # and capturing cuda:1 work on a cuda:0 stream fails ("operation not permitted when
        # stream is capturing"; seen on two H200s after an engine on cuda:0 had captured).
        if key not in self._graphs:
            with torch.cuda.device(self.torch_device):
                static_in = (
                    None
                    if pre is not None
                    else torch.zeros(
                        (batch_size, 3, *self.model.cfg.image_size), device=self.torch_device, dtype=self.dtype
                    )
                )
                side = torch.cuda.Stream(self.torch_device)
                side.wait_stream(torch.cuda.current_stream(self.torch_device))
                with torch.inference_mode(), torch.cuda.stream(side):
                    for _ in range(3):  # warm-up: autotuning, lazy module loads, kernel compilation
                        step(static_in)
                torch.cuda.current_stream(self.torch_device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: another thread's CUDA calls (a video decoder's, say) must not void it
                capture = torch.cuda.graph(
                    graph, stream=torch.cuda.Stream(self.torch_device), capture_error_mode="thread_local"
                )
                with torch.inference_mode(), capture:
                    static_out = step(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        index = static_out.device.index if isinstance(static_out, torch.Tensor) else self.torch_device.index

        def replay(batch=None, crops=None):
            # A graph launches on the current device's stream; the context manager that makes
            # the engine's device current (and inference mode) cost ~25 us a call, which a
            # one-box call pays on its critical path: entered only when another device is current.
            if index is not None and torch.cuda.current_device() != index:
                with torch.cuda.device(index):
                    return replay(batch, crops)
            if static_in is not None:
                static_in.copy_(self._to_input(batch))
            graph.replay()
            return static_out

        exec_of = getattr(graph, "raw_cuda_graph_exec", None)  # (torch 2.11 and 2.13 have it)
        if static_in is None and exec_of is not None:
            # The pipeline may launch the graph itself (posefw.cudart): one runtime call, not
            # replay()'s Python pool check and C++ wrapper, on a one-box call's critical path.
            replay.graph = (exec_of(), static_out, index)  # type: ignore[attr-defined]
        return replay


TorchEngine.options = ("model", *(f.name for f in fields(TorchOptions)))


@hookimpl
def posefw_register_engines():
    return [TorchEngine]
