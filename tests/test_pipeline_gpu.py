"""The GPU path (frames -> keypoints on the device) against the CPU path, on the GPU machine.

Skipped with the reason elsewhere; CI covers the CPU path, the crop kernel under Triton's
interpreter and the batching logic (test_pipeline_api.py, test_preprocess.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import posefw
import posefw.coco
from posefw.pipeline import Pipeline
from posefw.testing import cuda_reason

pytestmark = pytest.mark.gpu
if cuda_reason():
    pytest.skip(cuda_reason(), allow_module_level=True)
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def frames_and_boxes():
    from posefw.data import coco_mini, coco_mini_annotations
    from posefw.images import read_image_cpu

    ann = coco_mini_annotations()
    if not ann.is_file():
        pytest.skip("coco-mini not found (set POSEFW_DATA)")
    persons = posefw.coco.load_persons(ann)
    ids = list(dict.fromkeys(persons.image_ids.tolist()))
    frames = [read_image_cpu(coco_mini() / "images" / "val2017" / persons.images[i]) for i in ids]
    return frames, [persons.boxes[persons.image_ids == i] for i in ids], ids


@pytest.fixture(scope="module")
def engine_fp32():
    return posefw.create_engine("torch", precision="fp32", device="cuda", cuda_graph=True)


def _edge_boxes(frame):
    """Boxes over the top-left and bottom-right corners, a tiny one, a tall one, and one whose
    crop lies mostly outside the frame (x, y, w, h)."""
    h, w = frame.shape[:2]
    return [
        [-50, -30, 120, 200],
        [w - 60, h - 90, 150, 160],
        [5, 5, 3, 4],
        [w / 2, h / 2, 40, 300],
        [-2000, -900, 2010, 910],
    ]


def _keypoints(results):
    return np.concatenate([r.keypoints for r in results]), np.concatenate([r.scores for r in results])


@pytest.mark.parametrize("decoder, flip", [("cupy-full", False), ("cupy-full", True), ("numpy-cpu", False)])
def test_gpu_path_agrees_with_cpu_path(engine_fp32, frames_and_boxes, decoder, flip):
    """Same engine (torch fp32), same frames: <= 0.05 px median, the crops being bit-identical."""
    frames, boxes, ids = frames_and_boxes
    dec = posefw.create_decoder(decoder)
    gpu = Pipeline(engine_fp32, dec, flip_test=flip, preprocess="gpu")
    cpu = Pipeline(engine_fp32, dec, flip_test=flip, preprocess="cpu")
    assert gpu.preprocess == "gpu" and Pipeline(engine_fp32, dec).preprocess == "gpu"  # auto: the engine's device
    kg, sg = _keypoints(gpu(frames, boxes, ids))
    kc, sc = _keypoints(cpu(frames, boxes, ids))
    dist = np.linalg.norm(kg - kc, axis=-1)
    assert np.median(dist) <= 0.05, np.median(dist)
    assert np.isfinite(kg).all() and len(kg) == sum(len(b) for b in boxes)
    np.testing.assert_allclose(sg, sc, atol=1e-3)


def test_device_frames_stream_and_submit(engine_fp32, frames_and_boxes):
    """CUDA frames (HWC and CHW) are read in place; stream and submit equal blocking calls."""
    frames, boxes, ids = frames_and_boxes
    dec = posefw.create_decoder("cupy-full")
    pipe = Pipeline(engine_fp32, dec)
    calls = [(frames[i : i + 5], boxes[i : i + 5], ids[i : i + 5]) for i in range(0, len(frames), 5)]
    blocking = [_keypoints(pipe(*c))[0] for c in calls]
    dev = [
        (
            [
                torch.from_numpy(f).cuda() if j % 2 else torch.from_numpy(f).cuda().permute(2, 0, 1).contiguous()
                for j, f in enumerate(fr)
            ],
            bx,
            i,
        )
        for fr, bx, i in calls
    ]
    streamed = [_keypoints(r)[0] for r in pipe.stream(dev)]
    with pipe:
        submitted = [_keypoints(f.result(timeout=300))[0] for f in [pipe.submit(*c) for c in calls]]
    for a, b, c in zip(blocking, streamed, submitted):
        np.testing.assert_allclose(a, b, atol=1e-3)
        np.testing.assert_allclose(a, c, atol=1e-3)


def test_read_images_decodes_jpegs_on_the_gpu(frames_and_boxes):
    from posefw.data import coco_mini
    from posefw.images import read_image_cpu, read_images

    paths = sorted((coco_mini() / "images" / "val2017").glob("*.jpg"))[:6]
    gpu = read_images(paths, device="cuda")
    assert all(t.is_cuda and t.dtype == torch.uint8 and t.shape[0] == 3 for t in gpu)
    for p, t in zip(paths, gpu):
        cpu = read_image_cpu(p)
        diff = np.abs(t.permute(1, 2, 0).cpu().numpy().astype(int) - cpu)
        assert diff.mean() < 1.0, (p.name, diff.mean())  # nvJPEG vs libjpeg-turbo IDCT rounding


def test_eval_gpu_and_cpu_paths(coco_mini, tmp_path):
    """posefw eval through both paths: the torch fp32 engine (random weights) and the oracle."""
    from posefw.cli import main

    ann = coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"
    base = ["eval", "--annotations", str(ann), "--images", str(coco_mini / "images" / "val2017")]
    stats = {}
    for engine in ("torch", "oracle"):
        for pre in ("gpu", "cpu"):
            out = tmp_path / f"{engine}-{pre}.json"
            assert main([*base, "--engine", engine, "--preprocess", pre, "--json", str(out)]) == 0
            res = json.loads(out.read_text())
            assert res["crops_on"].startswith("cuda" if pre == "gpu" else "cpu")
            stats[engine, pre] = res["stats"]["AP"]
    assert abs(stats["torch", "gpu"] - stats["torch", "cpu"]) <= 0.001, stats
    assert stats["oracle", "gpu"] == stats["oracle", "cpu"] and stats["oracle", "gpu"] > 0.9, stats


def test_padded_batches_and_warm_up(engine_fp32, frames_and_boxes):
    """Every box count runs at one of a few padded sizes (one graph each, captured by warm_up);
    the padding rows never change the real rows' keypoints."""
    frames, boxes, _ = frames_and_boxes
    pipe = Pipeline(engine_fp32, posefw.create_decoder("cupy-full"), preprocess="gpu")
    pipe.warm_up()
    graphs = len(engine_fp32._graphs)
    assert pipe.runner.sizes[:4] == [1, 2, 4, 8] and pipe.runner.sizes[-1] == 64
    allb = np.concatenate(boxes)
    owner = np.repeat(np.arange(len(frames)), [len(b) for b in boxes])
    alone: dict[int, np.ndarray] = {}
    diffs = []
    for n in (1, 3, 5, 9, 17, 33, 63):  # every count between the sizes: no new capture
        rows = np.arange(n) % len(allb)
        fr = [frames[owner[r]] for r in rows]
        res = pipe(fr, [allb[r : r + 1] for r in rows])
        for r, out in zip(rows, res):
            diffs.append(np.abs(out.keypoints[0] - alone.setdefault(int(r), out.keypoints[0])))
    # fp32 GEMMs pick other kernels at other batch sizes and DARK amplifies that on random
    # weights' flat maps (up to 0.025 px seen on the H200); a padding row mixed into a real
    # one would move it by pixels
    diffs = np.concatenate(diffs)
    assert np.median(diffs) < 1e-3 and diffs.max() < 0.1, (np.median(diffs), diffs.max())
    assert len(engine_fp32._graphs) == graphs, "a box count outside the padded sizes captured a graph"


