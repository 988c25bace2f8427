"""ONNX export of ViTPose (optionally with the DARK decoder appended) and its validation.

Opset >= 17 so LayerNormalization survives as one node (TensorRT can then keep it in fp32);
dynamic batch; export options recorded in the model's metadata. Validation runs the exported
model with Polygraphy's ONNX-Runtime runner against the PyTorch model on the same inputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OPSET = 18


def _wrap(model, algorithm: str | None, kernel: int):
    import torch

    if algorithm is None:
        return model, ["images"], ["heatmaps"]
    from posefw.plugins.torch_dark import DarkDecode

    class WithDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            # float32 solve: TensorRT has no float64
            self.decode = DarkDecode(algorithm, kernel, solve_dtype=torch.float32)

        def forward(self, images, centers, scales):
            return self.decode(self.model(images), centers, scales)

    return WithDecoder().eval(), ["images", "centers", "scales"], ["keypoints", "scores"]


def export_onnx(model, out: str | Path, opset: int = DEFAULT_OPSET, max_batch: int = 64,
                decoder: str | None = None, kernel: int = 11, weights: str = "random weights") -> Path:
    """Write ``out``; with ``decoder`` (an algorithm name) the graph outputs keypoints and scores."""
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset: must be >= 17 so LayerNormalization survives, got {opset}")
    out = Path(out)
    # A copy: the caller's model (an engine's, say) stays on its device and dtype.
    model = copy.deepcopy(model).eval().float().cpu()
    if hasattr(model, "plain"):
        model.plain()  # ONNX has none of the fused kernels: the plain modules, the checkpoint's function
    net, inputs, outputs = _wrap(model, decoder, kernel)
    h, w = model.cfg.image_size
    args: tuple[Any, ...] = (torch.randn(2, 3, h, w),)
    dynamic = {"images": {0: "batch"}}
    if decoder:
        args += (torch.full((2, 2), 100.0), torch.full((2, 2), 200.0))
        dynamic.update({"centers": {0: "batch"}, "scales": {0: "batch"}})
    for name in outputs:
        dynamic[name] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(net, args, str(out), dynamo=False, opset_version=opset, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic)
    proto = onnx.load(str(out))
    meta = {"posefw.opset": str(opset), "posefw.batch": f"1..{max_batch}", "posefw.input": f"Nx3x{h}x{w}",
            "posefw.decoder": decoder or "none", "posefw.kernel": str(kernel), "posefw.weights": weights,
            "posefw.model": json.dumps(model.cfg.__dict__)}
    from posefw import __version__

    meta["posefw.version"] = __version__
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(out))
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


def validate(model, onnx_path: str | Path, batch: int = 2, atol: float = 1e-3, rtol: float = 1e-3,
             decoder: str | None = None, kernel: int = 11) -> dict[str, Any]:
    """Polygraphy comparison of PyTorch against ONNX Runtime (CPU) on the same random inputs."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, CompareFunc
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING

    net, inputs, outputs = _wrap(model.eval().float().cpu(), decoder, kernel)
    h, w = model.cfg.image_size
    rng = np.random.default_rng(0)
    feed = {"images": rng.standard_normal((batch, 3, h, w)).astype(np.float32)}
    if decoder:
        feed["centers"] = rng.uniform(100, 300, (batch, 2)).astype(np.float32)
        feed["scales"] = np.tile(np.array([[150.0, 200.0]], np.float32), (batch, 1))

    runners = [torch_runner(net, feed, outputs),
               OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["CPUExecutionProvider"]), name="onnxruntime")]
    results = Comparator.run(runners, data_loader=[feed], warm_up=0)
    ok = Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=atol, rtol=rtol))
    errs = {}
    for name in outputs:
        a = results[0][1][0][name]
        b = results[1][1][0][name]
        a, b = np.asarray(a), np.asarray(b)
        finite = np.isfinite(a) & np.isfinite(b)
        errs[name] = float(np.abs(a - b)[finite].max()) if finite.any() else 0.0
    return {"passed": bool(ok), "max_abs_error": errs, "atol": atol, "rtol": rtol, "batch": batch}
