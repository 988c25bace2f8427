"""``posefw export --triton-repo``: the layout, config.pbtxt parsed by Triton's own protobuf, and
the model run by ONNX Runtime with the inputs the config declares. (Triton itself cannot run here.)"""

from __future__ import annotations

import numpy as np
import pytest

from posefw import cli

pytest.importorskip("onnxruntime")
pytest.importorskip("tritonclient.grpc")


def test_triton_repo_is_written_checked_and_runs(tmp_path):
    import onnxruntime as ort
    from tritonclient.grpc import model_config_pb2

    from posefw.serving.triton_repo import check_config

    repo = tmp_path / "models"
    rc = cli.main(["export", "--size", "s", "--with-decoder", "dark-udp", "--triton-repo", str(repo)])
    assert rc == 0
    cfg = check_config((repo / "vitpose" / "config.pbtxt").read_text())
    assert cfg.name == "vitpose" and cfg.backend == "onnxruntime" and cfg.max_batch_size == 64
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 16, 32, 64]
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    declared = {i.name: (model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input}
    assert declared == {
        "images": ("TYPE_FP32", [3, 256, 192]),
        "centers": ("TYPE_FP32", [2]),
        "scales": ("TYPE_FP32", [2]),
    }
    assert [o.name for o in cfg.output] == ["keypoints", "scores"]
    assert "trtexec" in (repo / "README.md").read_text()
    sess = ort.InferenceSession(str(repo / "vitpose" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    n = 3
    feed = {
        "images": np.random.default_rng(0).standard_normal((n, 3, 256, 192)).astype(np.float32),
        "centers": np.full((n, 2), 100.0, np.float32),
        "scales": np.full((n, 2), 200.0, np.float32),
    }
    kp, sc = sess.run(["keypoints", "scores"], feed)
    assert kp.shape == (n, 17, 2) and sc.shape == (n, 17) and np.isfinite(kp).all()


def test_export_refuses_two_targets_and_a_taken_model_name(tmp_path, capsys):
    assert cli.main(["export", "--out", str(tmp_path / "m.onnx"), "--triton-repo", str(tmp_path)]) == 2
    assert "exactly one of --out" in capsys.readouterr().err
    (tmp_path / "vitpose").mkdir()
    assert cli.main(["export", "--size", "s", "--triton-repo", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_check_config_names_what_triton_refuses():
    from posefw.serving.triton_repo import check_config

    with pytest.raises(ValueError, match="ModelConfig does not parse"):
        check_config('name: "x"\nmax_batch_size: "many"\n')