def test_stream_run_with_device_frames_from_a_decoder_thread(engine_fp32, frames_and_boxes):
    """A frame source that makes CUDA tensors on its own thread (as NVDEC does) while the
    pipeline captures and replays graphs: every frame's keypoints equal a direct call's."""
    from posefw.multistream import Stream, StreamRun
    from posefw.streams import BoxSource, Detections, FrameSource, VideoFrame

    frames, boxes, _ = frames_and_boxes

    class DeviceFrames(FrameSource):
        def frames(self):
            for i, f in enumerate(frames):
                yield VideoFrame(self.stream, i, None, torch.from_numpy(f).cuda().clone())

    class GroundTruth(BoxSource):
        def boxes(self, frame):
            return Detections(boxes[frame.index], np.ones(len(boxes[frame.index])))

    pipe = Pipeline(
        posefw.create_engine("torch", precision="fp32", device="cuda", cuda_graph=True),
        posefw.create_decoder("cupy-full"),
        preprocess="gpu",
    )
    run = StreamRun(pipe, [Stream(DeviceFrames("x", stream=f"s{i}"), GroundTruth()) for i in range(3)])
    got = list(run)
    assert len(got) == 3 * len(frames) and not run.problems
    ref = pipe(frames, boxes)
    # Per box, the median of its 17 keypoints' distances to a direct call's. Other batch
    # compositions round differently, and on random weights' flat maps a near-tie can move one
    # argmax by pixels (seen on the H200: 1 of 8,160 values by 12.6 px), so a bound on every
    # value is flaky. A frame read while its producer was still writing it moves the whole
    # pose: most keypoints of that box.
    per_box = np.concatenate(
        [np.median(np.linalg.norm(r.keypoints - ref[r.frame.index].keypoints, axis=-1), axis=1) for r in got]
    )
    assert len(per_box) == 3 * sum(len(b) for b in boxes)
    assert per_box.max() < 0.1, (per_box.max(), np.flatnonzero(per_box >= 0.1))


