"""ONNX export of ViTPose (optionally with the DARK decoder appended) and its validation.

Opset >= 17 so LayerNormalization survives as one node; dynamic batch; export options recorded
in the model's metadata. Validation runs the exported model with Polygraphy's ONNX-Runtime
runner against the PyTorch model on the same inputs.

``precision="fp16"`` writes the mixed-precision model itself, decided in the graph rather than
by a builder flag (TensorRT 11 is strongly typed and has none): fp16 input, weights and
activations; every LayerNormalization computed in fp32 between explicit Cast nodes (ViTPose's
fp16 LayerNorm overflows); heatmaps, and keypoints with a decoder, in fp32 at the output.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OPSET = 18
PRECISIONS = ("fp32", "fp16")


def mixed_precision(model):
    """``model`` made fp16 in place (export_onnx passes its own copy), its LayerNorms in fp32,
    wrapped so that the output is fp32."""
    import torch

    class Fp32Norm(torch.nn.Module):
        """LayerNorm in fp32 inside the fp16 model: Cast up, normalise, Cast down."""

        def __init__(self, ln):
            super().__init__()
            self.ln = ln.float()

        def forward(self, x):
            return self.ln(x.float()).to(x.dtype)

    half = model.half()
    for module in list(half.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(module, name, Fp32Norm(child))

    class Fp16Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = half
            self.cfg = model.cfg

        def forward(self, images):
            return self.model(images.half()).float()

    return Fp16Model().eval()


def _wrap(model, algorithm: str | None, kernel: int):
    import torch

    if algorithm is None:
        return model, ["images"], ["heatmaps"]
    from posefw.dark_torch import DarkDecode

    class WithDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            # float32 solve: TensorRT has no float64
            self.decode = DarkDecode(algorithm, kernel, solve_dtype=torch.float32)

        def forward(self, images, centers, scales):
            return self.decode(self.model(images), centers, scales)

    return WithDecoder().eval(), ["images", "centers", "scales"], ["keypoints", "scores"]


def export_onnx(
    model,
    out: str | Path,
    opset: int = DEFAULT_OPSET,
    max_batch: int = 64,
    decoder: str | None = None,
    kernel: int = 11,
    weights: str = "random weights",
    precision: str = "fp32",
) -> Path:
    """Write ``out``; with ``decoder`` (an algorithm name) the graph outputs keypoints and scores."""
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset: must be >= 17 so LayerNormalization survives, got {opset}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    out = Path(out)
    # A copy: the caller's model (an engine's, say) stays on its device and dtype.
    model = copy.deepcopy(model).eval().float().cpu()
    if hasattr(model, "plain"):
        model.plain()  # ONNX has none of the fused kernels: the plain modules, the checkpoint's function
    h, w = model.cfg.image_size
    if precision == "fp16":
        model = mixed_precision(model)
    net, inputs, outputs = _wrap(model, decoder, kernel)
    # One image traces the graph (fp16 runs slowly on a CPU); the batch axis stays dynamic.
    args: tuple[Any, ...] = (
        torch.randn(
            1 if precision == "fp16" else 2, 3, h, w, dtype=torch.float16 if precision == "fp16" else torch.float32
        ),
    )
    dynamic = {"images": {0: "batch"}}
    if decoder:
        n = args[0].shape[0]
        args += (torch.full((n, 2), 100.0), torch.full((n, 2), 200.0))
        dynamic.update({"centers": {0: "batch"}, "scales": {0: "batch"}})
    for name in outputs:
        dynamic[name] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            net,
            args,
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
        )
    proto = onnx.load(str(out))
    meta = {
        "posefw.opset": str(opset),
        "posefw.batch": f"1..{max_batch}",
        "posefw.input": f"Nx3x{h}x{w}",
        "posefw.decoder": decoder or "none",
        "posefw.kernel": str(kernel),
        "posefw.weights": weights,
        "posefw.precision": "fp16 (LayerNorm fp32, fp32 outputs)" if precision == "fp16" else "fp32",
        "posefw.model": json.dumps(model.cfg.__dict__),
    }
    from posefw import __version__

    meta["posefw.version"] = __version__
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(out))
    return out


def precision_report(path: str | Path) -> dict[str, Any]:
    """The element types an fp16 export must have: per LayerNormalization its input and output
    types (all float32), and the graph's inputs and outputs."""
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = proto.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    name = onnx.helper.tensor_dtype_to_np_dtype
    norms = []
    for node in g.node:
        if node.op_type == "LayerNormalization":
            ins = [str(name(types[i])) if i in types else "?" for i in node.input if i]
            outs = [str(name(types[o])) if o in types else "?" for o in node.output[:1]]
            norms.append({"node": node.name, "inputs": ins, "outputs": outs})
    return {
        "inputs": {v.name: str(name(v.type.tensor_type.elem_type)) for v in g.input},
        "outputs": {v.name: str(name(v.type.tensor_type.elem_type)) for v in g.output},
        "layernorms": norms,
        "layernorms_not_fp32": [n["node"] for n in norms if set(n["inputs"] + n["outputs"]) != {"float32"}],
        "initializers": dict(sorted(_count(str(name(t.data_type)) for t in g.initializer).items())),
    }


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def check_onnx_input(path: str | Path, size: tuple[int, int] = (256, 192)) -> None:
    """The file's first input must be N x 3 x 256 x 192 (N dynamic or fixed)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"onnx: file not found: {p}")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"onnx: {p} is not a readable ONNX model: {exc}") from None
    inp = proto.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1:] != [3, *size]:
        raise ValueError(f"onnx: {p} input {inp.name!r} is {dims}, expected N x 3 x {size[0]} x {size[1]}")


def torch_runner(fn, inputs: dict[str, np.ndarray], outputs: list[str], name: str = "pytorch"):
    """A Polygraphy runner for a torch callable on any device (Polygraphy's PytRunner assumes CUDA)."""
    import time
    from collections import OrderedDict

    import torch
    from polygraphy.backend.base import BaseRunner

    class TorchRunner(BaseRunner):
        def __init__(self):
            super().__init__(name=name, prefix="posefw-torch-runner")

        def activate_impl(self):
            pass

        def get_input_metadata_impl(self):
            from polygraphy.common import TensorMetadata

            meta = TensorMetadata()
            for k, v in inputs.items():
                meta.add(k, v.dtype, v.shape)
            return meta

        def infer_impl(self, feed_dict):
            start = time.time()
            with torch.no_grad():
                out = fn(*(torch.from_numpy(np.asarray(feed_dict[k])) for k in inputs))
            self.inference_time = time.time() - start
            out = out if isinstance(out, tuple) else (out,)
            return OrderedDict((k, np.ascontiguousarray(v.detach().cpu().numpy())) for k, v in zip(outputs, out))

        def deactivate_impl(self):
            pass

    return TorchRunner()


#: Heatmap tolerance of an fp16 export against torch fp32 (the engines' fp16 bound, conformance).
FP16_ATOL = 5e-2


def validate(
    model,
    onnx_path: str | Path,
    batch: int = 2,
    atol: float | None = None,
    rtol: float = 1e-3,
    decoder: str | None = None,
    kernel: int = 11,
    images: np.ndarray | None = None,
) -> dict[str, Any]:
    """Polygraphy comparison of PyTorch fp32 against ONNX Runtime (CPU) on the same inputs.

    An fp16 model (its input is float16) is fed the same images rounded to fp16 and held to
    the fp16 tolerance. ``images`` (N, 3, H, W) replaces the random ones (real crops, say).
    """
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING

    fp16 = precision_report(onnx_path)["inputs"].get("images") == "float16"
    atol = atol if atol is not None else (FP16_ATOL if fp16 else 1e-3)
    net, inputs, outputs = _wrap(model.eval().float().cpu(), decoder, kernel)
    h, w = model.cfg.image_size
    rng = np.random.default_rng(0)
    if images is None:
        images = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
    batch = len(images)
    feed = {"images": np.asarray(images, np.float16 if fp16 else np.float32)}
    if decoder:
        feed["centers"] = rng.uniform(100, 300, (batch, 2)).astype(np.float32)
        feed["scales"] = np.tile(np.array([[150.0, 200.0]], np.float32), (batch, 1))

    def reference(images, *rest):
        return net(images.float(), *rest)  # torch fp32 on the same (fp16-rounded) values

    runners = [
        torch_runner(reference, feed, outputs),
        OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["CPUExecutionProvider"]), name="onnxruntime"),
    ]
    results = Comparator.run(runners, data_loader=[feed], warm_up=0)
    ok = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=atol, rtol=rtol))
    errs = {}
    for name in outputs:
        a = results[0][1][0][name]
        b = results[1][1][0][name]
        a, b = np.asarray(a), np.asarray(b)
        finite = np.isfinite(a) & np.isfinite(b)
        errs[name] = float(np.abs(a - b)[finite].max()) if finite.any() else 0.0
    report = {
        "passed": bool(ok),
        "max_abs_error": errs,
        "atol": atol,
        "rtol": rtol,
        "batch": batch,
        "precision": "fp16" if fp16 else "fp32",
    }
    if not decoder:  # what the heatmap difference does to keypoints: argmax decode of both
        import posefw

        dec = posefw.create_decoder("numpy-cpu")
        a, b = (dec.decode(np.asarray(r[1][0]["heatmaps"], np.float32)).keypoints for r in results)
        dist = np.linalg.norm(a - b, axis=-1)
        report["keypoints_within_half_px"] = float((dist <= 0.5).mean())
        report["keypoints_median_px"] = float(np.median(dist))
    return report
