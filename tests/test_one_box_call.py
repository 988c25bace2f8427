"""The one-box path hands the device what the general path hands it, byte for byte, on the CPU.

The GPU runner is built here without a GPU: its "device" memory is host memory, the runtime's
copies are ``memmove``s and the graph is a function that reads the device tables as the crop
kernel does (the frame's pixels through the row's address and strides, the matrix, centre and
scale) and writes keypoints from them. Same tables and windows, same keypoints: both paths are
run on every case and compared. The real graph runs in tests/test_pipeline_gpu.py.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from posefw import device_runner as dr  # noqa: E402
from posefw.one_box_call import OneBoxCall  # noqa: E402
from posefw.pipeline import Pipeline  # noqa: E402

K = 17


class _Event:
    def record(self, stream=None):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True


class _Stream:
    cuda_stream = 0


class _Runtime:
    """Copies that really copy; a "graph" that reads the tables row 0 as the kernel would."""

    path = "host memory"

    def __init__(self, runner):
        self.runner, self.copied, self.launches = runner, 0, 0

    def copy_to_device(self, dst, src, nbytes, stream):
        ctypes.memmove(dst, src, nbytes)
        self.copied = nbytes

    def copy_to_host(self, dst, src, nbytes, stream):
        ctypes.memmove(dst, src, nbytes)

    def launch(self, graph_exec, stream):
        """Graph ``n`` (its handle is its batch size) writes rows 0..n-1 of its output."""
        self.launches += 1
        r, n = self.runner, graph_exec
        out = r._graphs[n][1]
        for b in range(n):
            addr, fh, fw, sy, sx, sc = (int(v) for v in r.ints[b, :6])
            m = r.floats[b, :6].numpy()
            for j in range(K):  # one crop pixel per keypoint, sampled at its nearest image pixel
                u, v = (j * 11) % 192, (j * 15) % 256
                x, y = m[0] * u + m[1] * v + m[2], m[3] * u + m[4] * v + m[5]
                ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
                pix = [0, 0, 0]
                if 0 <= ix < fw and 0 <= iy < fh:
                    pix = [ctypes.c_uint8.from_address(addr + iy * sy + ix * sx + c * sc).value for c in range(3)]
                out[b, j, 0] = x + pix[0] + float(r.centers[b, 0])
                out[b, j, 1] = y + pix[1] + float(r.scales[b, 1])
                out[b, j, 2] = pix[2] + float(r.centers[b, 1]) + float(r.scales[b, 0])


def _grow(buf, nbytes, **kw):
    if buf is not None and buf.numel() >= nbytes:
        return buf
    return torch.zeros(max(nbytes, int(1.5 * (buf.numel() if buf is not None else 0))), dtype=torch.uint8)


class _Engine:
    max_batch, runs_on, needs_crops, name, input_dtype = 64, "cuda:0", False, "graph", "float16"


class _Decoder:
    udp, name, graph_safe = True, "in the graph", True


@pytest.fixture
def pipe(monkeypatch):
    """A Pipeline whose DeviceRunner lives in host memory (what __init__ would make on a GPU)."""
    monkeypatch.setattr(dr, "_grow", _grow)
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    p = Pipeline.__new__(Pipeline)
    p.engine, p.decoder, p.flip_test, p.udp, p.per_batch, p.preprocess = _Engine(), _Decoder(), False, True, 64, "gpu"
    r = dr.DeviceRunner.__new__(dr.DeviceRunner)
    r.pipe, r.device, r.dtype, r.in_graph = p, torch.device("cuda", 0), torch.float16, True
    r.layout = dr.TableLayout(p.per_batch)
    r.tables_ext = torch.zeros(
        dr._round_up(r.layout.nbytes + dr.DIRECT_FRAME_BYTES, dr.DIRECT_ROUND), dtype=torch.uint8
    )
    r.tables = r.tables_ext[: r.layout.nbytes]
    r._tables_at = r.tables.data_ptr()
    r._direct_base = r._tables_at + r.layout.nbytes
    r.ints, r.floats, r.centers, r.scales = r.layout.views(r.tables)
    r.perm, r.copy_stream, r._lock, r.slots, r._steps = None, None, threading.Lock(), [], {}
    r._get_device = lambda: 0
    stream = _Stream()
    r._current_stream = lambda: stream
    r.sizes = [1, 2, 4, *range(8, 64, 8), 64]
    r._padded = [next((s for s in r.sizes if s >= n), n) for n in range(65)]
    r.rt = _Runtime(r)
    r._graphs = {n: (n, torch.zeros((n, K, 3))) for n in r.sizes}
    r.quick = OneBoxCall(r)
    p.runner, p._quick = r, r.quick
    p._queue = p._worker = None
    p._lock = threading.Lock()
    return p


def _both(pipe, frames, boxes):
    """The call on the one-box path, then on the general path; the first says if it answered."""
    quick = pipe._quick
    answered = quick(frames, boxes) is not None
    a = pipe(frames, boxes)
    pipe._quick = None
    try:
        b = pipe(frames, boxes)
    finally:
        pipe._quick = quick
    return answered, a[0], b[0]


def _frame(h=427, w=639, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "box",
    [
        [100, 80, 120, 200],  # inside
        [-50, -30, 120, 200],  # over the top-left corner
        [560, 330, 150, 160],  # over the bottom-right corner
        [5, 5, 3, 4],  # tiny
        [-2000, -900, 2010, 910],  # the crop mostly outside the frame
        [300, 200, 40, 300],  # tall
    ],
)
def test_one_box_path_gives_the_general_paths_keypoints(pipe, box):
    frame = _frame()
    views = (frame, frame[:, ::-1], frame[:401, 3:600])  # mirrored and odd-sized views too
    tensors = (torch.from_numpy(frame), torch.from_numpy(frame).permute(2, 0, 1))  # CPU tensors, HWC and CHW
    for f in views + tensors:
        for b in (np.array([box], np.float64), [box], np.array(box, np.float32)):
            answered, a, g = _both(pipe, [f], [b])
            assert answered
            assert a.valid.all() and g.valid.all() and not a.errors
            np.testing.assert_array_equal(a.keypoints, g.keypoints)
            np.testing.assert_array_equal(a.scores, g.scores)
            assert a.keypoints.shape == (1, K, 2) and a.keypoints.dtype == np.float32
            assert a.keypoints.flags.c_contiguous and a.scores.shape == (1, K)


def test_the_window_goes_up_behind_the_table_in_one_copy(pipe):
    rt = pipe.runner.rt
    frame = _frame()
    pipe([frame], [np.array([[100.0, 80, 120, 200]])])
    ints = pipe.runner.ints[0, :6].tolist()
    rw3 = ints[3]  # the window's row in bytes
    assert ints[1:] == [427, 639, rw3, 3, 1] and rt.copied > pipe.runner.layout.nbytes
    window = rt.copied - pipe.runner.layout.nbytes
    assert window % rw3 == 0 and window < frame.nbytes // 4  # a window, not the frame
    # the table's address points each of the frame's pixels (y, x) at the window's copy of it
    y0, x0 = divmod(pipe.runner._direct_base - ints[0], rw3)  # x0 in bytes
    assert x0 % 3 == 0
    got = np.frombuffer(ctypes.string_at(ints[0] + (y0 + 5) * rw3 + x0 + 6, 3), np.uint8)
    np.testing.assert_array_equal(got, frame[y0 + 5, x0 // 3 + 2])


@pytest.mark.parametrize(
    "frames, boxes, why",
    [
        ([_frame()], [np.zeros((0, 4))], "no box"),
        ([_frame()], [np.array([[10.0, 10, 50, 50], [100, 100, 50, 50]])], "two boxes"),
        ([_frame(), _frame()], [np.array([[10.0, 10, 50, 50]])] * 2, "two frames"),
        ([_frame()], [np.array([[10.0, 10, 0, 50]])], "an empty box"),
        ([_frame()], [np.array([[np.nan, 10, 50, 50]])], "a NaN box"),
        ([_frame()[..., 0]], [np.array([[10.0, 10, 50, 50]])], "a grayscale frame"),
        ([_frame().astype(np.float32)], [np.array([[10.0, 10, 50, 50]])], "a float frame"),
    ],
)
def test_what_the_one_box_path_leaves_to_the_general_path(pipe, frames, boxes, why):
    """None, nothing launched, and the general path's answer (errors included) stands."""
    rt = pipe.runner.rt
    assert pipe._quick(frames, boxes) is None, why
    assert rt.launches == 0 and not pipe._quick.busy
    results = pipe(frames, boxes)
    assert len(results) == len(frames)
    if why in ("an empty box", "a NaN box"):
        assert not results[0].valid[0] and "box 0" in results[0].errors[0]
    if why.endswith("frame"):
        assert "frame 0" in results[0].errors[0]


