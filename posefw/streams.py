"""Camera streams as plugins: where frames come from and where their person boxes come from.

A *frame source* turns one path (a video file, an image folder, ...) into :class:`VideoFrame`
records; a *box source* says which person boxes to pose in each frame. Both register through the
``posefw`` entry points (``posefw_register_frame_sources`` / ``posefw_register_box_sources``),
exactly like decoders and engines, and ``posefw sources list`` shows them. The core knows no
video library: PyAV, NVIDIA's decoder and the box formats are built-in plugins.

Nothing is dropped silently: a frame that could not be decoded is still yielded, with ``image``
None and ``error`` set, so the stream's output has a line saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass
class VideoFrame:
    """One frame of one stream. ``image`` is RGB uint8 (host (H, W, 3) or a device array the
    pipeline reads in place), or None with ``error`` saying why it could not be decoded."""

    stream: str
    index: int  # 0-based position in the stream
    timestamp: float | None  # seconds from the stream's start (None where the source has no clock)
    image: Any = None
    error: str = ""
    image_id: int | None = None  # what detection files key this frame by (a COCO id for COCO images)


@dataclass
class Detections:
    """Person boxes for one frame: (N, 4) [x, y, w, h] in pixels, a score each, a track id each
    (-1 where the source does not track)."""

    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:  # once per frame per stream: kept to a few array calls
        b = np.asarray(self.boxes, np.float64)
        self.boxes = b if b.ndim == 2 and b.shape[1] == 4 else b.reshape(-1, 4)
        n = len(self.boxes)
        sc = np.asarray(self.scores, np.float64)
        self.scores = sc if sc.shape == (n,) else np.broadcast_to(sc, (n,)).copy()
        ids = np.asarray(self.track_ids, np.int64)
        self.track_ids = np.full(n, -1, np.int64) if ids.size == 0 and n else ids.reshape(n)

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.track_ids[keep])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))


class FrameSource:
    """Frames of one stream. Subclasses set ``name``, may set ``suffixes`` (the paths they open
    when none is named), ``device`` (where their frames land) and ``priority`` (which of several
    that open a path wins), and implement :meth:`frames`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    suffixes: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 0
    #: options the constructor takes besides ``path`` and ``stream`` (shown by ``sources list``).
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | Path, stream: str | None = None, **options: Any) -> None:
        self.path = Path(path)
        self.stream = stream if stream is not None else self.path.stem
        #: how many frames the container says it holds, once known (None: unknown); a stream
        #: that yields fewer is reported as ended early.
        self.expected_frames: int | None = None

    @classmethod
    def available(cls) -> str | None:
        """Why this source cannot run here, or None."""
        return None

    @classmethod
    def accepts(cls, path: str | Path) -> bool:
        """Whether this source opens ``path`` (by default: its suffix)."""
        return Path(path).suffix.lower() in cls.suffixes

    def frames(self) -> Iterator[VideoFrame]:
        """Every frame in order; errors as frames with ``error`` set, never a silent gap."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()

    def close(self) -> None:
        """Release files and decoders (called when the run ends, however it ends)."""


class BoxSource:
    """Person boxes for each frame of one stream. Subclasses set ``name`` and implement
    :meth:`boxes`; a source that follows people from their poses also implements
    :meth:`observe`, which the runner calls with each frame's result before the next frame."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    options: ClassVar[tuple[str, ...]] = ()
    #: True when frame i+1's boxes depend on frame i's keypoints (the runner then keeps a
    #: stream's frames in order, one per engine call).
    follows_poses: ClassVar[bool] = False

    def __init__(self, path: str | Path | None = None, stream: str | None = None, min_score: float = 0.0) -> None:
        self.path = None if path is None else Path(path)
        self.stream, self.min_score = stream, float(min_score)
        #: entries of the file that could not be used, each named (the runner reports them).
        self.problems: list[str] = []

    @classmethod
    def available(cls) -> str | None:
        return None

    def boxes(self, frame: VideoFrame) -> Detections:
        raise NotImplementedError

    def observe(self, frame: VideoFrame, detections: Detections, keypoints: np.ndarray, scores: np.ndarray) -> None:
        """This frame's poses (keypoints (N, K, 2), scores (N, K), NaN where a box failed)."""


def frame_source_for(path: str | Path, device: str = "cpu", name: str | None = None) -> type[FrameSource]:
    """The frame source class for ``path``: ``name`` if given, else the available source that
    accepts it, preferring one whose frames land where the pipeline crops (``device``), then the
    highest priority. The error lists what was tried and why each could not."""
    from posefw.registry import PluginError, get_registry

    reg = get_registry()
    if name:
        return reg.get("frame-source", name)
    tried = []
    fits = []
    for info in reg.backends("frame-source"):
        if info.cls is None or not info.cls.accepts(path):
            continue
        if not info.available:
            tried.append(f"{info.name} ({info.status}: {info.reason})")
            continue
        same_device = str(info.cls.device).split(":")[0] == str(device).split(":")[0]
        fits.append((same_device, info.cls.priority, info.name, info.cls))
    if not fits:
        why = f"; tried {', '.join(tried)}" if tried else ""
        known = ", ".join(
            f"{i.name} ({' '.join(i.cls.suffixes) or 'any'})" for i in reg.backends("frame-source") if i.cls
        )
        raise PluginError(f"--source: no frame source opens {str(path)!r}{why}. Sources: {known}")
    return max(fits, key=lambda f: f[:3])[3]
