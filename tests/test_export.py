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

    torch.onnx.export(nn.Conv2d(3, 1, 1), (torch.randn(1, 3, 64, 64),), str(tmp_path / "small.onnx"), dynamo=False,
                      input_names=["x"])
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
