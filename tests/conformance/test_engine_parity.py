"""Engine parity against torch fp32 through Polygraphy's comparator."""

from __future__ import annotations

import numpy as np
import pytest
from posefw.conformance import engine_parity

import posefw
from posefw.models.vitpose import random_vitpose

torch = pytest.importorskip("torch")
pytest.importorskip("polygraphy")
SMALL = dict(dim=64, depth=2, heads=4, deconv_channels=32)


def test_onnxruntime_matches_torch_fp32(tmp_path):
    pytest.importorskip("onnxruntime")
    from posefw.export import export_onnx

    model = random_vitpose("b", **SMALL)
    ref = posefw.create_engine("torch", model=model, device="cpu")
    ort = posefw.create_engine("onnxruntime", onnx=str(export_onnx(model, tmp_path / "m.onnx")))
    x = np.random.default_rng(0).standard_normal((4, 3, 256, 192)).astype(np.float32)
    rep = engine_parity.run(ort, ref, batch=x)
    assert rep["passed"] and rep["polygraphy_passed"]
    assert rep["max_abs_error"] < 1e-4 and rep["keypoints_within_half_px"] == 1.0


def test_a_wrong_engine_fails():
    ref = posefw.create_engine("torch", model=random_vitpose("b", seed=0, **SMALL), device="cpu")
    other = posefw.create_engine("torch", model=random_vitpose("b", seed=1, **SMALL), device="cpu")
    rep = engine_parity.run(
        other, ref, batch=np.random.default_rng(0).standard_normal((4, 3, 256, 192)).astype(np.float32)
    )
    assert not rep["passed"] and not rep["polygraphy_passed"]


def test_real_crops_from_coco_mini(coco_mini):
    x = engine_parity.crops(n=5)
    assert x.shape == (5, 3, 256, 192) and np.isfinite(x).all()


def test_engines_cli_takes_options_after_plus(coco_mini, tmp_path):
    """`--engines torch:bf16+fuse_gelu` builds that engine with the option set (and reports it)."""
    import json

    from posefw import cli

    out = tmp_path / "parity.json"
    cli.main(["conformance", "--engines", "torch:fp32+fuse_gelu+size=s", "--no-coco", "--json", str(out)])
    (report,) = json.loads(out.read_text())
    assert "error" not in report, report.get("error")
    assert (
        report["engine"]["precision"] == "fp32"
        and report["engine"]["size"] == "s"
        and report["engine"]["fuse_gelu"] is True
    )
    assert 0.0 <= report["keypoints_within_half_px"] <= 1.0