def test_a_call_in_flight_sends_the_next_one_the_general_way(pipe):
    frame, box = _frame(), [np.array([[100.0, 80, 120, 200]])]
    quick = pipe._quick
    token = quick.start([frame], box, None)
    assert token is not None and quick.busy
    assert quick.start([frame], box, None) is None  # its pinned block is in use
    first = quick.finish(token)
    assert not quick.busy
    job = pipe.runner.launch(pipe.plan([frame], box))  # a general call in flight (stream(), submit())
    assert quick.start([frame], box, None) is None
    pipe.runner.finish(pipe.plan([frame], box), job)
    np.testing.assert_array_equal(quick([frame], box)[0].keypoints, first[0].keypoints)


def test_bad_box_arguments_raise_as_on_the_general_path(pipe):
    with pytest.raises(ValueError, match=r"boxes\[0\]: expected shape \(N, 4\)"):
        pipe([_frame()], [np.zeros((1, 5))])
    with pytest.raises(ValueError, match="boxes: expected one box array per frame"):
        pipe([_frame()], [])


def test_non_finite_keypoints_are_an_error_not_a_result(pipe):
    frame, box = _frame(), [np.array([[100.0, 80, 120, 200]])]
    launch = pipe.runner.rt.launch

    def overflow(graph_exec, stream):
        launch(graph_exec, stream)
        pipe.runner._graphs[graph_exec][1][0, 3, 0] = float("inf")

    pipe.runner.rt.launch = overflow
    answered, a, g = _both(pipe, [frame], box)
    assert answered
    for r in (a, g):
        assert not r.valid[0] and np.isnan(r.keypoints).all() and "not finite" in r.errors[0]
