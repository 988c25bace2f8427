"""images: a folder of image files (or one file) as a stream, in name order.

JPEGs are decoded on the GPU (nvJPEG) when the pipeline crops there, through
:func:`posefw.read_images`; a file that cannot be read is a frame with its error. A file named
by its COCO id (``000000000139.jpg``) carries that id, so COCO detection files find its boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posefw import hookimpl
from posefw.streams import FrameSource, VideoFrame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageFiles(FrameSource):
    name = "images"
    description = "an image folder (name order) or one image file; JPEGs on the GPU via nvJPEG"
    suffixes = IMAGE_SUFFIXES
    options = ("device", "fps", "group")

    def __init__(
        self, path: str | Path, stream: str | None = None, device: str = "cpu", fps: float | None = None, group: int = 8
    ) -> None:
        super().__init__(path, stream)
        if not self.path.exists():
            raise FileNotFoundError(f"--source: no such file or folder: {self.path}")
        self.files = (
            sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if self.path.is_dir()
            else [self.path]
        )
        if not self.files:
            raise ValueError(f"--source: {self.path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        self.device, self.fps, self.group = device, fps, max(1, int(group))
        self.expected_frames = len(self.files)

    @classmethod
    def accepts(cls, path: str | Path) -> bool:
        return Path(path).is_dir() or super().accepts(path)

    @classmethod
    def available(cls) -> str | None:
        try:
            import cv2  # noqa: F401
        except ImportError:
            return "OpenCV is not installed: pip install 'posefw[eval]'"
        return None

    def frames(self) -> Iterator[VideoFrame]:
        from posefw.images import read_images

        for start in range(0, len(self.files), self.group):  # a few files per nvJPEG batch
            chunk = self.files[start : start + self.group]
            errors: list[str] = []
            images: list[Any] = read_images(chunk, device=self.device, errors=errors)
            reasons = iter(errors)
            for i, (path, image) in enumerate(zip(chunk, images), start):
                yield VideoFrame(
                    self.stream,
                    i,
                    None if self.fps is None else i / self.fps,
                    image,
                    "" if image is not None else next(reasons, f"{path} could not be read"),
                    int(path.stem) if path.stem.isdigit() else i,
                )


@hookimpl
def posefw_register_frame_sources():
    return [ImageFiles]
