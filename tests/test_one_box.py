"""One box in Python floats equals the vectorised functions to the last bit, and a few-box call
plans exactly as the vectorised pass would (the GPU crops where the CPU crops only if so)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import posefw.pipeline
from posefw import one_box
from posefw.crop_kernel import crop_matrices, read_windows
from posefw.pipeline import Pipeline
from posefw.preprocess import box_checks
from posefw.transforms import box_to_center_scale

values = st.one_of(
    st.floats(-2000, 3000),
    st.floats(1e-6, 1e-2),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e300, -1e300, 1e-300, 1e-3, 9.99e-4]),
)
box = st.tuples(values, values, values, values)
frame_size = st.tuples(st.integers(1, 2000), st.integers(1, 2000))


@settings(max_examples=250, deadline=None)
@given(b=box, size=frame_size, udp=st.booleans())
def test_one_box_equals_the_vectorised_functions(b, size, udp):
    h, w = size
    ok, code = box_checks(np.array([b], np.float64), h, w)
    got = one_box.box_code(*b, h, w)
    assert got == (0 if code is None else int(code[0]))
    assert (got == 0) == bool(ok[0])
    if got:
        return
    centers, scales = box_to_center_scale(np.array([b]))
    cs = one_box.center_scale(*b)
    assert cs == (*centers[0].tolist(), *scales[0].tolist())
    m = crop_matrices(centers, scales, udp).reshape(-1, 6)
    assert one_box.crop_matrix(*cs, udp) == tuple(m[0].tolist())
    assert np.isfinite(m).all()  # a box that passes the checks has a crop
    window = one_box.clip_window(*one_box.read_window(one_box.crop_matrix(*cs, udp)), h, w)
    assert window == tuple(read_windows(m, np.zeros(1, np.int64), [(h, w)])[0].tolist())


class _Engine:
    """Just what Pipeline's planning reads of an engine (the boxes never reach it here)."""

    name, max_batch, runs_on, needs_crops, input_dtype = "plan-only", 64, "cpu", True, "float32"


frames = st.lists(st.tuples(st.integers(1, 700), st.integers(1, 900)), min_size=1, max_size=4)


@settings(max_examples=80, deadline=None)
@given(sizes=frames, data=st.data(), udp=st.booleans())
def test_few_boxes_plan_as_the_vectorised_pass(sizes, data, udp, monkeypatch_module):
    boxes = [
        data.draw(hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.just(4)), elements=values)) for _ in sizes
    ]
    imgs = [np.zeros((h, w, 3), np.uint8) for h, w in sizes]
    bad = data.draw(st.integers(-1, len(sizes) - 1))
    if bad >= 0:
        imgs[bad] = np.zeros((4, 4), np.uint8)  # grayscale: the frame is refused, its boxes with it
    pipe = Pipeline(_Engine(), type("Dec", (), {"udp": udp, "name": "d"})(), preprocess="cpu")
    ids = list(range(100, 100 + len(sizes)))
    monkeypatch_module.setattr(posefw.pipeline, "FEW_BOXES", 1000)
    few = pipe.plan(imgs, boxes, ids)
    monkeypatch_module.setattr(posefw.pipeline, "FEW_BOXES", -1)
    vec = pipe.plan(imgs, boxes, ids)
    assert [id(f.array) for f in few.frames] == [id(f.array) for f in vec.frames]
    for name in ("frame_of_row", "owners", "centers", "scales", "image_ids", "box_rows", "counts", "ok", "matrices"):
        a, b = getattr(few, name), getattr(vec, name)
        assert a.shape == b.shape and (a == b).all(), name
    assert few.errors == vec.errors
    assert vec.windows is None and len(few.windows) == len(vec.frames)
    if vec.rows:
        hw = [(f.height, f.width) for f in vec.frames]
        assert few.windows == [tuple(w) for w in read_windows(vec.matrices, vec.frame_of_row, hw).tolist()]


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
