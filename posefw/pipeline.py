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

from posefw.arrays import framework
from posefw.coco import FLIP_PAIRS
from posefw.frames import Frame, as_boxes, as_frame
from posefw.preprocess import check_boxes_xywh
from posefw.transforms import box_to_center_scale

PREPROCESS = ("auto", "gpu", "cpu")


@dataclass
class PoseResult:
    """One frame's poses: keypoints (N, K, 2) and scores (N, K) in image pixels, per input box."""

    keypoints: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    errors: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """One call after the host's checks: the frames that have valid boxes, and one row per box."""

    results: list[PoseResult]
    frames: list[Frame]
    frame_of_row: np.ndarray  # (R,) index into ``frames``
    owners: np.ndarray  # (R, 2) (frame index in the call, box index in that frame)
    centers: np.ndarray  # (R, 2) float64
    scales: np.ndarray  # (R, 2) float64
    image_ids: np.ndarray  # (R,)

    @property
    def rows(self) -> int:
        return len(self.owners)


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
        self._queue: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where frames are cropped ("cpu" or "cuda:N"): where read_images should decode to."""
        return str(self.runner.device) if self.preprocess == "gpu" else "cpu"

    # -- the three ways in -------------------------------------------------------------------
    def __call__(self, frames: list[Any], boxes: list[Any], image_ids: list[int] | None = None) -> list[PoseResult]:
        plan = self.plan(frames, boxes, image_ids)
        return self._finish(plan, self.runner.launch(plan))

    def stream(self, items: Iterable[Any], depth: int = 2) -> Iterator[list[PoseResult]]:
        """Results of each ``(frames, boxes)`` or ``(frames, boxes, image_ids)`` item, in order.

        Up to ``depth`` items are in flight: item i+1 is checked, staged and uploaded while the
        device works on item i.
        """
        pending: deque = deque()
        for item in items:
            plan = self.plan(*item)
            pending.append((plan, self.runner.launch(plan)))
            if len(pending) >= depth:
                yield self._finish(*pending.popleft())
        while pending:
            yield self._finish(*pending.popleft())

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
        """Check every frame and box (vectorised per frame) and lay out one row per valid box."""
        if len(frames) != len(boxes):
            raise ValueError(f"boxes: expected one box array per frame ({len(frames)}), got {len(boxes)}")
        ids = list(range(len(frames))) if image_ids is None else list(image_ids)
        if len(ids) != len(frames):
            raise ValueError(f"image_ids: expected one id per frame ({len(frames)}), got {len(ids)}")
        k = 17  # COCO; resized in _finish if the engine's model has another keypoint count
        results, kept, frame_rows, owners, centers, scales, row_ids = [], [], [], [], [], [], []
        for f, (img, bx) in enumerate(zip(frames, boxes)):
            b = as_boxes(bx, f)
            n = len(b)
            res = PoseResult(
                np.full((n, k, 2), np.nan, np.float32), np.full((n, k), np.nan, np.float32), np.zeros(n, bool)
            )
            results.append(res)
            if n == 0:
                continue
            try:
                frame = as_frame(img, f)
                self.runner.check_frame(frame, f)
            except (TypeError, ValueError) as exc:
                res.errors.append(str(exc))
                continue
            ok, reasons = check_boxes_xywh(b, (frame.height, frame.width))
            res.valid = ok
            res.errors += [f"frame {f} {r}" for r in reasons if r]
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                continue
            c, s = box_to_center_scale(b[idx])
            frame_rows.append(np.full(idx.size, len(kept)))
            kept.append(frame)
            owners.append(np.stack([np.full(idx.size, f), idx], 1))
            centers.append(c)
            scales.append(s)
            row_ids.append(np.full(idx.size, ids[f]))
        if not kept:
            empty = np.zeros((0, 2))
            return Plan(results, [], np.zeros(0, np.int64), np.zeros((0, 2), np.int64), empty, empty, np.zeros(0))
        return Plan(
            results,
            kept,
            np.concatenate(frame_rows),
            np.concatenate(owners),
            np.concatenate(centers),
            np.concatenate(scales),
            np.concatenate(row_ids),
        )

    def chunks(self, rows: int) -> list[tuple[int, int]]:
        """(start, count) batches of at most ``per_batch`` boxes (the engine runs twice that with flip)."""
        return [(s, min(self.per_batch, rows - s)) for s in range(0, rows, self.per_batch)]

    def _finish(self, plan: Plan, handle: Any) -> list[PoseResult]:
        if plan.rows == 0:
            return plan.results
        kp, sc = self.runner.finish(plan, handle)
        if kp.shape[1] != plan.results[0].keypoints.shape[1]:  # another keypoint count than COCO's
            for r in plan.results:
                n = len(r.valid)
                r.keypoints = np.full((n, kp.shape[1], 2), np.nan, np.float32)
                r.scores = np.full((n, kp.shape[1]), np.nan, np.float32)
        bad = ~(np.isfinite(kp).all(axis=(1, 2)))  # overflowed transforms are errors, never results
        f, i = plan.owners[:, 0], plan.owners[:, 1]
        for frame in np.unique(f):
            sel = f == frame
            res = plan.results[frame]
            res.keypoints[i[sel]], res.scores[i[sel]] = kp[sel], sc[sel]
        for row in np.flatnonzero(bad):
            res = plan.results[f[row]]
            res.valid[i[row]] = False
            res.keypoints[i[row]] = np.nan
            res.scores[i[row]] = np.nan
            res.errors.append(f"frame {f[row]} box {i[row]}: keypoints are not finite (box too large for float32?)")
        return plan.results

    @classmethod
    def from_config(cls, config: Any, flip_test: bool | None = None) -> Pipeline:
        """Engine, decoder and ``[pipeline]`` settings from a :class:`posefw.Config`."""
        import posefw

        engine = posefw.create_engine(config.engine.name, **config.engine.options)
        d = config.decoder
        decoder = posefw.create_decoder(d.name, algorithm=d.algorithm, kernel=d.kernel, **d.options)
        p = config.pipeline
        return cls(engine, decoder, flip_test=p.flip_test if flip_test is None else flip_test, preprocess=p.preprocess)
