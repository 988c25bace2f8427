"""Many streams through one pipeline: every stream's boxes share the engine's batches.

Each stream's frames are decoded on a reader thread of its own (a few frames ahead), so decoding
overlaps the GPU. Each engine call takes the next frames of every live stream until the engine's
batch is full; while the device runs one call, the host gathers the next (``Pipeline.stream``).
A stream whose boxes follow its own poses (detect every N frames) gives one frame per call and
the calls run one at a time, since its next boxes need this frame's keypoints.

Every frame yields one :class:`FrameResult`, in each stream's order: its poses, or its error. A
stream that cannot be opened, breaks, or ends before the frame count its container promised is
reported in :attr:`StreamRun.problems` and in a record of its own; the other streams go on.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posefw.streams import BoxSource, Detections, FrameSource, VideoFrame

_END = object()


@dataclass
class FrameResult:
    """One frame's output: its detections and their poses (keypoints (N, K, 2) and scores
    (N, K) in image pixels, NaN for a box that failed), or why the frame has none."""

    frame: VideoFrame
    detections: Detections
    keypoints: np.ndarray | None = None
    scores: np.ndarray | None = None
    errors: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The JSON line written for this frame (NaN becomes null)."""
        from posefw.outputs import finite

        f, d = self.frame, self.detections
        return finite(
            {
                "stream": f.stream,
                "frame": f.index,
                "timestamp": f.timestamp,
                "image_id": f.image_id,
                "track_ids": d.track_ids.tolist(),
                "boxes": d.boxes.round(2).tolist(),
                "box_scores": d.scores.round(4).tolist(),
                "keypoints": None if self.keypoints is None else np.round(self.keypoints.astype(float), 2).tolist(),
                "scores": None if self.scores is None else np.round(self.scores.astype(float), 4).tolist(),
                "errors": self.errors,
            }
        )


@dataclass
class Stream:
    """One camera: where its frames and its boxes come from."""

    frames: FrameSource
    boxes: BoxSource


class _Reader(threading.Thread):
    """Decodes one stream ahead of the pipeline into a bounded queue."""

    def __init__(self, stream: Stream, ahead: int) -> None:
        super().__init__(name=f"posefw-read-{stream.frames.stream}", daemon=True)
        self.stream, self.queue = stream, queue.Queue(maxsize=max(1, ahead))
        self.count, self.error = 0, ""
        self._stop = threading.Event()

    def run(self) -> None:
        try:
            for frame in self.stream.frames.frames():
                if self._stop.is_set():
                    break
                self.count += 1
                self.queue.put(frame)
        except Exception as exc:  # noqa: BLE001 - this stream's failure, reported; the others go on
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        finally:
            self.stream.frames.close()
            self.queue.put(_END)

    def stop(self) -> None:
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break


