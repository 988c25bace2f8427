"""Outputs are written whole or not at all, and JSON is strict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from posefw import cli
from posefw.outputs import atomic_path, write_image, write_json


def test_a_failed_write_keeps_the_good_file(tmp_path):
    good = tmp_path / "keypoints.json"
    write_json(good, {"ok": 1})
    with pytest.raises(OSError, match="No space left"):
        with atomic_path(good) as tmp:
            tmp.write_text('{"trunc')
            raise OSError(28, "No space left on device")
    assert json.loads(good.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["keypoints.json"]  # no temporary left behind


def test_json_never_holds_infinity(tmp_path):
    write_json(tmp_path / "r.json", {"a": math.inf, "b": [1.0, -math.inf, math.nan], "c": np.float64(2.5)})
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None, None], "c": 2.5}


def test_image_names_are_checked(tmp_path):
    pytest.importorskip("cv2")
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="--out: .* has no extension"):
        write_image(tmp_path / "vis", img)
    with pytest.raises(IsADirectoryError, match="--out: .* is a directory"):
        write_image(tmp_path, img, "--out")
    with pytest.raises(ValueError, match="has the extension .xyz"):
        write_image(tmp_path / "a.xyz", img)
    write_image(tmp_path / "a.png", img)
    assert (tmp_path / "a.png").stat().st_size > 0


def test_failed_bench_leaves_no_files(tmp_path, capsys):
    pytest.importorskip("torch")
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    assert cli.main(["bench", "--decoder", "no-such-decoder", "--json", str(out), "--plot", str(plot)]) == 2
    assert not out.exists() and not plot.exists()


def test_predict_out_errors_name_the_option(coco_mini, tmp_path, capsys):
    pytest.importorskip("cv2")
    (tmp_path / "b.json").write_text("[[231, 52, 180, 290]]")
    image = str(coco_mini / "images" / "val2017" / "000000000785.jpg")
    for out, words in ((tmp_path, "is a directory"), (tmp_path / "vis", "has no extension")):
        assert (
            cli.main(["predict", image, "--boxes", str(tmp_path / "b.json"), "--engine", "oracle", "--out", str(out)])
            == 2
        )
        err = capsys.readouterr().err
        assert f"--out: {out}" in err and words in err, err
