"""The ``posefw`` command line. Each sub-command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

import posefw
from posefw.config import Config, load_config
from posefw.decoder import checked_result
from posefw.files import json_array, load_json
from posefw.outputs import write_json


def _console():
    from posefw.console import console

    return console()


def cmd_backends(args: argparse.Namespace) -> int:
    from rich.table import Table

    from posefw.console import status_markup

    kind = args.kind
    infos = posefw.get_registry().backends(kind)
    table = Table(title=f"posefw {kind}s")
    table.add_column("name", style="bold")
    if kind == "decoder":
        table.add_column("algorithms")
    table.add_column("device")
    table.add_column("status")
    table.add_column("provided by")
    for i in infos:
        row = [i.name] + ([", ".join(i.algorithms)] if kind == "decoder" else [])
        table.add_row(*row, i.device, status_markup(i), f"{i.provider} ({i.plugin})")
    _console().print(table)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    reg = posefw.get_registry()
    reg.backends("decoder")  # collecting runs every plugin's hooks, so hook failures show up too
    table = Table(title="posefw plugins")
    for col in ("plugin", "distribution", "status", "provides"):
        table.add_column(col)
    for rec in sorted(reg.plugins.values(), key=lambda r: r.name):
        status = "[green]ok[/green]" if rec.status == "ok" else f"[red]{rec.status}[/red]: {escape(rec.error)}"
        table.add_row(rec.name, rec.dist, status, ", ".join(rec.provides))
    _console().print(table)
    return 0


def _read_boxes(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """boxes.json: a list of [x, y, w, h] (one per heatmap row) or {"centers": .., "scales": ..}."""
    from posefw.transforms import box_to_center_scale

    data = load_json(path, "--boxes")
    if isinstance(data, dict):
        if set(data) != {"centers", "scales"}:
            raise ValueError(f"--boxes: an object must have exactly 'centers' and 'scales', got {sorted(data)}")
        return np.asarray(data["centers"], float), np.asarray(data["scales"], float)
    boxes = np.asarray(data, dtype=float)
    if boxes.shape != (n, 4):
        raise ValueError(f"--boxes: expected {n} boxes [x, y, w, h] to match the heatmaps, got shape {boxes.shape}")
    return box_to_center_scale(boxes)


def _decoder_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config) if getattr(args, "config", None) else Config()
    return cfg.with_overrides("decoder", name=args.decoder, algorithm=args.algorithm, kernel=args.kernel)


def cmd_decode(args: argparse.Namespace) -> int:
    cfg = _decoder_config(args).decoder
    decoder = posefw.create_decoder(cfg.name, algorithm=cfg.algorithm, kernel=cfg.kernel, **cfg.options)
    try:
        heatmaps = np.load(args.heatmaps)
    except FileNotFoundError:
        raise FileNotFoundError(f"heatmaps: file not found: {args.heatmaps}") from None
    except ValueError as exc:
        raise ValueError(f"heatmaps: {args.heatmaps} is not a .npy array: {exc}") from None
    centers = scales = None
    if args.boxes:
        centers, scales = _read_boxes(args.boxes, int(heatmaps.shape[0]) if heatmaps.ndim else 0)
    result = checked_result(decoder.decode(heatmaps, centers, scales), cfg.name).numpy()
    out = {
        "decoder": cfg.name,
        "algorithm": cfg.algorithm,
        "kernel": cfg.kernel,
        "coordinates": "image" if args.boxes else "heatmap",
        "keypoints": json_array(result.keypoints),
        "scores": json_array(result.scores),
    }
    write_json(args.out, out, "--out", indent=None)
    what = f"{len(result)} crops x {result.scores.shape[1]} keypoints"
    _console().print(f"decoded {what} with {cfg.name} ({cfg.algorithm}) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posefw", description=__doc__)
    p.add_argument("--version", action="version", version=f"posefw {posefw.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    for kind in ("decoder", "engine"):
        grp = sub.add_parser(f"{kind}s", help=f"{kind}s installed through plugins")
        gsub = grp.add_subparsers(dest="action", metavar="ACTION", required=True)
        lst = gsub.add_parser("list", help=f"list {kind}s with their status and provider")
        lst.set_defaults(func=cmd_backends, kind=kind)
    pl = sub.add_parser("plugins", help="plugins found through the 'posefw' entry points")
    plsub = pl.add_subparsers(dest="action", metavar="ACTION", required=True)
    plsub.add_parser("list", help="list plugins with their status").set_defaults(func=cmd_plugins)

    dec = sub.add_parser("decode", help="decode a .npy of heatmaps (N, K, H, W) to keypoints JSON")
    dec.add_argument("heatmaps")
    dec.add_argument("--decoder", default=None, help="decoder name (default numpy-cpu)")
    dec.add_argument("--algorithm", default=None, choices=posefw.ALGORITHMS)
    dec.add_argument("--kernel", type=int, default=None)
    dec.add_argument("--config", default=None, help="TOML config; flags override it")
    dec.add_argument("--boxes", default=None, help="JSON list of [x, y, w, h] per crop, or {centers, scales}")
    dec.add_argument("--out", required=True)
    dec.set_defaults(func=cmd_decode)

    from posefw import commands

    commands.add_all(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ImportError as exc:
        print(f"posefw {args.command}: error: {missing_extra(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, LookupError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(f"posefw {args.command}: error: {exc}", file=sys.stderr)
        return 2


#: Which optional extra brings a module a command imported.
EXTRAS = {
    "cv2": "eval",
    "pycocotools": "eval",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "polygraphy": "onnx",
    "tensorrt": "tensorrt",
    "cupy": "gpu",
    "numba": "gpu",
    "numba_cuda": "gpu",
    "torch": "torch",
    "safetensors": "test",
    "triton": "torch",
    "av": "video",
    "PyNvVideoCodec": "nvdec",
    "ray": "serve",
    "tritonclient": "triton",
}


def missing_extra(exc: ImportError) -> str:
    """An ImportError as what to install: the module and the posefw extra that brings it."""
    root = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(root)
    if not extra:
        return str(exc)
    return f"this command needs {root}, which is not installed: pip install 'posefw[{extra}]'"


def run(argv: list[str] | None = None) -> Any:  # pragma: no cover - console script shim
    sys.exit(main(argv))
