"""Track ids, and boxes that follow people from their poses between detections.

Real-time top-down systems do not run the detector on every frame: they detect every N frames
and, in between, take each person's box from the previous frame's keypoints. :class:`TrackedBoxes`
does that over any box source, and gives each person a track id with :class:`IoUTracker`
(greedy IoU matching against each track's last box; no motion model, no extra dependency).
"""

from __future__ import annotations

import numpy as np

from posefw.streams import BoxSource, Detections, VideoFrame


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every [x, y, w, h] box in ``a`` with every one in ``b`` (len(a), len(b))."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class IoUTracker:
    """Greedy IoU tracker: each box takes the free track it overlaps most (IoU >= ``min_iou``),
    highest overlaps first; the rest start new tracks. A track unseen for ``max_age`` frames ends."""

    def __init__(self, min_iou: float = 0.3, max_age: int = 30) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou: expected a value in (0, 1], got {min_iou}")
        self.min_iou, self.max_age = float(min_iou), int(max_age)
        self.boxes = np.zeros((0, 4))
        self.ids = np.zeros(0, np.int64)
        self.age = np.zeros(0, np.int64)
        self.next_id = 0

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """Track ids for this frame's boxes (same order)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = np.full(len(boxes), -1, np.int64)
        iou = iou_matrix(boxes, self.boxes)
        matched_tracks = np.zeros(len(self.ids), bool)
        if iou.size:
            for flat in np.argsort(-iou, axis=None):
                i, t = np.unravel_index(flat, iou.shape)
                if iou[i, t] < self.min_iou:
                    break
                if out[i] >= 0 or matched_tracks[t]:
                    continue
                out[i], matched_tracks[t] = self.ids[t], True
        new = out < 0
        out[new] = np.arange(self.next_id, self.next_id + int(new.sum()))
        self.next_id += int(new.sum())
        self.assign(boxes, out)
        return out

    def assign(self, boxes: np.ndarray, ids: np.ndarray) -> None:
        """These boxes are these tracks (a box followed from its person's pose needs no matching):
        their last boxes move; other tracks age, and end after ``max_age`` frames unseen."""
        boxes, ids = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ids, np.int64).reshape(-1)
        keep = ~np.isin(self.ids, ids) & (self.age + 1 < self.max_age)
        self.boxes = np.concatenate([boxes, self.boxes[keep]])
        self.ids = np.concatenate([ids, self.ids[keep]])
        self.age = np.concatenate([np.zeros(len(boxes), np.int64), self.age[keep] + 1])
        if len(ids):
            self.next_id = max(self.next_id, int(ids.max()) + 1)


def boxes_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3, padding: float = 1.25, min_visible: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Each person's next box: the bounds of its confident keypoints, grown by ``padding``
    (ViTPose's own box padding). Returns (boxes (M, 4), index of the person each came from);
    a person with fewer than ``min_visible`` confident keypoints gives none (it is lost)."""
    kp, sc = np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)
    ok = np.isfinite(sc) & (sc >= min_score) & np.isfinite(kp).all(-1)
    keep = np.flatnonzero(ok.sum(1) >= min_visible)
    out = np.zeros((len(keep), 4))
    for row, p in enumerate(keep):
        pts = kp[p][ok[p]]
        lo, hi = pts.min(0), pts.max(0)
        centre, size = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * padding
        out[row] = [*(centre - size / 2), *size]
    return out, keep


class TrackedBoxes(BoxSource):
    """A box source with track ids, and with ``every`` > 1 the detector's boxes only every
    ``every`` frames (and whenever everyone was lost), the previous frame's poses in between."""

    name = "tracked"

    def __init__(
        self, detector: BoxSource, tracker: IoUTracker | None = None, every: int = 1, keypoint_score: float = 0.3
    ) -> None:
        super().__init__(None, detector.stream, detector.min_score)
        if int(every) < 1:
            raise ValueError(f"--detect-every: expected an integer >= 1, got {every}")
        self.detector, self.tracker, self.every = detector, tracker, int(every)
        self.keypoint_score = float(keypoint_score)  # keypoints at least this confident make the next box
        self.follows_poses = self.every > 1  # type: ignore[misc] - per instance
        self.problems = detector.problems
        self._followed: Detections | None = None
        self.detected = 0  # frames whose boxes came from the detector

    def boxes(self, frame: VideoFrame) -> Detections:
        follow = self._followed
        if self.every == 1 or follow is None or len(follow) == 0 or frame.index % self.every == 0:
            dets = self.detector.boxes(frame)
            self.detected += 1
            if self.tracker is not None:
                dets.track_ids = self.tracker.update(dets.boxes)
            return dets
        if self.tracker is not None:  # followed boxes keep their person's id; the tracker learns where they went
            self.tracker.assign(follow.boxes, follow.track_ids)
        return follow

    def observe(self, frame: VideoFrame, detections: Detections, keypoints: np.ndarray, scores: np.ndarray) -> None:
        if self.every == 1:
            return
        boxes, who = boxes_from_keypoints(keypoints, scores, self.keypoint_score)
        self._followed = Detections(boxes, detections.scores[who], detections.track_ids[who])
