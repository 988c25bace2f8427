"""The pipeline's host side on any machine: frames and boxes as given, batching, the three ways
to call it (blocking, stream, submit) and bad input that costs only itself."""

from __future__ import annotations

import numpy as np
import pytest

import posefw
import posefw.coco
from posefw.config import Config, PipelineConfig, load_config
from posefw.pipeline import Pipeline

pytest.importorskip("cv2")


@pytest.fixture
def oracle(coco_mini):
    ann = coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"
    return lambda **kw: posefw.create_engine("oracle", annotations=str(ann), **kw)


@pytest.fixture
def calls(coco_mini):
    """Three calls of real frames and their ground-truth boxes (2, 1 and 3 frames)."""
    from posefw.images import read_image_cpu

    persons = posefw.coco.load_persons(coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json")
    ids = list(dict.fromkeys(persons.image_ids.tolist()))[:6]
    frames = {i: read_image_cpu(coco_mini / "images" / "val2017" / persons.images[i]) for i in ids}
    boxes = {i: persons.boxes[persons.image_ids == i] for i in ids}
    groups = [ids[:2], ids[2:3], ids[3:6]]
    return [([frames[i] for i in g], [boxes[i] for i in g], g) for g in groups]


def test_stream_and_submit_equal_blocking_calls(oracle, calls):
    pipe = Pipeline(oracle(max_batch=4), posefw.create_decoder("numpy-cpu"))
    blocking = [pipe(*c) for c in calls]
    streamed = list(pipe.stream(calls))
    with pipe:
        futures = [pipe.submit(*c) for c in calls]
        submitted = [f.result(timeout=120) for f in futures]
    for a, b, c in zip(blocking, streamed, submitted):
        for ra, rb, rc in zip(a, b, c):
            np.testing.assert_array_equal(ra.keypoints, rb.keypoints)
            np.testing.assert_array_equal(ra.keypoints, rc.keypoints)
            assert ra.valid.all() and np.isfinite(ra.scores).all()


def test_a_stream_stopped_early_leaves_no_call_in_flight(oracle, calls):
    """Calls in flight hold a runner's buffers (the GPU path's slots) until finished: a consumer
    that stops after one result, or an item that raises, must not leave any behind."""
    pipe = Pipeline(oracle(max_batch=4), posefw.create_decoder("numpy-cpu"))
    launched, finished = [], []
    launch, finish = pipe.runner.launch, pipe.runner.finish
    pipe.runner.launch = lambda plan: launched.append(plan) or launch(plan)
    pipe.runner.finish = lambda plan, handle: finished.append(plan) or finish(plan, handle)
    gen = pipe.stream(calls * 2, depth=3)
    assert next(gen)[0].valid.all()
    assert len(launched) == 3 and len(finished) == 1  # two calls still in flight
    gen.close()
    assert finished == launched
    bad = (calls[0][0], calls[0][1][:1])  # two frames, one box array
    launched.clear(), finished.clear()
    with pytest.raises(ValueError, match="one box array per frame"):
        list(pipe.stream([calls[1], calls[2], bad], depth=3))
    assert len(launched) == 2 and finished == launched


def test_submit_reports_a_bad_call_and_goes_on(oracle, calls):
    with Pipeline(oracle(), posefw.create_decoder("numpy-cpu")) as pipe:
        bad = pipe.submit(calls[0][0], calls[0][1][:1])  # two frames, one box array
        good = pipe.submit(*calls[1])
        with pytest.raises(ValueError, match="boxes: expected one box array per frame"):
            bad.result(timeout=60)
        assert good.result(timeout=60)[0].valid.all()


def test_chunks_cover_every_box_once(oracle):
    pipe = Pipeline(oracle(max_batch=6), posefw.create_decoder("numpy-cpu"), flip_test=True)
    assert pipe.per_batch == 3
    assert pipe.chunks(7) == [(0, 3), (3, 3), (6, 1)]
    assert pipe.chunks(0) == []


def test_more_boxes_than_the_batch_and_empty_frames(oracle, calls):
    frames, boxes, ids = calls[2]
    many = Pipeline(oracle(max_batch=2), posefw.create_decoder("numpy-cpu"))
    one = Pipeline(oracle(), posefw.create_decoder("numpy-cpu"))
    with_empty = ([frames[0], frames[1], frames[2]], [boxes[0], np.zeros((0, 4)), boxes[2]], ids)
    a, b = many(*with_empty), one(*with_empty)
    assert len(a[1].valid) == 0 and a[1].keypoints.shape == (0, 17, 2)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.keypoints, rb.keypoints)


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((40, 50), np.uint8), "frame 1: expected RGB (H, W, 3), got grayscale"),
        (np.zeros((40, 50, 4), np.uint8), "frame 1: expected RGB (H, W, 3), got RGBA"),
        (np.zeros((40, 50, 3), np.uint16), "frame 1: expected RGB uint8, got uint16"),
        (np.zeros((40, 50, 3), np.float32), "frame 1: expected RGB uint8, got float32 (scale to 0..255"),
        ("frame.jpg", "frame 1: expected a NumPy array, torch tensor or DLPack array, got str"),
    ],
)
def test_a_bad_frame_costs_only_its_boxes(oracle, calls, frame, message):
    frames, boxes, ids = calls[0]
    pipe = Pipeline(oracle(), posefw.create_decoder("numpy-cpu"))
    res = pipe([frames[0], frame], [boxes[0], [[1, 1, 10, 10]]], [ids[0], 0])
    assert res[0].valid.all() and np.isfinite(res[0].keypoints).all()
    assert not res[1].valid.any() and np.isnan(res[1].keypoints).all()
    assert any(message in e for e in res[1].errors), res[1].errors


