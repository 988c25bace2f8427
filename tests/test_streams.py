"""Frame and box sources, tracking, and ``posefw run`` over videos made from coco-mini frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

import posefw
from posefw import cli
from posefw.streams import Detections, VideoFrame
from posefw.tracking import IoUTracker, TrackedBoxes, boxes_from_keypoints, iou_matrix

av = pytest.importorskip("av")
pytest.importorskip("cv2")

CONFIG = '[engine]\nname = "torch"\n[engine.options]\nsize = "s"\n'


@pytest.fixture(scope="module")
def videos(tmp_path_factory, request):
    from posefw.data import coco_mini_annotations

    if not coco_mini_annotations().is_file():
        pytest.skip("COCO mini data not found (set POSEFW_DATA)")
    from posefw.testing.videos import coco_video

    d = tmp_path_factory.mktemp("videos")
    cam1 = coco_video(d, "cam1", 7, 0, (320, 240))
    cam2 = coco_video(d, "cam2", 5, 7, (288, 224))
    (d / "run.toml").write_text(CONFIG)
    return d, cam1, cam2


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- sources -------------------------------------------------------------------------------
def test_sources_are_listed_with_their_status(capsys):
    assert cli.main(["sources", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("images", "video-pyav", "video-nvdec", "coco-dets", "jsonl", "mot"):
        assert name in out
    nvdec = {i.name: i for i in posefw.available_sources()}["video-nvdec"]
    assert nvdec.available or nvdec.reason  # never a crash on a machine without NVDEC


def test_pyav_source_yields_every_frame_with_index_and_time(videos):
    from posefw.streams import frame_source_for

    _, (video, _), _ = videos
    cls = frame_source_for(video, "cpu")
    assert cls.name == "video-pyav"
    src = cls(video, stream="cam1")
    frames = list(src)
    assert [f.index for f in frames] == list(range(7)) and src.expected_frames == 7
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].timestamp == 0.0 and frames[3].timestamp == pytest.approx(0.3)


def test_box_files_read_and_name_every_bad_entry(tmp_path):
    reg = posefw.get_registry()
    coco = tmp_path / "d.json"
    coco.write_text(
        json.dumps(
            [
                {"image_id": 2, "bbox": [1, 2, 30, 40], "score": 0.9},
                {"image_id": 2, "bbox": [5, 5, 10, 10], "score": 0.1},
                {"image_id": 2, "bbox": [5, 5, 10], "score": 0.9},
                {"image_id": 2, "bbox": [0, 0, 9, 9], "category_id": 3},
                {"bbox": [0, 0, 1, 1]},
                {"image_id": 3, "bbox": [0, 0, 8, 8], "stream": "other"},
            ]
        )
    )
    src = reg.create("box-source", "coco-dets", path=coco, stream="cam", min_score=0.5)
    dets = src.boxes(VideoFrame("cam", 2, None, image_id=2))
    assert dets.boxes.tolist() == [[1, 2, 30, 40]] and dets.track_ids.tolist() == [-1]
    assert len(src.boxes(VideoFrame("cam", 3, None, image_id=3))) == 0  # another stream's entry
    assert any("detection 2" in p and "3 numbers" in p for p in src.problems)
    assert any("detection 4" in p for p in src.problems) and len(src.problems) == 2

    jl = tmp_path / "d.jsonl"
    jl.write_text(
        '{"frame": 0, "boxes": [[1, 1, 5, 5]], "track_ids": [7]}\n'
        "not json\n"
        '{"frame": 1, "boxes": [[1,1,1,1]], "scores": []}\n'
    )
    src = reg.create("box-source", "jsonl", path=jl)
    assert src.boxes(VideoFrame("s", 0, None)).track_ids.tolist() == [7]
    assert [p.split(":")[0] for p in src.problems] == ["d.jsonl line 2", "d.jsonl line 3"]

    mot = tmp_path / "det.txt"
    mot.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n2,4,1,1,5,5,0.8\n0,1,1,1,1,1,1\n3,1,1\n")
    src = reg.create("box-source", "mot", path=mot)
    assert src.boxes(VideoFrame("s", 0, None)).boxes.tolist() == [[10, 20, 30, 40]]
    assert src.boxes(VideoFrame("s", 1, None)).track_ids.tolist() == [4]
    assert len(src.problems) == 2


# ---- tracking ------------------------------------------------------------------------------
def test_iou_tracker_keeps_ids_of_moving_people_and_starts_new_ones():
    t = IoUTracker(min_iou=0.3, max_age=2)
    a, b = np.array([0, 0, 10, 20.0]), np.array([50, 0, 10, 20.0])
    assert t.update([a, b]).tolist() == [0, 1]
    assert t.update([b + [2, 0, 0, 0], a + [1, 1, 0, 0]]).tolist() == [1, 0]  # order changed, ids follow
    assert t.update([a + [100, 0, 0, 0]]).tolist() == [2]  # someone new
    t.update([])
    t.update([])
    assert t.update([a]).tolist() == [3]  # the old track aged out


def test_iou_matrix_and_boxes_from_keypoints():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 1, 1]]).round(4).tolist() == [[0.3333, 0.0]]
    kp = np.zeros((2, 17, 2))
    kp[0, :, 0], kp[0, :, 1] = np.linspace(10, 30, 17), np.linspace(100, 180, 17)
    sc = np.ones((2, 17))
    sc[1] = 0.0  # nobody confident: lost, not a box
    boxes, who = boxes_from_keypoints(kp, sc)
    assert who.tolist() == [0]
    x, y, w, h = boxes[0]
    assert (x + w / 2, y + h / 2) == pytest.approx((20, 140)) and (w, h) == pytest.approx((25, 100))


def test_tracked_boxes_detect_every_n_frames_and_follow_poses_between():
    class Counting:
        stream, min_score, problems = "s", 0.0, []

        def __init__(self):
            self.calls = []

        def boxes(self, frame):
            self.calls.append(frame.index)
            return Detections([[10, 10, 20, 40]], [0.9])

    det = Counting()
    src = TrackedBoxes(det, IoUTracker(), every=3)
    assert src.follows_poses
    kp = np.stack([np.linspace(12, 28, 17), np.linspace(12, 48, 17)], -1)[None]
    ids = []
    for i in range(7):
        frame = VideoFrame("s", i, None)
        d = src.boxes(frame)
        ids += d.track_ids.tolist()
        src.observe(frame, d, kp + i, np.ones((1, 17)))
    assert det.calls == [0, 3, 6] and ids == [0] * 7


# ---- posefw run ----------------------------------------------------------------------------
def test_run_two_videos_one_line_per_frame_with_render(videos):
    d, (v1, d1), (v2, d2) = videos
    out, render = d / "poses.jsonl", d / "render.mp4"
    rc = cli.main(
        ["run", "--source", str(v1), "--source", str(v2), "--boxes", str(d1), "--boxes", str(d2)]
        + ["--config", str(d / "run.toml"), "--out", str(out), "--render", str(render)]
    )
    assert rc == 0
    lines = _lines(out)
    assert sorted((r["stream"], r["frame"]) for r in lines) == [("cam1", i) for i in range(7)] + [
        ("cam2", i) for i in range(5)
    ]
    for stream in ("cam1", "cam2"):
        assert [r["frame"] for r in lines if r["stream"] == stream] == sorted(
            r["frame"] for r in lines if r["stream"] == stream
        )
    dets = json.loads(d1.read_text())
    first = next(r for r in lines if r["stream"] == "cam1" and r["frame"] == 0)
    assert first["boxes"] == [x["bbox"] for x in dets if x["image_id"] == 0]
    assert np.isfinite(np.array(first["keypoints"], float)).all() and not first["errors"]
    assert len(first["track_ids"]) == len(first["boxes"]) and min(first["track_ids"]) >= 0
    for name, count in (("cam1", 7), ("cam2", 5)):
        with av.open(str(d / f"render-{name}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == count


def test_run_results_equal_the_in_process_pipeline(videos):
    from posefw.config import load_config
    from posefw.multistream import Stream, StreamRun
    from posefw.pipeline import Pipeline

    d, (v1, d1), (v2, d2) = videos
    pipe = Pipeline.from_config(load_config(d / "run.toml"))
    reg = posefw.get_registry()
    streams = [
        Stream(
            reg.create("frame-source", "video-pyav", path=v, stream=n), reg.create("box-source", "coco-dets", path=b)
        )
        for v, b, n in ((v1, d1, "a"), (v2, d2, "b"))
    ]
    run = StreamRun(pipe, streams)
    got = {(r.frame.stream, r.frame.index): r for r in run}
    assert len(got) == 12 and sum(run.batches) == sum(len(r.detections) for r in got.values())
    for name, v, b in (("a", v1, d1), ("b", v2, d2)):  # one direct call per stream, every frame in it
        src = reg.create("box-source", "coco-dets", path=b)
        frames = list(reg.create("frame-source", "video-pyav", path=v, stream=name))
        refs = pipe([f.image for f in frames], [src.boxes(f).boxes for f in frames])
        for f, ref in zip(frames, refs):
            np.testing.assert_allclose(got[(name, f.index)].keypoints, ref.keypoints, atol=1e-3)


def test_run_follows_poses_between_detections(videos):
    d, (v1, d1), _ = videos
    out = d / "follow.jsonl"
    rc = cli.main(
        ["run", "--source", str(v1), "--boxes", str(d1), "--detect-every", "3", "--config", str(d / "run.toml")]
        + ["--out", str(out), "--follow-score", "0"]  # random weights: no keypoint is confident
    )
    assert rc == 0
    lines = {r["frame"]: r for r in _lines(out)}
    dets = json.loads(d1.read_text())
    for i in (0, 3, 6):  # detection frames: the detector's boxes
        assert lines[i]["boxes"] == [x["bbox"] for x in dets if x["image_id"] == i]
    for i in (1, 2, 4, 5):  # followed frames: boxes from the previous frame's keypoints, ids carried on
        assert lines[i]["boxes"] != [x["bbox"] for x in dets if x["image_id"] == i]
        assert set(lines[i]["track_ids"]) <= set(lines[i - 1]["track_ids"])


def test_run_reports_bad_streams_and_the_others_go_on(videos, tmp_path):
    d, (v1, d1), (v2, d2) = videos
    truncated = tmp_path / "cut.mp4"
    raw = v2.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    missing = tmp_path / "missing.mp4"
    corrupt = tmp_path / "corrupt.mp4"
    data = bytearray(v1.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = bytes(2000)  # zeroed bytes inside the frame data
    corrupt.write_bytes(bytes(data))
    out = tmp_path / "p.jsonl"
    rc = cli.main(
        ["run", "--source", str(v1), "--source", str(missing), "--source", str(truncated), "--source", str(corrupt)]
        + ["--boxes", str(d1), "--boxes", str(d1), "--boxes", str(d2), "--boxes", str(d1)]
        + ["--config", str(d / "run.toml"), "--out", str(out)]
    )
    assert rc == 0
    lines = _lines(out)
    good = [r for r in lines if r["stream"] == "cam1" and r["frame"] is not None]
    assert len(good) == 7 and not any(r["errors"] for r in good)
    problems = [e for r in lines if r["frame"] is None for e in r["errors"]]
    assert any("missing" in p and "not found" in p for p in problems)
    assert any(p.startswith("stream cut: ended early, after") and p.endswith("of 5 frames") for p in problems)
    assert 0 < len([r for r in lines if r["stream"] == "cut" and r["frame"] is not None]) < 5
    bad = [r for r in lines if r["stream"] == "corrupt" and r["frame"] is not None]
    assert len(bad) == 7, "H.264 conceals the damage: every frame still gets a line"
    assert all(r["errors"] or r["keypoints"] is not None for r in bad)  # each frame: poses or its error


def test_a_frame_that_cannot_be_decoded_is_a_line_with_its_error(videos):
    """A source's broken frame (image None, error set) keeps its place in the stream's order,
    and a box source that raises costs only that frame."""
    from posefw.config import load_config
    from posefw.multistream import Stream, StreamRun
    from posefw.pipeline import Pipeline
    from posefw.streams import BoxSource, FrameSource

    d = videos[0]
    rgb = np.zeros((120, 160, 3), np.uint8)

    class Frames(FrameSource):
        def frames(self):
            for i in range(4):
                yield VideoFrame(
                    self.stream, i, i / 10, None if i == 1 else rgb, "could not be decoded" if i == 1 else ""
                )

    class Boxes(BoxSource):
        def boxes(self, frame):
            if frame.index == 2:
                raise ValueError("detector timed out")
            return Detections([[10, 10, 40, 80]], [1.0])

    pipe = Pipeline.from_config(load_config(d / "run.toml"))
    run = StreamRun(pipe, [Stream(Frames("x", stream="s"), Boxes())])
    got = list(run)
    assert [r.frame.index for r in got] == [0, 1, 2, 3]
    assert got[1].errors == ["could not be decoded"] and got[1].keypoints is None
    assert got[2].errors == ["boxes: detector timed out"]
    assert np.isfinite(got[0].keypoints).all() and np.isfinite(got[3].keypoints).all()


def test_source_plugins_share_the_registry_rules():
    """A source class without frames()/boxes() and a plugin whose hook raises are listed as
    broken with the reason; the good source still works."""
    from posefw import hookimpl
    from posefw.registry import Registry
    from posefw.streams import BoxSource, FrameSource

    class Good(FrameSource):
        name = "good"

        def frames(self):
            yield VideoFrame(self.stream, 0, None, np.zeros((2, 2, 3), np.uint8))

    class Lazy(FrameSource):
        name = "lazy"

    class Plugin:
        @hookimpl
        def posefw_register_frame_sources(self):
            return [Good, Lazy]

    class Broken:
        @hookimpl
        def posefw_register_box_sources(self):
            raise RuntimeError("detector weights missing")

    reg = Registry(entry_points=False)
    reg.register(Plugin(), name="plugin")
    reg.register(Broken(), name="broken-boxes")
    with pytest.warns(RuntimeWarning, match="detector weights missing"):
        frames = {i.name: i for i in reg.backends("frame-source")}
    assert frames["good"].available and frames["lazy"].status == "broken" and "frames()" in frames["lazy"].reason
    assert any(i.name == "broken-boxes" and i.status == "broken" for i in reg.backends("box-source"))
    assert len(list(reg.create("frame-source", "good", path="x"))) == 1
    assert issubclass(reg.get("frame-source", "good"), FrameSource) and BoxSource.follows_poses is False


def test_run_an_image_folder_with_coco_ids_and_max_frames(coco_mini, tmp_path):
    """The images source: name order, COCO ids from the file names, so COCO detections match;
    --max-frames stops the stream."""
    from posefw.coco import load_persons
    from posefw.data import coco_mini_annotations

    persons = load_persons(coco_mini_annotations())
    dets = [
        {"image_id": int(i), "bbox": [float(v) for v in b], "score": 1.0, "category_id": 1}
        for i, b in zip(persons.image_ids, persons.boxes)
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    (tmp_path / "run.toml").write_text(CONFIG)
    out = tmp_path / "p.jsonl"
    folder = coco_mini / "images" / "val2017"
    rc = cli.main(
        ["run", "--source", str(folder), "--boxes", str(tmp_path / "dets.json"), "--max-frames", "3"]
        + ["--config", str(tmp_path / "run.toml"), "--out", str(out), "--tracker", "none"]
    )
    assert rc == 0
    lines = _lines(out)
    first = sorted(folder.glob("*.jpg"))[:3]
    assert [r["image_id"] for r in lines] == [int(p.stem) for p in first]
    for r in lines:
        assert r["boxes"] == [d["bbox"] for d in dets if d["image_id"] == r["image_id"]]
        assert set(r["track_ids"]) <= {-1} and not r["errors"]


def test_run_names_the_extra_a_missing_decoder_needs(tmp_path, capsys, monkeypatch):
    """Problems are printed as text, not rich markup: the pip extra in brackets survives."""
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    monkeypatch.setattr(posefw.registry, "_REGISTRY", None)  # probed afresh, without PyAV
    (tmp_path / "d.json").write_text("[]")
    (tmp_path / "run.toml").write_text(CONFIG)
    rc = cli.main(
        ["run", "--source", str(tmp_path / "x.mp4"), "--boxes", str(tmp_path / "d.json")]
        + ["--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "o.jsonl")]
    )
    assert rc == 1
    assert "pip install 'posefw[video]'" in capsys.readouterr().out.replace("\n", "")
