"""Where ONNX-based engines get their model: a given file, or an export cached by content."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_dir() -> Path:
    d = Path(os.environ.get("POSEFW_CACHE", Path.home() / ".cache" / "posefw"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolve_onnx(
    onnx: str | None, checkpoint: str | None, size: str, decoder: str | None = None, precision: str = "fp32"
) -> tuple[Path, str]:
    """The ONNX path to use and a description of its weights; exports (once) when none is given."""
    from posefw.export import check_onnx_input, export_onnx, read_metadata

    if onnx:
        check_onnx_input(onnx)
        return Path(onnx), read_metadata(onnx).get("posefw.weights", "unknown weights")
    key = json.dumps(
        {
            "checkpoint": checkpoint and str(Path(checkpoint).resolve()),
            "size": size,
            "decoder": decoder,
            "mtime": checkpoint and os.path.getmtime(checkpoint),
            "precision": precision,
        },
        sort_keys=True,
    )
    path = cache_dir() / f"vitpose-{size}-{precision}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
    weights = f"checkpoint {checkpoint}" if checkpoint else "random weights"
    if not path.is_file():
        from posefw.models.checkpoints import load_vitpose
        from posefw.models.vitpose import random_vitpose

        model = load_vitpose(checkpoint) if checkpoint else random_vitpose(size)
        tmp = path.with_suffix(".tmp.onnx")
        export_onnx(model, tmp, decoder=decoder, weights=weights, precision=precision)
        tmp.replace(path)
    return path, weights


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