class StreamRun:
    """Iterate to get every frame's :class:`FrameResult`; :attr:`problems` says what went wrong
    with whole streams and box files; :attr:`batches` lists the boxes of every engine call."""

    def __init__(self, pipeline: Any, streams: list[Stream], ahead: int = 8, max_frames: int | None = None) -> None:
        if not streams:
            raise ValueError("streams: expected at least one stream")
        names = [s.frames.stream for s in streams]
        if len(set(names)) != len(names):
            raise ValueError(f"streams: stream names must differ, got {names}")
        self.pipeline, self.streams, self.ahead, self.max_frames = pipeline, streams, ahead, max_frames
        self.problems: list[str] = [p for s in streams for p in s.boxes.problems]
        self.batches: list[int] = []
        self.frames_done = self.boxes_done = 0

    def __iter__(self) -> Iterator[FrameResult]:
        self.pipeline.warm_up()  # graphs captured before the decoder threads touch CUDA
        readers = [_Reader(s, self.ahead) for s in self.streams]
        for r in readers:
            r.start()
        following = any(s.boxes.follows_poses for s in self.streams)
        ticks: deque = deque()  # (entries in stream order, whether they hold an engine call)
        try:
            items = self._ticks(readers, ticks)
            for results in self.pipeline.stream(items, depth=1 if following else 2):
                while not ticks[0][1]:  # frames with errors only, gathered before this call
                    yield from (e[1] for e in ticks.popleft()[0])
                yield from self._settle(ticks.popleft()[0], iter(results))
            while ticks:
                yield from (e[1] for e in ticks.popleft()[0])
        finally:
            for r in readers:
                r.stop()
        for r in readers:
            self._stream_end(r)

    def _ticks(self, readers: list[_Reader], ticks: deque) -> Iterator[tuple[list, list]]:
        """Engine calls: the next frames of every live stream until the engine's batch is full.

        A frame whose boxes would overflow the batch waits for the next call (its stream's
        later frames wait behind it), so calls fill the engine's batches without spilling over."""
        live = list(readers)
        seen = [0] * len(readers)
        held: dict[int, tuple] = {}  # stream index -> an entry that did not fit the last call
        per_call = self.pipeline.per_batch
        start = 0
        while live or held:
            entries: list[tuple] = []
            frames, boxes = [], []
            total = 0
            full = False
            order = list(range(start, len(readers))) + list(range(start))
            start = (start + 1) % len(readers)  # each call starts at the next stream: none starves
            for i in order:
                reader = readers[i]
                if full:
                    break
                if reader not in live and i not in held:
                    continue
                take = 1 if reader.stream.boxes.follows_poses else per_call
                for _ in range(take):
                    if i in held:
                        entry = held.pop(i)
                    else:
                        if reader not in live:
                            break
                        if self.max_frames is not None and seen[i] >= self.max_frames:
                            live.remove(reader)
                            break
                        if (frames or entries) and reader.queue.empty():
                            break  # a full call never waits on one slow camera
                        item = reader.queue.get()
                        if item is _END:
                            live.remove(reader)
                            break
                        seen[i] += 1
                        entry = self._entry(reader.stream.boxes, item)
                    n = len(entry[2]) if entry[0] == "call" else 0
                    if frames and total + n > per_call:
                        held[i], full = entry, True
                        break
                    entries.append(entry)
                    if entry[0] == "call":
                        frames.append(entry[1].image)
                        boxes.append(entry[2].boxes)
                        total += n
                    if total >= per_call:
                        full = True
                        break
            ticks.append((entries, bool(frames)))
            if frames:
                self.batches.append(total)
                yield frames, boxes

    @staticmethod
    def _entry(source: BoxSource, frame: VideoFrame) -> tuple:
        """("call", frame, detections, box source), or ("error", FrameResult) for a frame that
        has no image or whose boxes could not be had."""
        if frame.image is None:
            return ("error", FrameResult(frame, Detections.empty(), errors=[frame.error or "no image"]))
        try:
            dets = source.boxes(frame)
        except Exception as exc:  # noqa: BLE001 - this frame's boxes failed, the rest go on
            return ("error", FrameResult(frame, Detections.empty(), errors=[f"boxes: {exc}"]))
        return ("call", frame, dets, source)

    def _settle(self, entries: list[tuple], results: Iterator) -> Iterator[FrameResult]:
        for entry in entries:
            if entry[0] == "error":
                yield entry[1]
                continue
            _, frame, dets, source = entry
            res = next(results)
            out = FrameResult(frame, dets, res.keypoints, res.scores, list(res.errors))
            try:
                source.observe(frame, dets, res.keypoints, res.scores)
            except Exception as exc:  # noqa: BLE001
                out.errors.append(f"boxes: following the poses failed: {exc}")
            self.frames_done += 1
            self.boxes_done += int(res.valid.sum())
            yield out

    def _stream_end(self, reader: _Reader) -> None:
        src = reader.stream.frames
        if reader.error:
            self.problems.append(f"stream {src.stream}: {reader.error}")
        elif src.expected_frames is not None and reader.count < src.expected_frames and self.max_frames is None:
            self.problems.append(
                f"stream {src.stream}: ended early, after {reader.count} of {src.expected_frames} frames"
            )
