"""ONNX export (dynamic batch, opset >= 17, metadata) validated by Polygraphy through ONNX Runtime."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("polygraphy")

import onnx  # noqa: E402

from posefw.cli import main  # noqa: E402
from posefw.export import check_onnx_input, export_onnx, read_metadata, validate  # noqa: E402
from posefw.models.vitpose import random_vitpose  # noqa: E402

SMALL = dict(dim=64, depth=2, heads=4, deconv_channels=32)


@pytest.fixture(scope="module")
def model():
    return random_vitpose("b", **SMALL)


def test_export_keeps_layernorm_and_dynamic_batch(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx", opset=18)
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert "LayerNormalization" in ops and "ReduceMean" not in ops
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = read_metadata(path)
    assert meta["posefw.weights"] == "random weights" and meta["posefw.opset"] == "18"
    rep = validate(model, path, batch=3)
    assert rep["passed"] and rep["max_abs_error"]["heatmaps"] < 1e-4


def test_export_with_decoder_outputs_keypoints(model, tmp_path):
    path = export_onnx(model, tmp_path / "md.onnx", decoder="dark-udp")
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["keypoints", "scores"]
    assert [i.name for i in proto.graph.input] == ["images", "centers", "scales"]
    assert validate(model, path, decoder="dark-udp")["passed"]


def test_low_opset_refused(model, tmp_path):
    with pytest.raises(ValueError, match="opset: must be >= 17"):
        export_onnx(model, tmp_path / "x.onnx", opset=13)


def test_wrong_input_shape_named(tmp_path):
    import torch.nn as nn

    torch.onnx.export(
        nn.Conv2d(3, 1, 1), (torch.randn(1, 3, 64, 64),), str(tmp_path / "small.onnx"), dynamo=False, input_names=["x"]
    )
    with pytest.raises(ValueError, match="expected N x 3 x 256 x 192"):
        check_onnx_input(tmp_path / "small.onnx")
    with pytest.raises(FileNotFoundError, match="onnx: file not found"):
        check_onnx_input(tmp_path / "none.onnx")


@pytest.mark.slow
def test_export_command_vitpose_b(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "b.onnx")]) == 0
    out = capsys.readouterr().out
    assert "random weights" in out and "matches" in out


def test_export_leaves_the_model_alone_and_exports_the_plain_modules(tmp_path):
    """An engine's model (flex attention, fused GELU and head on) exports as the checkpoint's plain
    function (none of the fused kernels has an ONNX form) and is not moved or changed."""
    onnx = pytest.importorskip("onnx")
    model = random_vitpose("b", dim=64, depth=1, heads=4, deconv_channels=32).to(torch.bfloat16)
    model.flex_attention().fuse_gelu().fuse_head()
    path = export_onnx(model, tmp_path / "m.onnx")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert all(b.attn.flex_block == 64 and b.mlp.fused_gelu for b in model.backbone.blocks)
    assert model.keypoint_head.fused_tail
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Erf" in ops and "Tanh" not in ops and not any(n.startswith("posefw") for n in ops)


def test_export_out_in_a_missing_folder_is_named(tmp_path, capsys):
    from posefw.cli import main

    assert main(["export", "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    assert f"--out: cannot write {tmp_path / 'no' / 'm.onnx'}: folder" in capsys.readouterr().err


def test_fp16_export_is_strongly_typed_mixed_precision(model, tmp_path):
    """fp16 in, fp16 weights, every LayerNormalization in fp32 between Casts, fp32 heatmaps out;
    onnx.checker passes and ONNX Runtime (CPU) runs it within fp16 tolerance of torch fp32 on real
    coco-mini crops (random ones without the data)."""
    from posefw.conformance.engine_parity import crops

    from posefw.export import FP16_ATOL, precision_report

    path = export_onnx(model, tmp_path / "m16.onnx", precision="fp16")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    rep = precision_report(path)
    assert rep["inputs"] == {"images": "float16"} and rep["outputs"] == {"heatmaps": "float32"}
    assert len(rep["layernorms"]) == 2 * SMALL["depth"] + 1 and rep["layernorms_not_fp32"] == []
    assert rep["initializers"].get("float16", 0) > rep["initializers"].get("float32", 0)
    assert read_metadata(path)["posefw.precision"].startswith("fp16")
    res = validate(model, path, images=crops(8))
    assert res["passed"] and res["precision"] == "fp16" and res["atol"] == FP16_ATOL
    assert res["max_abs_error"]["heatmaps"] < FP16_ATOL
    assert res["keypoints_within_half_px"] >= 0.9, res  # reported by the export command too


def test_fp16_export_with_decoder_keeps_fp32_keypoints(model, tmp_path):
    from posefw.export import precision_report

    path = export_onnx(model, tmp_path / "m16d.onnx", precision="fp16", decoder="dark-udp")
    rep = precision_report(path)
    assert rep["inputs"]["images"] == "float16" and rep["inputs"]["centers"] == "float32"
    assert rep["outputs"] == {"keypoints": "float32", "scores": "float32"}
    assert rep["layernorms_not_fp32"] == []


def test_onnxruntime_engine_runs_the_fp16_model(model, tmp_path):
    import numpy as np

    import posefw

    path = export_onnx(model, tmp_path / "m16.onnx", precision="fp16")
    eng = posefw.create_engine("onnxruntime", onnx=str(path), providers=["CPUExecutionProvider"])
    assert eng.describe()["input_dtype"] == "float16"
    x = np.random.default_rng(0).standard_normal((2, 3, 256, 192)).astype(np.float32)
    out = eng.infer(x)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x.astype(np.float16).astype(np.float32))).numpy()
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 5e-2


def test_export_fp16_command(tmp_path, capsys):
    assert main(["export", "--precision", "fp16", "--size", "s", "--out", str(tmp_path / "s16.onnx")]) == 0
    out = capsys.readouterr().out
    assert "0 not in fp32" in out and "matches" in out and "keypoints within 0.5 heatmap px" in out
