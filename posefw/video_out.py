"""Rendered streams written as video files with PyAV (H.264 where FFmpeg has it, else MPEG-4)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


class VideoWriter:
    """Frames in, a video file out; opened on the first frame, whose size the video keeps
    (a later frame of another size is resized to it, and counted in ``resized``)."""

    def __init__(self, path: str | Path, fps: float = 25.0, codec: str | None = None) -> None:
        import av  # noqa: F401 - fail before any work when PyAV is missing

        self.path, self.fps, self.codec = Path(path), fps, codec
        self._container = self._stream = None
        self.frames = self.resized = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        if self._container is None:
            h, w = rgb.shape[:2]
            # faststart: the index first, as streamed files have it (a cut file still opens)
            mp4 = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
            self._container = av.open(str(self.path), mode="w", options={"movflags": "faststart"} if mp4 else {})
            codec = self.codec or ("libx264" if "libx264" in av.codecs_available else "mpeg4")
            self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height = w - w % 2, h - h % 2  # 4:2:0 needs even sizes
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"bf": "0"}  # frames leave the decoder in order, one per packet
        s = self._stream
        if rgb.shape[:2] != (s.height, s.width):
            if rgb.shape[0] >= s.height and rgb.shape[1] >= s.width and self.frames == 0:
                rgb = rgb[: s.height, : s.width]  # the first frame's odd row or column
            else:
                import cv2

                rgb = cv2.resize(rgb, (s.width, s.height))
                self.resized += 1
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in s.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
