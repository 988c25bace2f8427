"""The top-down pipeline: frames and boxes in, keypoints out, batched across frames and calls.

Boxes from any number of frames become one stream of crops, cut into batches of at most the
engine's maximum. Where the engine runs on a GPU the crops are made there
(:mod:`posefw.device_runner`: frames uploaded once as uint8, one kernel for every crop, captured
in the engine's CUDA graph with the decoder); elsewhere on the CPU (:mod:`posefw.host_runner`).
``preprocess="gpu"|"cpu"`` overrides the choice.

With ``flip_test`` each crop's mirror rides in the same batch; its heatmaps are mirrored back
with the COCO left/right pairs swapped and averaged with the plain ones (no shift: UDP is
flip-consistent), as ViTPose evaluates. A bad box or frame is reported by index and gets NaN
keypoints; it never costs the other boxes their results.

Three ways to call it: ``pipe(frames, boxes)`` blocks; ``pipe.stream(items)`` yields each item's
results in order while the next item's host work and upload overlap the GPU's work on this
one; ``pipe.submit(frames, boxes)`` returns a future (a worker thread does the same overlap
across callers).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posefw import one_box
from posefw.arrays import framework
from posefw.coco import FLIP_PAIRS
from posefw.crop_kernel import crop_matrices
from posefw.frames import Frame, as_boxes, as_frame
from posefw.preprocess import box_checks, box_reason
from posefw.transforms import box_to_center_scale

PREPROCESS = ("auto", "gpu", "cpu")
#: Calls of at most this many boxes are planned box by box in Python floats, larger ones vectorised.
FEW_BOXES = 8


@dataclass
class PoseResult:
    """One frame's poses: keypoints (N, K, 2) and scores (N, K) in image pixels, per input box."""

    keypoints: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    errors: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """One call after the host's checks: the frames that have valid boxes, and one row per valid box.

    The per-frame results are made by :meth:`Pipeline.results_of` once the call is launched (the
    device works meanwhile); ``keypoints``, ``scores`` and ``valid`` then hold every box of the
    call (valid or not), in call order, and each frame's PoseResult holds views of its slice, so
    results land with one scatter.
    """

    frames: list[Frame]
    frame_of_row: np.ndarray  # (R,) index into ``frames``
    owners: np.ndarray  # (R, 2) (frame index in the call, box index in that frame)
    centers: np.ndarray  # (R, 2) float64
    scales: np.ndarray  # (R, 2) float64
    image_ids: np.ndarray  # (R,)
    box_rows: np.ndarray  # (R,) row in the call's boxes
    counts: np.ndarray  # (F,) boxes per frame of the call
    ok: np.ndarray  # (B,) valid boxes of the call
    matrices: np.ndarray  # (R, 6) crop -> image, row-major
    errors: list[tuple[int, str]] = field(default_factory=list)  # (frame, message)
    windows: list[tuple[int, int, int, int]] | None = None  # per frame: y0, y1, x0, x1 its crops read
    results: list[PoseResult] | None = None
    keypoints: np.ndarray | None = None  # (B, K, 2) every box of the call
    scores: np.ndarray | None = None  # (B, K)

    @property
    def rows(self) -> int:
        return len(self.owners)


def _results(counts: np.ndarray, k: int) -> tuple[list[PoseResult], np.ndarray, np.ndarray, np.ndarray]:
    """One NaN array for every box of a call, and per frame a PoseResult of views into it."""
    total = int(counts.sum())
    kp = np.full((total, k, 2), np.nan, np.float32)
    sc = np.full((total, k), np.nan, np.float32)
    valid = np.zeros(total, bool)
    if len(counts) == 0:
        return [], kp, sc, valid
    if len(counts) == 1:  # one frame (a latency-bound call): no split
        return [PoseResult(kp, sc, valid, [])], kp, sc, valid
    cut = np.cumsum(counts)[:-1]
    parts = zip(np.split(kp, cut), np.split(sc, cut), np.split(valid, cut))
    return [PoseResult(a, b, c, []) for a, b, c in parts], kp, sc, valid


def not_finite(frame: int, box: int) -> str:
    """The error of a box whose keypoints came out non-finite (its transform overflowed)."""
    return f"frame {frame} box {box}: keypoints are not finite (box too large for float32?)"