def test_boxes_as_lists_arrays_tensors_and_bad_rows(oracle, calls):
    torch = pytest.importorskip("torch")
    frames, boxes, ids = calls[1]
    pipe = Pipeline(oracle(), posefw.create_decoder("numpy-cpu"))
    ref = pipe(frames, [boxes[0]], ids)[0]
    for form in (boxes[0].tolist(), torch.as_tensor(boxes[0]), boxes[0].astype(np.float32)):
        np.testing.assert_allclose(pipe(frames, [form], ids)[0].keypoints, ref.keypoints, atol=1e-3)
    mixed = np.concatenate([boxes[0][:1], [[np.nan, 0, 1, 1], [0, 0, 1e300, 1e300], [5, 5, 0, 9]], boxes[0][1:]])
    res = pipe(frames, [mixed], ids)[0]
    assert res.valid.tolist() == [True, False, False, False] + [True] * (len(boxes[0]) - 1)
    assert [e.split(":")[0] for e in res.errors] == ["frame 0 box 1", "frame 0 box 2", "frame 0 box 3"]
    np.testing.assert_array_equal(res.keypoints[res.valid], ref.keypoints)
    with pytest.raises(ValueError, match=r"boxes\[0\]: expected shape \(N, 4\).*drop the score column"):
        pipe(frames, [np.ones((2, 5))], ids)


def test_preprocess_choice_and_config(tmp_path, oracle):
    dec = posefw.create_decoder("numpy-cpu")
    assert Pipeline(oracle(), dec).preprocess == "cpu"  # the oracle runs on the CPU
    with pytest.raises(ValueError, match="preprocess: expected one of"):
        Pipeline(oracle(), dec, preprocess="tpu")
    cfg = tmp_path / "p.toml"
    cfg.write_text('[pipeline]\npreprocess = "cpu"\nflip_test = true\n')
    assert load_config(cfg).pipeline == PipelineConfig(preprocess="cpu", flip_test=True)
    cfg.write_text('[pipeline]\npreprocess = "npu"\n')
    with pytest.raises(ValueError, match=r"\[pipeline\].preprocess"):
        load_config(cfg)
    assert Config().pipeline.preprocess == "auto"


def test_gpu_preprocess_on_a_cpu_machine_says_why(oracle):
    from posefw.testing import cuda_reason

    if cuda_reason() is None:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="preprocess: 'gpu' needs a CUDA device"):
        Pipeline(oracle(), posefw.create_decoder("numpy-cpu"), preprocess="gpu")
