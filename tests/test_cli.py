"""The command line as a user meets it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import posefw
from posefw import __version__
from posefw.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out


def test_decoders_list_shows_reference(capsys):
    assert main(["decoders", "list"]) == 0
    out = capsys.readouterr().out
    assert "numpy-cpu" in out and "dark-udp" in out and "argmax" in out and "available" in out


def test_plugins_and_engines_list(capsys):
    assert main(["plugins", "list"]) == 0
    assert "numpy_cpu" in capsys.readouterr().out
    assert main(["engines", "list"]) == 0


def test_decode_with_boxes(tmp_path, capsys):
    hm = np.zeros((2, 17, 64, 48), np.float32)
    hm[:, :, 32, 24] = 1.0
    np.save(tmp_path / "hm.npy", hm)
    (tmp_path / "boxes.json").write_text(json.dumps([[0, 0, 96, 128], [10, 10, 48, 64]]))
    rc = main(
        [
            "decode",
            str(tmp_path / "hm.npy"),
            "--boxes",
            str(tmp_path / "boxes.json"),
            "--algorithm",
            "argmax",
            "--out",
            str(tmp_path / "kp.json"),
        ]
    )
    assert rc == 0
    out = json.loads((tmp_path / "kp.json").read_text())
    assert out["coordinates"] == "image" and len(out["keypoints"]) == 2
    # centre of a 96x128 box padded to 120x160: heatmap (24, 32) -> image (48, 64)
    np.testing.assert_allclose(out["keypoints"][0][0], [48.0, 64.0], atol=1e-4)


def test_decode_errors_are_clear(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3), np.float32))
    assert main(["decode", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o.json")]) == 2
    assert "heatmaps: expected 4 dimensions" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "o.json")]) == 2
    assert "heatmaps: file not found" in capsys.readouterr().err
    np.save(tmp_path / "hm.npy", np.zeros((1, 17, 64, 48), np.float32))
    assert main(["decode", str(tmp_path / "hm.npy"), "--decoder", "nope", "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "unknown decoder 'nope'" in err and "numpy-cpu" in err


def test_reasons_keep_their_brackets(capsys):
    """Rich markup must not eat extras like [gpu] from an unavailable backend's reason."""
    import posefw

    infos = [i for i in posefw.available_decoders() if i.status == "unavailable" and "[" in i.reason]
    if not infos:
        import pytest

        pytest.skip("no unavailable backend with brackets in its reason on this machine")
    assert main(["decoders", "list"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "posefw[gpu]" in out.replace("│", "").replace(" ", "") or "[gpu]" in out


def test_cuda_asked_for_on_a_cpu_only_machine_is_a_clean_error(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["conformance", "--decoder", "torch-full", "--input", "torch-cuda", "--no-coco"]) == 2
    assert "--input torch-cuda: no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="device: 'cuda' requested but torch sees no CUDA GPU"):
        posefw.create_decoder("torch-full", device="cuda")
    with pytest.raises(RuntimeError, match="device: 'cuda' requested but torch sees no CUDA GPU"):
        posefw.create_engine("torch", device="cuda")


def test_a_missing_extra_is_named_with_its_install(capsys, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv were not installed
    (tmp_path / "b.json").write_text("[[1, 2, 3, 4]]")
    (tmp_path / "x.png").write_bytes(b"an image file")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "x.png"),
                "--boxes",
                str(tmp_path / "b.json"),
                "--out",
                str(tmp_path / "v.png"),
                "--engine",
                "torch",  # not the oracle: it needs the coco-mini annotations, which a clone may lack
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "this command needs cv2, which is not installed: pip install 'posefw[eval]'" in capsys.readouterr().err


def test_conformance_without_pycocotools_runs_the_numeric_checks(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pycocotools", None)
    assert main(["conformance", "--decoder", "numpy-cpu", "--algorithm", "argmax", "--families", "realistic"]) == 0
    out = capsys.readouterr().out
    assert "AP parity skipped" in out and "posefw[eval]" in out and "PASSED" in out
