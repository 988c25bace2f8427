"""video-pyav: video files decoded on the CPU by FFmpeg through PyAV.

Works everywhere PyAV installs (CI included). Frames come as RGB (H, W, 3) NumPy arrays with
their presentation time in seconds. A packet FFmpeg cannot decode becomes a frame with its
error, and the stream goes on; a file that ends early simply ends (the runner reports it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from posefw import hookimpl
from posefw.streams import FrameSource, VideoFrame

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".h264", ".264", ".hevc", ".265")


class PyAVVideo(FrameSource):
    name = "video-pyav"
    description = "video files decoded by FFmpeg on the CPU (PyAV)"
    suffixes = VIDEO_SUFFIXES
    options = ("threads",)

    def __init__(self, path: str | Path, stream: str | None = None, threads: int = 0) -> None:
        super().__init__(path, stream)
        if not self.path.is_file():
            raise FileNotFoundError(f"--source: video file not found: {self.path}")
        self.threads = int(threads)
        self._container = None

    @classmethod
    def available(cls) -> str | None:
        try:
            import av  # noqa: F401
        except ImportError:
            return "PyAV is not installed: pip install 'posefw[video]'"
        return None

    def frames(self) -> Iterator[VideoFrame]:
        import av

        try:
            self._container = container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise ValueError(f"--source: {self.path} could not be opened as a video: {exc}") from None
        if not container.streams.video:
            raise ValueError(f"--source: {self.path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self.expected_frames = int(stream.frames) or None
        if self.threads:
            stream.codec_context.thread_count = self.threads
        index = 0
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    when = float(packet.pts * packet.time_base) if packet.pts is not None else None
                    yield VideoFrame(self.stream, index, when, None, f"could not be decoded: {exc}", index)
                    index += 1
                    continue
                for frame in decoded:
                    yield VideoFrame(self.stream, index, frame.time, frame.to_ndarray(format="rgb24"), "", index)
                    index += 1
        except av.error.FFmpegError as exc:  # the container itself broke: the stream ends, said so
            yield VideoFrame(self.stream, index, None, None, f"stream ended with an error: {exc}", index)
        finally:
            self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


@hookimpl
def posefw_register_frame_sources():
    return [PyAVVideo]
