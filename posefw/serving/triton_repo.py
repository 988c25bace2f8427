"""A Triton Inference Server model repository for the exported model.

``DIR/NAME/config.pbtxt`` and ``DIR/NAME/1/model.onnx`` (ONNX Runtime backend, dynamic batching
up to ``max_batch``), and ``DIR/README.md`` with how to run it in NVIDIA's container and how to
switch to the TensorRT backend (a strongly typed engine built from the same ONNX file). The
inputs and outputs in config.pbtxt are read from the ONNX model itself, so they cannot drift;
:func:`check_config` parses the file with Triton's own ModelConfig protobuf (``tritonclient``).
Triton cannot run on posefw's CI machines; docs/serving.md says what was and was not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: ONNX element types to Triton's data types.
TRITON_TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 7: "TYPE_INT64", 6: "TYPE_INT32", 16: "TYPE_BF16"}


def preferred_batches(max_batch: int) -> list[int]:
    """The batch sizes the engine runs best: powers of two from 8 up to ``max_batch``, and it."""
    sizes = [b for b in (8, 16, 32, 64, 128, 256) if b <= max_batch]
    return sorted(set(sizes + [max_batch]))


def _tensors(values: Any) -> list[tuple[str, str, list[int]]]:
    out = []
    for v in values:
        t = v.type.tensor_type
        if t.elem_type not in TRITON_TYPES:
            raise ValueError(f"{v.name}: ONNX element type {t.elem_type} has no Triton type here")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim][1:]  # batch is Triton's
        out.append((v.name, TRITON_TYPES[t.elem_type], dims))
    return out


def model_config(onnx_path: str | Path, name: str, max_batch: int, queue_delay_us: int = 2000, gpus: int = 1) -> str:
    """config.pbtxt text for the ONNX model (ONNX Runtime backend, dynamic batching)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def block(kind: str, tensors: list[tuple[str, str, list[int]]]) -> str:
        rows = [
            f'  {{ name: "{n}" data_type: {t} dims: [ {", ".join(str(d) for d in dims)} ] }}' for n, t, dims in tensors
        ]
        return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"

    inputs = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in inputs]
    preferred = ", ".join(str(b) for b in preferred_batches(max_batch))
    return (
        f'name: "{name}"\n'
        'backend: "onnxruntime"\n'
        f"max_batch_size: {max_batch}\n"
        + block("input", _tensors(graph_inputs))
        + block("output", _tensors(model.graph.output))
        + "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n"
        "}\n"
        f"instance_group [ {{ count: 1 kind: {'KIND_GPU' if gpus else 'KIND_CPU'} }} ]\n"
    )


def check_config(text: str) -> Any:
    """Parse config.pbtxt with Triton's ModelConfig protobuf; a ValueError says what is wrong."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"config.pbtxt: Triton's ModelConfig does not parse it: {exc}") from None


README = """# posefw model repository for Triton Inference Server

Written by `posefw export --triton-repo`. Model `{name}`: {what}.

```
{name}/config.pbtxt     ONNX Runtime backend, max batch {max_batch}, dynamic batching
{name}/1/model.onnx     {precision}; inputs {inputs}; outputs {outputs}
```

Run it in NVIDIA's container (pick the release that matches your driver):

```
docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
  -v $PWD:/models nvcr.io/nvidia/tritonserver:<xx.yy>-py3 tritonserver --model-repository=/models
```

and query it with `tritonclient` (inputs as in config.pbtxt; images are normalised RGB crops,
N x 3 x 256 x 192, as `posefw.preprocess` makes them{centers_note}).

TensorRT backend: build a strongly typed engine from the same file inside the container
(TensorRT 10 and 11 both take `--stronglyTyped`; an fp16 export keeps LayerNorm in fp32 as it is
written in the graph), then point a copy of the model at it:

```
trtexec --onnx={name}/1/model.onnx --stronglyTyped --saveEngine={name}_trt/1/model.plan \\
  --minShapes=images:1x3x256x192{min_extra} --optShapes=images:{opt}x3x256x192{opt_extra} \\
  --maxShapes=images:{max_batch}x3x256x192{max_extra}
```

with `{name}_trt/config.pbtxt` equal to this one but `name: "{name}_trt"` and
`platform: "tensorrt_plan"` instead of `backend: "onnxruntime"`.
"""


def write_repo(
    folder: str | Path, onnx_file: str | Path, name: str, max_batch: int, precision: str, decoder: str | None
) -> Path:
    """Lay out the repository around an exported ONNX file (moved into place); returns config.pbtxt."""
    import shutil

    folder = Path(folder)
    version = folder / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    model = version / "model.onnx"
    shutil.move(str(onnx_file), model)
    model.chmod(0o644)  # the temporary file's 0600 would keep a container's server user out
    text = model_config(model, name, max_batch)
    parsed = check_config(text)
    config = folder / name / "config.pbtxt"
    config.write_text(text)
    ins = ", ".join(i.name for i in parsed.input)
    outs = ", ".join(o.name for o in parsed.output)
    extra = lambda b: f",centers:{b}x2,scales:{b}x2" if decoder else ""  # noqa: E731
    (folder / "README.md").write_text(
        README.format(
            name=name,
            what=f"ViTPose with {decoder} decoding folded in" if decoder else "ViTPose heatmaps",
            max_batch=max_batch,
            precision=precision,
            inputs=ins,
            outputs=outs,
            centers_note=", with each crop's box centre and scale in pixels" if decoder else "",
            opt=preferred_batches(max_batch)[-1],
            min_extra=extra(1),
            opt_extra=extra(preferred_batches(max_batch)[-1]),
            max_extra=extra(max_batch),
        )
    )
    return config
