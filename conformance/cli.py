"""``posefw conformance``: numeric and COCO-AP conformance of a decoder, as a table and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import posefw
from posefw.data import coco_mini_annotations
from posefw.decoder import ALGORITHMS
from posefw.files import parse_options
from posefw.outputs import write_json


def add_parser(sub) -> None:
    p = sub.add_parser("conformance", help="check a decoder against the numpy-cpu reference (numeric + COCO AP)")
    p.add_argument("--decoder", default=None, help="decoder to check (or use --engines)")
    p.add_argument(
        "--engines",
        default=None,
        help="comma-separated engines to check against torch fp32 instead "
        "(NAME[:PRECISION][+OPTION[=VALUE]...], e.g. torch:fp16+fuse_gelu=false)",
    )
    p.add_argument(
        "--algorithm", action="append", choices=ALGORITHMS, help="repeatable; default: all the decoder supports"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--input",
        choices=("numpy", "torch", "torch-cuda", "cupy"),
        default="numpy",
        help="array type the decoder is fed",
    )
    p.add_argument("--families", default=None, help="comma-separated case names (default: all)")
    p.add_argument("--annotations", default=None, help="COCO keypoints JSON for AP parity (default: coco-mini val)")
    p.add_argument("--no-coco", action="store_true", help="skip the COCO AP parity check")
    p.add_argument("--json", default=None, help="write the full report here")
    p.set_defaults(func=main)


def converter(kind: str):
    import numpy as np

    if kind == "numpy":
        return lambda a: a
    if kind == "torch-cuda" and _cuda_reason():
        raise RuntimeError(f"--input torch-cuda: {_cuda_reason()}")
    if kind in ("torch", "torch-cuda"):
        import torch

        dev = "cuda" if kind == "torch-cuda" else "cpu"
        return lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
    from posefw.plugins.cupy_common import cupy_unavailable

    why = cupy_unavailable()
    if why:
        raise RuntimeError(f"--input cupy: {why}")
    import cupy

    return lambda a: cupy.asarray(a)


def run_conformance(
    name: str,
    algorithms: list[str] | None = None,
    seed: int = 0,
    input_kind: str = "numpy",
    families: set[str] | None = None,
    annotations: str | None = None,
) -> dict[str, Any]:
    """Numeric checks for each algorithm, then COCO AP parity; the whole report as a dict."""
    from posefw.conformance import coco_parity, numeric

    cls = posefw.get_registry().get("decoder", name)
    algos = list(algorithms or cls.algorithms)
    conv = converter(input_kind)
    # A decoder that takes a device for host input (torch-full) is put on the GPU where there is one.
    opts = {"device": "cuda"} if ("device" in cls.options and input_kind != "torch") and _cuda() else {}

    def make(**kw):
        return posefw.create_decoder(name, **kw, **opts)

    results = numeric.run(make, tuple(algos), seed=seed, to_input=conv, families=families)
    report = {"decoder": name, "algorithms": algos, "seed": seed, "input": input_kind, **numeric.summary(results)}
    if annotations:
        try:
            import pycocotools  # noqa: F401
        except ImportError:
            report["coco_skipped"] = "COCO AP parity needs pycocotools: pip install 'posefw[eval]'"
            return report
        coco = [coco_parity.run(make, a, annotations, seed=seed, to_input=conv) for a in algos]
        report["coco"] = coco
        report["passed"] = report["passed"] and all(c["passed"] for c in coco)
    return report


def _cuda_reason() -> str | None:
    from posefw.testing import cuda_reason

    return cuda_reason()


def _cuda() -> bool:
    return _cuda_reason() is None


#: Engine options that choose the weights: the fp32 reference is built with the same ones.
WEIGHT_OPTIONS = ("checkpoint", "size", "seed")


def engines_main(args: argparse.Namespace) -> int:
    """Engine parity: each named engine against torch fp32 with the same weights."""
    from posefw.conformance import engine_parity
    from rich.markup import escape
    from rich.table import Table

    from posefw.console import console as make_console

    console = make_console()
    references: dict[tuple, Any] = {}  # one torch fp32 engine per set of weights
    reports = []
    for spec in args.engines.split(","):
        name, _, opt = spec.partition(":")  # e.g. torch:fp16, torch:bf16, torch:fp16+fuse_gelu=false
        opt, *flags = opt.split("+")  # +NAME means NAME=true
        opts: dict = {"precision": opt} if opt else {}
        opts.update(parse_options([f if "=" in f else f"{f}=true" for f in flags], "--engines"))
        if name == "torch" and opt == "fp16":
            opts["device"] = "cuda"
        try:
            engine = posefw.create_engine(name, **opts)
            weights = {k: opts[k] for k in WEIGHT_OPTIONS if k in opts}  # the same model, in fp32
            key = tuple(sorted(weights.items()))
            if key not in references:
                references[key] = posefw.create_engine("torch", precision="fp32", device="cpu", **weights)
            reports.append(engine_parity.run(engine, references[key]))
        except Exception as exc:  # noqa: BLE001 - one engine's failure is reported, the rest run
            reports.append({"engine": {"engine": spec}, "error": f"{type(exc).__name__}: {exc}", "passed": False})
    table = Table(title="engine parity against torch fp32 (same weights, same crops)")
    for col in ("engine", "device", "precision", "max abs", "max rel", "keypoints within 0.5 px", "result"):
        table.add_column(col)
    for r in reports:
        e = r["engine"]
        if "error" in r:
            table.add_row(e.get("engine", "?"), "", "", "", "", "", f"[red]{escape(r['error'][:90])}[/red]")
            continue
        table.add_row(
            e["engine"],
            str(e.get("device", "")),
            str(e.get("precision", "fp32")),
            f"{r['max_abs_error']:.3g}",
            f"{r['max_rel_error']:.3g}",
            f"{100 * r['keypoints_within_half_px']:.1f}%",
            "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]",
        )
    console.print(table)
    if args.json:
        write_json(args.json, reports)
    return 0 if all(r["passed"] for r in reports) else 1


def main(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from posefw.console import console as make_console

    if args.engines:
        return engines_main(args)
    if not args.decoder:
        raise ValueError("conformance: give --decoder NAME or --engines NAME[,NAME...]")

    families = set(args.families.split(",")) if args.families else None
    ann = None if args.no_coco else args.annotations
    if ann and not Path(ann).is_file():
        raise FileNotFoundError(f"--annotations: {ann} not found (pass --annotations or --no-coco)")
    default_missing = ""
    if not args.no_coco and not ann:  # the default data: without it the numeric checks still run
        ann = str(coco_mini_annotations()) if coco_mini_annotations().is_file() else None
        if ann is None:
            default_missing = (
                f"COCO AP parity needs the coco-mini annotations, not found at {coco_mini_annotations()} "
                "(set POSEFW_DATA or pass --annotations)"
            )
            try:
                import pycocotools  # noqa: F401
            except ImportError:
                default_missing += ", and pycocotools: pip install 'posefw[eval]'"
    report = run_conformance(args.decoder, args.algorithm, args.seed, args.input, families, ann)
    if default_missing:
        report["coco_skipped"] = default_missing
    console = make_console()
    table = Table(title=f"conformance of {args.decoder} against numpy-cpu (seed {args.seed}, {args.input} input)")
    for col in ("case", "algorithm", "check", "result", "checked", "max err px", "message"):
        table.add_column(col)
    for r in report["results"]:
        if r["passed"] and r["check"] not in ("keypoints", "transform"):
            continue
        res = "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]"
        table.add_row(
            r["case"],
            r["algorithm"],
            r["check"],
            res,
            str(r["checked"]),
            f"{r['max_error_px']:.2e}",
            escape(r["message"]),
        )
    console.print(table)
    for c in report.get("coco", []):
        t = Table(
            title=f"COCO AP parity, {c['algorithm']} ({c['instances']} instances of {Path(c['annotations']).name})"
        )
        for col in ("decoder", "AP", "AP50", "AP75", "AR"):
            t.add_column(col)
        for label in ("reference", "candidate"):
            row = c[label]
            name = "reference (numpy-cpu)" if label == "reference" else f"candidate ({args.decoder})"
            t.add_row(name, *(f"{row[m]:.4f}" for m in ("AP", "AP50", "AP75", "AR")))
        t.add_row("delta", *(f"{c['delta'][m]:+.4f}" for m in ("AP", "AP50", "AP75", "AR")))
        console.print(t)
        console.print("[green]AP parity: pass[/green]" if c["passed"] else "[red]AP parity: FAIL (|dAP| > 0.001)[/red]")
    if "coco_skipped" in report:
        console.print(f"[yellow]AP parity skipped:[/yellow] {escape(report['coco_skipped'])}")
    verdict = "[green]PASSED[/green]" if report["passed"] else f"[red]FAILED[/red] ({report['failed']} checks)"
    console.print(f"{args.decoder}: {verdict} - {report['checks']} numeric checks")
    if args.json:
        write_json(args.json, report)
        console.print(f"report written to {args.json}")
    return 0 if report["passed"] else 1
