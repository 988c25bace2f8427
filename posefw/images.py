"""Image files to frames: JPEGs decoded on the GPU (nvJPEG through torchvision) where the
consumer is a GPU, everything else and every CPU-only machine through OpenCV.

GPU frames come back as CUDA uint8 tensors (3, H, W), which the pipeline reads in place; CPU
frames as NumPy (H, W, 3) RGB. Neither path applies EXIF orientation (COCO's annotations are in
the stored pixel orientation, and nvJPEG does not rotate), so both give the same pixels up to
the decoders' IDCT rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"


def gpu_decode_unavailable(device: str) -> str | None:
    """Why JPEGs cannot be decoded on ``device``, or None."""
    if not str(device).startswith("cuda"):
        return f"device {device!r} is not a CUDA device"
    try:
        import torch
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (torchvision decodes JPEGs on the GPU)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return None


def read_image_cpu(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) through OpenCV; a clear error names the file when it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image: file not found: {p}")
    return decode_image(p.read_bytes(), p)


def decode_image(raw: bytes, path: str | Path) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) decoded by OpenCV to RGB; ``path`` names them in errors."""
    import cv2

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), flags) if raw else None  # OpenCV raises on no bytes
    if img is None:
        raise ValueError(f"image: {path} could not be decoded as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_images(paths: list[str | Path], device: str = "cpu", errors: list[str] | None = None) -> list[Any]:
    """Frames for ``paths``, in order. On a CUDA ``device`` the JPEGs are decoded there in one
    batched nvJPEG call (other formats, and any file nvJPEG refuses, through OpenCV).

    A file that cannot be read raises, naming it; with an ``errors`` list it is reported there
    instead and its frame is None, so one bad file never costs the others.
    """
    paths = [Path(p) for p in paths]
    out: list[Any] = [None] * len(paths)
    data: dict[int, bytes] = {}
    for i, p in enumerate(paths):
        try:
            if not p.is_file():
                raise FileNotFoundError(f"image: file not found: {p}")
            raw = p.read_bytes()
        except OSError as exc:
            _fail(errors, exc if isinstance(exc, FileNotFoundError) else OSError(f"image: {p}: {exc}"))
            continue
        data[i] = raw
    jpegs = [i for i, raw in data.items() if raw.startswith(JPEG_MAGIC)]
    if jpegs and gpu_decode_unavailable(device) is None:
        for i, frame in zip(jpegs, _decode_gpu([data[i] for i in jpegs], device)):
            out[i] = frame
    for i in data:
        if out[i] is None:
            try:
                out[i] = decode_image(data[i], paths[i])  # the bytes read above, not the file again
            except (OSError, ValueError) as exc:
                _fail(errors, exc)
    return out


def _decode_gpu(blobs: list[bytes], device: str) -> list[Any]:
    """One batched decode; if the batch fails, one by one so a corrupt file only loses itself
    (its slot is None and the CPU decoder gets the last word on it)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out = []
        for t in tensors:
            try:
                out.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out


def _fail(errors: list[str] | None, exc: Exception) -> None:
    if errors is None:
        raise exc
    errors.append(str(exc))
