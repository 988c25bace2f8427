"""Box sources read from detection files a detector wrote beforehand.

- ``coco-dets``: COCO detection results, a JSON list of {image_id, bbox [x, y, w, h], score,
  category_id}; persons only (category 1, or no category). A frame is matched by its
  ``image_id``: a COCO image's id, or a video frame's 0-based index. An entry may name its
  ``stream`` (the source's name) when one file serves several streams.
- ``jsonl``: one JSON object per line: {"frame": 0-based index, "boxes": [[x, y, w, h], ...],
  "scores": [...] (optional), "track_ids": [...] (optional), "stream": name (optional)}.
- ``mot``: MOTChallenge ``det.txt``: ``frame, id, left, top, width, height, conf, ...`` with
  1-based frames; an id >= 0 becomes the track id.

An entry that cannot be used is listed in ``problems`` with its line or index, never skipped
silently; boxes below ``min_score`` are left out by request.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from posefw import hookimpl
from posefw.streams import BoxSource, Detections, VideoFrame


class _Table(BoxSource):
    """Detections read once into {frame key: rows of (x, y, w, h, score, track id)}."""

    def __init__(self, path: str | Path, stream: str | None = None, min_score: float = 0.0) -> None:
        super().__init__(path, stream, min_score)
        if not self.path.is_file():
            raise FileNotFoundError(f"--boxes: file not found: {self.path}")
        self.rows: dict[int, list[tuple[float, ...]]] = defaultdict(list)
        self._read()

    def _read(self) -> None:
        raise NotImplementedError

    def _lines(self):
        """(1-based line number, line) for every non-blank line of a text format."""
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                yield n, line

    def _add(self, where: str, key: int, box, score=1.0, track=-1, stream=None) -> None:
        if stream is not None and self.stream is not None and str(stream) != self.stream:
            return
        try:
            vals = [float(v) for v in box]
            if len(vals) != 4:
                raise ValueError(f"a box is [x, y, w, h], got {len(vals)} numbers")
            score = float(score)
            if not all(math.isfinite(v) for v in [*vals, score]):
                raise ValueError(f"not finite: box {vals}, score {score}")
        except (TypeError, ValueError) as exc:
            self.problems.append(f"{self.path.name} {where}: {exc}")
            return
        if score >= self.min_score:
            self.rows[int(key)].append((*vals, score, int(track)))

    def boxes(self, frame: VideoFrame) -> Detections:
        key = frame.image_id if frame.image_id is not None else frame.index
        rows = np.asarray(self.rows.get(int(key), []), np.float64).reshape(-1, 6)
        return Detections(rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64))


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--boxes: {path} is not JSON: {exc}") from None


class CocoDetections(_Table):
    name = "coco-dets"
    description = "COCO detection results JSON (image_id = COCO id, or a video frame's 0-based index)"
    options = ("min_score",)

    def _read(self) -> None:
        data = _load_json(self.path)
        if not isinstance(data, list):
            raise ValueError(f"--boxes: {self.path} must be a JSON list of COCO detections, got {type(data).__name__}")
        for i, d in enumerate(data):
            if not isinstance(d, dict) or "bbox" not in d or "image_id" not in d:
                self.problems.append(f"{self.path.name} detection {i}: expected an object with image_id and bbox")
                continue
            if d.get("category_id", 1) != 1:
                continue  # not a person: a documented filter, not a loss
            try:
                key = int(d["image_id"])
            except (TypeError, ValueError):
                self.problems.append(f"{self.path.name} detection {i}: image_id {d['image_id']!r} is not an integer")
                continue
            self._add(f"detection {i}", key, d["bbox"], d.get("score", 1.0), -1, d.get("stream"))


class JsonLinesDetections(_Table):
    name = "jsonl"
    description = 'one JSON object per frame: {"frame", "boxes", "scores"?, "track_ids"?, "stream"?}'
    options = ("min_score",)

    def _read(self) -> None:
        for n, line in self._lines():
            where = f"line {n}"
            try:
                d = json.loads(line)
                frame, boxes = int(d["frame"]), list(d["boxes"])
                scores = list(d.get("scores", [1.0] * len(boxes)))
                tracks = list(d.get("track_ids", [-1] * len(boxes)))
                if not (len(scores) == len(tracks) == len(boxes)):
                    raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores, {len(tracks)} track ids")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                self.problems.append(f"{self.path.name} {where}: {type(exc).__name__}: {exc}")
                continue
            for j, (b, s, t) in enumerate(zip(boxes, scores, tracks)):
                self._add(f"{where} box {j}", frame, b, s, t, d.get("stream"))


class MotDetections(_Table):
    name = "mot"
    description = "MOTChallenge det.txt: frame (1-based), id, left, top, width, height, conf"
    options = ("min_score",)

    def _read(self) -> None:
        for n, line in self._lines():
            parts = [p.strip() for p in line.split(",")]
            try:
                if len(parts) < 7:
                    raise ValueError(f"expected at least 7 comma-separated values, got {len(parts)}")
                frame, track = int(float(parts[0])), int(float(parts[1]))
                if frame < 1:
                    raise ValueError(f"frames are 1-based, got {frame}")
            except ValueError as exc:
                self.problems.append(f"{self.path.name} line {n}: {exc}")
                continue
            self._add(f"line {n}", frame - 1, parts[2:6], parts[6], track if track >= 0 else -1)


@hookimpl
def posefw_register_box_sources():
    return [CocoDetections, JsonLinesDetections, MotDetections]