@pytest.mark.parametrize("flip", [False, True])
def test_host_frames_uploaded_as_windows_crop_as_whole_frames(engine_fp32, frames_and_boxes, flip):
    """Host frames go up as the window their crops read; the same frames already on the GPU are
    read whole, in place. Same batch size, same graph: the keypoints must be bit-identical, for
    boxes over every border, a tiny box, a crop mostly outside the frame, an odd-sized view and
    a mirrored (negative-stride) view."""
    frames, boxes, _ = frames_and_boxes
    odd = frames[0][:427, :639]
    host = [odd, frames[1][:, ::-1], frames[2]]
    bx = [np.array(_edge_boxes(odd)), boxes[1], boxes[2]]
    pipe = Pipeline(engine_fp32, posefw.create_decoder("cupy-full"), flip_test=flip, preprocess="gpu")
    got = [pipe(host, bx)]  # a blocking call: the windows go up behind the box table, in one copy
    got += list(pipe.stream([(host, bx)] * 3))  # calls in flight: on the copy stream, slot by slot
    ref = pipe([torch.from_numpy(np.ascontiguousarray(f)).cuda() for f in host], bx)
    for call in got:
        for a, b in zip(call, ref):
            assert a.valid.all() and not a.errors
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            np.testing.assert_array_equal(a.scores, b.scores)


def test_runtime_calls_equal_torch_calls(engine_fp32, frames_and_boxes):
    """Copies and graph launches made through the CUDA runtime directly (posefw.cudart) give the
    very keypoints torch's calls give: one box per call (the direct upload), a full call, and
    more boxes than one batch (table blocks copied one by one)."""
    from posefw import cudart

    frames, boxes, ids = frames_and_boxes
    pipe = Pipeline(engine_fp32, posefw.create_decoder("cupy-full"), preprocess="gpu")
    run = pipe.runner
    assert run.rt is not None, cudart.unavailable()  # the torch on the GPU machine loads libcudart
    calls = [([frames[0]], [boxes[0][:1]], ids[:1]), (frames, boxes, ids), (frames * 3, boxes * 3, ids * 3)]
    out = {}
    for mode in ("runtime", "torch"):
        run.rt = cudart.runtime() if mode == "runtime" else None
        out[mode] = [_keypoints(pipe(*c)) for c in calls]
    assert run._graphs, "the engine's runners did not offer their graphs"
    for (ka, sa), (kb, sb) in zip(out["runtime"], out["torch"]):
        np.testing.assert_array_equal(ka, kb)
        np.testing.assert_array_equal(sa, sb)


@pytest.mark.parametrize("flip", [False, True])
def test_one_box_path_equals_the_general_path(engine_fp32, frames_and_boxes, flip):
    """A blocking one-box call takes the runner's one-box path (posefw.one_box_call); its
    keypoints are the general path's to the bit: host frames (odd-sized, mirrored) and device
    frames, boxes over every border, a tiny box, a crop mostly outside the frame. A bad box is
    left to the general path, which names it."""
    frames, boxes, _ = frames_and_boxes
    pipe = Pipeline(engine_fp32, posefw.create_decoder("cupy-full"), flip_test=flip, preprocess="gpu")
    pipe.warm_up()
    quick = pipe._quick
    odd = frames[0][:427, :639]
    host = [odd, frames[1][:, ::-1], frames[2]]
    cases = [(f, b) for f in host for b in _edge_boxes(f)] + [(frames[i], boxes[i][0].tolist()) for i in range(3)]
    cases += [(torch.from_numpy(np.ascontiguousarray(f)).cuda(), b) for f, b in cases[::2]]
    for frame, box in cases:
        assert quick([frame], [np.array([box])]) is not None, "the one-box path did not answer"
        fast = pipe([frame], [np.array([box])])[0]
        pipe._quick = None
        try:
            ref = pipe([frame], [np.array([box])])[0]
        finally:
            pipe._quick = quick
        assert fast.valid.all() and not fast.errors
        np.testing.assert_array_equal(fast.keypoints, ref.keypoints)
        np.testing.assert_array_equal(fast.scores, ref.scores)
    bad = pipe([odd], [np.array([[10.0, 10, 0, 50]])])[0]
    assert not bad.valid[0] and "box 0" in bad.errors[0]
    assert not quick.busy
