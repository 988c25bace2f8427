"""The pipeline end to end on real COCO images: batching, chunking, flip test, bad boxes, eval, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

import posefw
import posefw.coco
from posefw.cli import main
from posefw.pipeline import Pipeline, flip_back

pytest.importorskip("cv2")


def eval_args(coco_mini, *extra: str, images=None) -> list[str]:
    """``posefw eval`` on coco-mini's val2017 annotations and images, then ``extra``."""
    ann = coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"
    return ["eval", "--annotations", str(ann), "--images", str(images or coco_mini / "images" / "val2017"), *extra]


def _oracle(coco_mini, **kw):
    return posefw.create_engine(
        "oracle", annotations=str(coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"), **kw
    )


def test_bad_boxes_never_lose_the_others(coco_mini):
    from posefw.preprocess import read_image

    img = read_image(coco_mini / "images" / "val2017" / "000000196141.jpg")
    persons = posefw.coco.load_persons(coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json")
    good = persons.boxes[persons.image_ids == 196141]
    boxes = np.concatenate([good[:1], [[10, 10, 0, 50], [1e5, 1e5, 10, 10], [np.nan, 0, 5, 5]], good[1:]])
    pipe = Pipeline(_oracle(coco_mini), posefw.create_decoder("numpy-cpu"))
    (res,) = pipe([img], [boxes], image_ids=[196141])
    assert res.valid.tolist() == [True, False, False, False] + [True] * (len(good) - 1)
    assert any("box 1" in e for e in res.errors) and any("outside" in e for e in res.errors)
    assert np.isnan(res.keypoints[1:4]).all()
    assert np.isfinite(res.scores[res.valid]).all()


def test_chunking_and_flip_agree(coco_mini):
    from posefw.preprocess import read_image

    persons = posefw.coco.load_persons(coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json")
    ids = [350679, 217285]  # 9 and 13 persons: one call across two frames, chunked by max_batch 4
    imgs = [read_image(coco_mini / "images" / "val2017" / f"{i:012d}.jpg") for i in ids]
    boxes = [persons.boxes[persons.image_ids == i] for i in ids]
    dec = posefw.create_decoder("numpy-cpu")
    small = Pipeline(_oracle(coco_mini, max_batch=4), dec)([*imgs], boxes, image_ids=ids)
    big = Pipeline(_oracle(coco_mini), dec)([*imgs], boxes, image_ids=ids)
    flip = Pipeline(_oracle(coco_mini, max_batch=4), dec, flip_test=True)([*imgs], boxes, image_ids=ids)
    for a, b, c in zip(small, big, flip):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        # mirrored oracle heatmaps averaged back equal the plain ones
        np.testing.assert_allclose(c.keypoints, b.keypoints, atol=1e-3)


def test_flip_back_swaps_pairs_and_mirrors():
    hm = np.zeros((1, 17, 64, 48), np.float32)
    hm[0, 1, 10, 5] = 1  # left eye near the left edge
    out = flip_back(hm)
    assert out[0, 2, 10, 42] == 1 and out[0, 1].sum() == 0


def test_eval_oracle_dark_reaches_098(coco_mini, tmp_path, capsys):
    scores = {}
    for alg in ("dark", "argmax"):
        out = tmp_path / f"{alg}.json"
        assert main(eval_args(coco_mini, "--engine", "oracle", "--algorithm", alg, "--json", str(out))) == 0
        scores[alg] = json.loads(out.read_text())["stats"]["AP"]
    assert scores["dark"] >= 0.98, scores
    assert json.loads(out.read_text())["instances"] == 80


def test_predict_writes_png_with_random_weights(coco_mini, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("torch")
    (tmp_path / "boxes.json").write_text(json.dumps([[231, 52, 180, 290], [0, 0, -1, 5]]))
    out = tmp_path / "vis.png"
    rc = main(
        [
            "predict",
            str(coco_mini / "images" / "val2017" / "000000000785.jpg"),
            "--boxes",
            str(tmp_path / "boxes.json"),
            "--out",
            str(out),
            "--json",
            str(tmp_path / "kp.json"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[2] == 3
    data = json.loads((tmp_path / "kp.json").read_text())
    assert data["weights"] == "random weights" and len(data["errors"]) == 1
    assert "random weights" in capsys.readouterr().out


def test_predict_unreadable_image(tmp_path, capsys):
    (tmp_path / "b.json").write_text("[[0, 0, 10, 10]]")
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    assert (
        main(
            ["predict", str(tmp_path / "x.jpg"), "--boxes", str(tmp_path / "b.json"), "--out", str(tmp_path / "o.png")]
        )
        == 2
    )
    assert "could not be decoded" in capsys.readouterr().err


def test_predict_oracle_draws_ground_truth(coco_mini, tmp_path):
    """The oracle needs the COCO id of the image (its file name), not 0: it then draws skeletons."""
    cv2 = pytest.importorskip("cv2")
    persons = posefw.coco.load_persons(coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json")
    (tmp_path / "boxes.json").write_text(json.dumps(persons.boxes[persons.image_ids == 196141].tolist()))
    image = coco_mini / "images" / "val2017" / "000000196141.jpg"
    assert (
        main(
            [
                "predict",
                str(image),
                "--boxes",
                str(tmp_path / "boxes.json"),
                "--engine",
                "oracle",
                "--out",
                str(tmp_path / "vis.png"),
                "--json",
                str(tmp_path / "kp.json"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "kp.json").read_text())
    scores = np.array(data["scores"], dtype=float)
    assert np.nanmax(scores, axis=1).min() > 0.9  # every person found
    drawn = cv2.imread(str(tmp_path / "vis.png"))[..., ::-1].astype(int)
    green = (drawn[..., 1] > 200) & (drawn[..., 0] < 100) & (drawn[..., 2] < 100)
    assert green.sum() > 500  # skeleton lines


def test_eval_skips_a_missing_image_and_reports_it(coco_mini, tmp_path):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(coco_mini / "images" / "val2017", images)
    (images / "000000196141.jpg").unlink()
    (images / "000000000785.jpg").write_bytes(b"corrupt")
    out = tmp_path / "r.json"
    assert main(eval_args(coco_mini, "--engine", "oracle", "--json", str(out), images=images)) == 0
    res = json.loads(out.read_text())
    assert any("000000196141.jpg" in s and "not found" in s for s in res["skipped"])
    assert any("000000000785.jpg" in s and "could not be decoded" in s for s in res["skipped"])
    assert res["instances"] == 80 - 4 - 1 and res["stats"]["AP"] > 0.9


def test_eval_bad_inputs_are_named_or_skipped(coco_mini, tmp_path, capsys):
    (tmp_path / "list.json").write_text("[]")
    images = str(coco_mini / "images" / "val2017")
    assert main(["eval", "--annotations", str(tmp_path / "list.json"), "--images", images, "--engine", "oracle"]) == 2
    assert "is not a COCO keypoints file" in capsys.readouterr().err
    (tmp_path / "obj.json").write_text('{"image_id": 785}')
    assert main(eval_args(coco_mini, "--engine", "oracle", "--detections", str(tmp_path / "obj.json"))) == 2
    assert "--detections: expected a JSON list of COCO detections, got a dict" in capsys.readouterr().err
    dets = [
        {"image_id": 785, "bbox": [280, 44, 218, 346], "score": 0.99, "category_id": 1},
        {"image_id": 785, "score": 0.9},
        {"image_id": 785, "bbox": [1, 2, 3], "score": 0.9},
        "junk",
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "r.json"
    args = eval_args(coco_mini, "--engine", "oracle", "--detections", str(tmp_path / "dets.json"), "--json", str(out))
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["instances"] == 1
    assert [s.split(":")[0] for s in res["skipped"]] == ["detection 1", "detection 2", "detection 3"]
    assert "missing 'bbox'" in res["skipped"][0]


def test_predict_boxes_files_that_cannot_be_read_are_named(coco_mini, tmp_path, capsys):
    image = str(coco_mini / "images" / "val2017" / "000000000785.jpg")
    cases = [
        ({"a": 1}, "--boxes: expected a JSON list"),
        ([[1, 2, 3, 4, 0.9]], "--boxes: expected shape (N, 4) as x, y, w, h, got (1, 5) (drop the score column"),
        ([{"image_id": 785, "score": 1}], "--boxes: every COCO detection needs a 'bbox'"),
    ]

    def predict(image):
        return main(
            [
                "predict",
                str(image),
                "--boxes",
                str(tmp_path / "b.json"),
                "--engine",
                "oracle",
                "--out",
                str(tmp_path / "v.png"),
            ]
        )

    for data, words in cases:
        (tmp_path / "b.json").write_text(json.dumps(data))
        assert predict(image) == 2
        assert words in capsys.readouterr().err
    (tmp_path / "b.json").write_text(json.dumps([{"image_id": 785, "bbox": [1, 2, 30, 40]}]))
    named = tmp_path / "frame.jpg"
    named.write_bytes((coco_mini / "images" / "val2017" / "000000000785.jpg").read_bytes())
    assert predict(named) == 2
    assert "detections name image ids, but" in capsys.readouterr().err


def test_eval_takes_a_config_file_and_flags_override_it(coco_mini, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[engine]\nname = "oracle"\n[decoder]\nalgorithm = "dark"\n[pipeline]\npreprocess = "cpu"\n')
    out = tmp_path / "r.json"
    args = eval_args(coco_mini, "--config", str(cfg))
    assert main([*args, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["engine"]["engine"] == "oracle" and res["algorithm"] == "dark" and res["crops_on"] == "cpu"
    assert res["stats"]["AP"] >= 0.98
    assert main([*args, "--algorithm", "argmax", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["algorithm"] == "argmax"
