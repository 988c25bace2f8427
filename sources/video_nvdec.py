"""video-nvdec: H.264/HEVC/AV1 decoded by the GPU's hardware decoder (NVDEC) through NVIDIA's
PyNvVideoCodec, straight into GPU memory.

Frames are CUDA uint8 (H, W, 3) torch tensors (DLPack from the decoder, copied once out of its
small frame cache), which the GPU pipeline crops in place: a frame never crosses PCIe.
Timestamps are the frame index over the stream's average frame rate. By default NVIDIA's
``ThreadedDecoder`` decodes ahead on a native thread (``threaded=False``: ``SimpleDecoder``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from posefw import hookimpl
from posefw.streams import FrameSource, VideoFrame

from .video_pyav import VIDEO_SUFFIXES


class NvDecVideo(FrameSource):
    name = "video-nvdec"
    description = "video files decoded by the GPU's NVDEC into GPU memory (PyNvVideoCodec)"
    device = "cuda"
    priority = 10  # where a GPU pipeline runs, frames decoded there beat a CPU decode and upload
    suffixes = tuple(s for s in VIDEO_SUFFIXES if s not in (".h264", ".264", ".hevc", ".265"))  # needs a container
    options = ("gpu_id", "batch", "threaded")

    def __init__(
        self, path: str | Path, stream: str | None = None, gpu_id: int = 0, batch: int = 8, threaded: bool = True
    ) -> None:
        super().__init__(path, stream)
        if not self.path.is_file():
            raise FileNotFoundError(f"--source: video file not found: {self.path}")
        self.gpu_id, self.batch, self.threaded = int(gpu_id), max(1, int(batch)), bool(threaded)

    @classmethod
    def available(cls) -> str | None:
        try:
            import PyNvVideoCodec  # noqa: F401
            import torch
        except ImportError as exc:
            return f"{exc.name} is not installed: pip install 'posefw[nvdec]'"
        except Exception as exc:  # noqa: BLE001 - the module loads the driver's decoder library
            return f"PyNvVideoCodec failed to load: {exc}"
        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
        return None

    def frames(self) -> Iterator[VideoFrame]:
        import PyNvVideoCodec as nvc
        import torch

        rgb = nvc.OutputColorType.RGB
        try:
            if self.threaded:  # decodes ahead on a thread of its own, outside the GIL
                dec = nvc.ThreadedDecoder(
                    str(self.path), 4 * self.batch, gpu_id=self.gpu_id, use_device_memory=True, output_color_type=rgb
                )
            else:
                dec = nvc.SimpleDecoder(
                    str(self.path), gpu_id=self.gpu_id, use_device_memory=True, output_color_type=rgb
                )
        except Exception as exc:  # noqa: BLE001 - PyNvVideoCodec raises plain Exceptions
            raise ValueError(f"--source: {self.path} could not be opened by NVDEC: {exc}") from None
        meta = dec.get_stream_metadata()
        fps = float(getattr(meta, "average_fps", 0.0) or 0.0)
        self.expected_frames = int(getattr(meta, "num_frames", 0) or 0) or None
        total = len(dec) or None  # asking past the end makes the decoder warn per frame
        index = 0
        try:
            while total is None or index < total:
                try:
                    batch = dec.get_batch_frames(self.batch if total is None else min(self.batch, total - index))
                except Exception as exc:  # noqa: BLE001
                    yield VideoFrame(self.stream, index, None, None, f"stream ended with an error: {exc}", index)
                    return
                if not batch:
                    return
                for frame in batch:
                    image = torch.from_dlpack(frame).clone()  # out of the decoder's reusable surface cache
                    yield VideoFrame(self.stream, index, index / fps if fps else None, image, "", index)
                    index += 1
        finally:
            if self.threaded:
                dec.end()  # stop its decode thread


@hookimpl
def posefw_register_frame_sources():
    return [NvDecVideo]