def _union(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The smallest window holding windows ``a`` and ``b`` (y0, y1, x0, x1)."""
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def flip_permutation(k: int = 17) -> np.ndarray:
    perm = np.arange(k)
    for a, b in FLIP_PAIRS:
        if b < k:
            perm[a], perm[b] = b, a
    return perm


def flip_back(heatmaps: Any, perm: Any = None) -> Any:
    """Mirror heatmaps of flipped crops back: reverse W and swap left/right keypoints.

    ``perm`` may be given as a device tensor made beforehand (inside a CUDA graph capture no
    host-to-device copy may happen).
    """
    if perm is None:
        perm = flip_permutation(heatmaps.shape[1])
    if framework(heatmaps) == "torch":
        import torch

        return torch.flip(heatmaps, dims=[3])[:, torch.as_tensor(perm, device=heatmaps.device)]
    return np.ascontiguousarray(np.asarray(heatmaps)[:, perm, :, ::-1])


def flip_average(heatmaps: Any, n: int, perm: Any = None) -> Any:
    """Plain and mirrored halves of a flip-test batch, averaged."""
    return (heatmaps[:n] + flip_back(heatmaps[n:], perm)) * 0.5


def gpu_unavailable(engine: Any, forced: bool = False) -> str | None:
    """Why crops cannot be made on a GPU for this engine, or None.

    By default the crops go where the engine runs; asked for explicitly, a CPU engine (the
    oracle) gets them on the current CUDA device too.
    """
    from posefw.crop_kernel import triton_unavailable

    dev = str(getattr(engine, "runs_on", "cpu"))
    if not dev.startswith("cuda"):
        if not forced:
            return f"engine {engine.name!r} runs on {dev}"
        from posefw.testing import cuda_reason

        why = cuda_reason()
        if why:
            return why
    return triton_unavailable()


class Pipeline:
    def __init__(
        self, engine: Any, decoder: Any, flip_test: bool = False, udp: bool | None = None, preprocess: str = "auto"
    ) -> None:
        self.engine, self.decoder, self.flip_test = engine, decoder, flip_test
        self.udp = decoder.udp if udp is None else udp
        if flip_test and not self.udp:
            raise ValueError("flip_test: implemented for UDP (dark-udp), which is flip-consistent without a shift")
        if preprocess not in PREPROCESS:
            raise ValueError(f"preprocess: expected one of {PREPROCESS}, got {preprocess!r}")
        self.per_batch = engine.max_batch // (2 if flip_test else 1)
        if self.per_batch < 1:
            raise ValueError("engine max_batch must be >= 2 for the flip test")
        why = gpu_unavailable(engine, forced=preprocess == "gpu")
        if preprocess == "gpu" and why:
            raise ValueError(f"preprocess: 'gpu' needs a CUDA device and Triton: {why}")
        self.preprocess = "cpu" if (preprocess == "cpu" or why) else "gpu"
        if self.preprocess == "gpu":
            from posefw.device_runner import DeviceRunner

            self.runner: Any = DeviceRunner(self)
        else:
            from posefw.host_runner import HostRunner

            self.runner = HostRunner(self)
        # A runner may answer a blocking call itself on a shorter path (the GPU runner: one
        # frame, one box), or None where the call needs the general one.
        self._quick = getattr(self.runner, "quick", None)
        self._queue: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where frames are cropped ("cpu" or "cuda:N"): where read_images should decode to."""
        return str(self.runner.device) if self.preprocess == "gpu" else "cpu"

    # -- the three ways in -------------------------------------------------------------------
    def __call__(self, frames: list[Any], boxes: list[Any], image_ids: list[int] | None = None) -> list[PoseResult]:
        if self._quick is not None:
            results = self._quick(frames, boxes, image_ids)
            if results is not None:
                return results
        plan = self.plan(frames, boxes, image_ids)
        handle = self.runner.launch(plan)
        self.results_of(plan)  # while the device works
        return self._finish(plan, handle)

    def warm_up(self) -> None:
        """Do now what the first calls would (graph captures for every batch size on the GPU
        path), so they do not cost the first frames, nor happen while other threads use CUDA."""
        warm = getattr(self.runner, "warm_up", None)
        if warm is not None:
            warm()

    def stream(self, items: Iterable[Any], depth: int = 2) -> Iterator[list[PoseResult]]:
        """Results of each ``(frames, boxes)`` or ``(frames, boxes, image_ids)`` item, in order.

        Up to ``depth`` items are in flight: item i+1 is checked, staged and uploaded while the
        device works on item i. A consumer that stops early (``break``, ``close()``) or an item
        that raises leaves no call in flight: those calls are waited for and their buffers freed.
        """
        pending: deque = deque()
        try:
            for item in items:
                plan = self.plan(*item)
                pending.append((plan, self.runner.launch(plan)))
                self.results_of(plan)
                if len(pending) >= depth:
                    yield self._finish(*pending.popleft())
            while pending:
                yield self._finish(*pending.popleft())
        finally:
            for plan, handle in pending:  # results no one will read
                if handle is not None:
                    self.runner.finish(plan, handle)

    def submit(self, frames: list[Any], boxes: list[Any], image_ids: list[int] | None = None) -> Future:
        """A future of ``self(frames, boxes, image_ids)``; calls run in submission order on one
        worker thread, two in flight, so many callers (camera streams) share full batches."""
        fut: Future = Future()
        with self._lock:
            if self._worker is None:
                self._queue = queue.Queue()
                self._worker = threading.Thread(target=self._serve, name="posefw-pipeline", daemon=True)
                self._worker.start()
            self._queue.put((frames, boxes, image_ids, fut))
        return fut

    def close(self) -> None:
        """Stop the ``submit`` worker after the work already submitted."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(None)
        if worker is not None:
            worker.join()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _serve(self) -> None:
        pending: deque = deque()
        q = self._queue
        while True:
            try:
                item = q.get(block=not pending)
            except queue.Empty:  # nothing new: finish the oldest in flight
                self._settle(pending.popleft())
                continue
            if item is None:
                break
            frames, boxes, ids, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                plan = self.plan(frames, boxes, ids)
                pending.append((plan, self.runner.launch(plan), fut))
                self.results_of(plan)
            except Exception as exc:  # noqa: BLE001 - this call's error, the worker goes on
                fut.set_exception(exc)
            if len(pending) >= 2:
                self._settle(pending.popleft())
        while pending:
            self._settle(pending.popleft())

    def _settle(self, entry: tuple[Plan, Any, Future]) -> None:
        plan, handle, fut = entry
        try:
            fut.set_result(self._finish(plan, handle))
        except Exception as exc:  # noqa: BLE001
            fut.set_exception(exc)

    # -- host work: checks, boxes, results ---------------------------------------------------
    def plan(self, frames: list[Any], boxes: list[Any], image_ids: list[int] | None = None) -> Plan:
        """Check every frame and every box; one row per valid box, with its crop's geometry.

        This runs before the device can start. A call of at most :data:`FEW_BOXES` boxes (a
        latency-bound caller) works in Python floats (:mod:`posefw.one_box`, ~5 us a box);
        larger calls in one vectorised pass over every box of every frame.
        """
        nf = len(frames)
        if len(boxes) != nf:
            raise ValueError(f"boxes: expected one box array per frame ({nf}), got {len(boxes)}")
        if image_ids is not None:
            image_ids = list(image_ids)
            if len(image_ids) != nf:
                raise ValueError(f"image_ids: expected one id per frame ({nf}), got {len(image_ids)}")
        arrays = [as_boxes(bx, f) for f, bx in enumerate(boxes)]
        errors: list[tuple[int, str]] = []
        checked: list[Frame | None] = [None] * nf
        check = self.runner.check_frame
        for f, bx in enumerate(arrays):
            if not len(bx):
                continue
            try:
                checked[f] = frame = as_frame(frames[f], f)
                check(frame, f)
            except (TypeError, ValueError) as exc:
                checked[f] = None
                errors.append((f, str(exc)))
        counts = [len(a) for a in arrays]
        if sum(counts) <= FEW_BOXES:
            return self._few_rows(arrays, checked, counts, image_ids, errors)
        ids = np.arange(nf) if image_ids is None else np.asarray(image_ids)
        return self._vector_rows(arrays, checked, np.array(counts, np.int64), ids, errors)

    def _few_rows(
        self, arrays: list[np.ndarray], checked: list[Frame | None], counts: list[int], ids: list | None, errors: list
    ) -> Plan:
        """A few boxes, box by box in Python floats (the vectorised pass's fixed cost is ~0.15 ms).
        Every row's values land in one int and one float array (from flat lists: NumPy reads
        those twice as fast as lists of tuples); the plan's fields are views."""
        ok: list[bool] = []  # per box of the call
        used: list[Frame] = []
        index: list[int] = []  # per row: frame_of_row, frame, box, box row
        geometry: list[float] = []  # per row: centre, scale, crop matrix
        windows = []
        udp = self.udp
        for f, (bx, frame) in enumerate(zip(arrays, checked)):
            if frame is None:
                ok += [False] * len(bx)
                continue
            height, width = frame.height, frame.width
            window = None
            for i, (x, y, w, h) in enumerate(bx.tolist()):
                code = one_box.box_code(x, y, w, h, height, width)
                if code:
                    ok.append(False)
                    errors.append((f, f"frame {f} {box_reason(bx[i], i, code, height, width)}"))
                    continue
                cs = one_box.center_scale(x, y, w, h)
                m = one_box.crop_matrix(*cs, udp)
                win = one_box.read_window(m)
                window = win if window is None else _union(window, win)
                index += (len(used), f, i, len(ok))
                ok.append(True)
                geometry += cs
                geometry += m
            if window is not None:
                used.append(frame)
                windows.append(one_box.clip_window(*window, height, width))
        r = len(index) // 4
        idx = np.array(index, np.int64).reshape(r, 4)
        geo = np.array(geometry, np.float64).reshape(r, 10)
        one = r == 1  # one row: its column slices are contiguous already
        return Plan(
            used,
            idx[:, 0],
            idx[:, 1:3],
            geo[:, 0:2] if one else np.ascontiguousarray(geo[:, 0:2]),  # decoders are handed these
            geo[:, 2:4] if one else np.ascontiguousarray(geo[:, 2:4]),
            idx[:, 1] if ids is None else np.asarray(ids)[idx[:, 1]],
            idx[:, 3],
            np.array(counts, np.int64),
            np.array(ok, bool),
            geo[:, 4:10],
            errors,
            windows,
        )

    def _vector_rows(
        self, arrays: list[np.ndarray], checked: list[Frame | None], counts: np.ndarray, ids: np.ndarray, errors: list
    ) -> Plan:
        """Every box of every frame in one vectorised pass; failure codes only when a box fails."""
        nf = len(arrays)
        size = np.array([(c.height, c.width) if c is not None else (0, 0) for c in checked], np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        allb = np.concatenate(arrays) if counts.sum() else np.zeros((0, 4))
        frame_of = np.repeat(np.arange(nf), counts)
        usable = np.array([c is not None for c in checked], bool)[frame_of]
        ok, code = box_checks(allb, size[frame_of, 0], size[frame_of, 1])
        ok &= usable
        if code is not None:
            for row in np.flatnonzero(~ok & usable):  # refused boxes of usable frames, named
                f = frame_of[row]
                why = box_reason(allb[row], int(row - starts[f]), int(code[row]), size[f, 0], size[f, 1])
                errors.append((int(f), f"frame {f} {why}"))
        rows = np.flatnonzero(ok)
        used, frame_of_row = np.unique(frame_of[rows], return_inverse=True)
        owners = np.stack([frame_of[rows], rows - starts[frame_of[rows]]], 1)
        centers, scales = box_to_center_scale(allb[rows])
        return Plan(
            [checked[f] for f in used],
            frame_of_row.reshape(-1),
            owners,
            centers,
            scales,
            ids[frame_of[rows]],
            rows,
            counts,
            ok,
            crop_matrices(centers, scales, self.udp).reshape(-1, 6),
            errors,
        )

    def results_of(self, plan: Plan, k: int = 17) -> list[PoseResult]:
        """The call's per-frame results, NaN until :meth:`_finish` scatters the keypoints in;
        made after the launch, so the device is busy meanwhile."""
        if plan.results is None or plan.keypoints.shape[1] != k:
            plan.results, plan.keypoints, plan.scores, valid = _results(plan.counts, k)
            valid[:] = plan.ok
            for f, message in plan.errors:
                plan.results[f].errors.append(message)
        return plan.results

    def chunks(self, rows: int) -> list[tuple[int, int]]:
        """(start, count) batches of at most ``per_batch`` boxes (the engine runs twice that with flip)."""
        if 0 < rows <= self.per_batch:  # one batch (a latency-bound call): no comprehension
            return [(0, rows)]
        return [(s, min(self.per_batch, rows - s)) for s in range(0, rows, self.per_batch)]

    def _finish(self, plan: Plan, handle: Any) -> list[PoseResult]:
        results = self.results_of(plan)
        if plan.rows == 0:
            return results
        kp, sc = self.runner.finish(plan, handle)
        if kp.shape[1] != plan.keypoints.shape[1]:  # another keypoint count than COCO's: results resized
            results = self.results_of(plan, kp.shape[1])
        if len(kp) == len(plan.ok):  # every box of the call valid: rows are its boxes in order
            plan.keypoints[...], plan.scores[...] = kp, sc
        else:
            plan.keypoints[plan.box_rows], plan.scores[plan.box_rows] = kp, sc
        if np.isfinite(kp).all():
            return results
        bad = ~np.isfinite(kp).all(axis=(1, 2))
        for row in np.flatnonzero(bad):  # overflowed transforms are errors
            f, i = plan.owners[row]
            res = results[f]
            res.valid[i], res.keypoints[i], res.scores[i] = False, np.nan, np.nan
            res.errors.append(not_finite(f, i))
        return results

    @classmethod
    def from_config(cls, config: Any, flip_test: bool | None = None) -> Pipeline:
        """Engine, decoder and ``[pipeline]`` settings from a :class:`posefw.Config`."""
        import posefw

        engine = posefw.create_engine(config.engine.name, **config.engine.options)
        d = config.decoder
        decoder = posefw.create_decoder(d.name, algorithm=d.algorithm, kernel=d.kernel, **d.options)
        p = config.pipeline
        return cls(engine, decoder, flip_test=p.flip_test if flip_test is None else flip_test, preprocess=p.preprocess)
