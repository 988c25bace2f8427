"""Result files written whole or not at all.

Every command writes its outputs here: into a temporary file beside the target, then an atomic
rename. A run that fails half-way (disk full, an exception) leaves the previous good file as it
was and no empty or truncated one. JSON is strict: NaN and infinities become null, never the
``Infinity`` that other JSON readers reject.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def check_target(path: str | Path, option: str = "output", image: bool = False) -> Path:
    """Fail early, creating nothing, when ``path`` cannot be written as a result file."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{option}: {target} is a directory; expected a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{option}: cannot write {target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{option}: cannot write {target}: folder {folder} is not writable")
    if image and target.suffix.lower() not in IMAGE_SUFFIXES:
        what = f"has the extension {target.suffix}" if target.suffix else "has no extension"
        raise ValueError(f"{option}: {target} {what}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    return target


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "output") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` only if the block
    finishes. ``option`` names the command-line option in errors."""
    target = check_target(path, option)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes, option: str = "output") -> None:
    with atomic_path(path, option) as tmp:
        tmp.write_bytes(data)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (recursively through lists and dicts)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, option: str = "--json", indent: int | None = 1) -> None:
    """Strict JSON (no NaN/Infinity), written atomically."""
    text = json.dumps(finite(json.loads(json.dumps(obj, default=str))), indent=indent, allow_nan=False)
    write_bytes(path, text.encode(), option)


def write_image(path: str | Path, rgb: Any, option: str = "--out") -> None:
    """An RGB uint8 image in the format its extension names (.png, .jpg, ...), atomically."""
    import cv2

    suffix = check_target(path, option, image=True).suffix.lower()
    try:
        ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"{option}: cannot write images as {suffix}; use .png or .jpg")
    write_bytes(path, buf.tobytes(), option)
