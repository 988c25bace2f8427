"""``posefw bench``: the paper's tables in one run, decoders ranked, results as JSON, tables and a plot.

On a GPU: ViTPose-B fp16 through the chosen engine (torch with CUDA graphs by default), every
pipeline of the paper side by side, then every decoder alone. Without a GPU it says so and runs
the CPU-capable parts with small settings, finishing in about a minute.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

from posefw.config import Config, load_config
from posefw.files import parse_options
from posefw.outputs import atomic_path, check_target, write_json


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark pipelines and decoders side by side (the paper's tables)")
    p.add_argument("--decoder", default=None, help="full decoder for the integration rows (default cupy-full on GPU)")
    p.add_argument("--engine", default=None, help="engine (default torch)")
    p.add_argument("--config", default=None, help="TOML with [engine], [decoder], [bench]")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--algorithm", default=None, choices=("dark-udp", "dark", "argmax"))
    p.add_argument("--checkpoint", default=None)
    p.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option, repeatable (e.g. streams=1); values are JSON, else strings",
    )
    p.add_argument("--json", default="posefw-bench.json", help="results file")
    p.add_argument("--plot", default="posefw-bench.png", help="plot file")
    p.add_argument("--no-decoders", action="store_true", help="skip the decoder-only table")
    p.add_argument(
        "--no-e2e", action="store_true", help="skip the end-to-end rows (frames and boxes in, keypoints out)"
    )
    p.add_argument("--e2e-boxes", type=int, default=None, help="boxes per call of the end-to-end rows (GPU default 64)")
    p.set_defaults(func=main)


def _environment(cuda: bool) -> dict[str, Any]:
    import numpy as np

    import posefw

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "posefw": posefw.__version__,
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        if cuda:
            env["device"] = torch.cuda.get_device_name(0)
            env["cuda"] = torch.version.cuda
            try:
                import subprocess

                env["driver"] = subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                env["driver"] = "unknown"
    except ImportError:
        env["torch"] = None
    for mod in ("cupy", "numba", "onnxruntime", "tensorrt", "polygraphy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: recorded as such
            env[mod] = None
    return env


#: Calls per pipeline on a CPU: each is seconds long there, so ratios are marked when within noise.
CPU_ITERATIONS = 3


def resolve(args: argparse.Namespace, cuda: bool) -> tuple[Config, dict[str, Any]]:
    cfg = load_config(args.config) if args.config else Config()
    batches = [int(b) for b in args.batches.split(",")] if args.batches else None
    explicit = args.config is not None
    if not cuda:  # the CPU's small run, except what a config file set itself
        small = {"batches": [1, 2], "iterations": CPU_ITERATIONS, "warmup": 1}
        cfg = cfg.with_overrides("bench", **{k: v for k, v in small.items() if k not in cfg.given.get("bench", ())})
    cfg = cfg.with_overrides("bench", batches=batches, iterations=args.iterations, warmup=args.warmup)
    if args.engine:
        cfg = cfg.with_overrides("engine", name=args.engine)
    default_full = "cupy-full" if cuda else "torch-full"
    cfg = cfg.with_overrides(
        "decoder", name=args.decoder or (cfg.decoder.name if explicit else default_full), algorithm=args.algorithm
    )
    if cfg.bench.iterations < 1 or cfg.bench.warmup < 0:
        raise ValueError(f"iterations: must be >= 1 (warmup >= 0), got {cfg.bench.iterations} / {cfg.bench.warmup}")
    if any(b < 1 for b in cfg.bench.batches):
        raise ValueError(f"batches: must be >= 1, got {cfg.bench.batches}")
    eopts = dict(cfg.engine.options)
    if cfg.engine.name == "torch":
        eopts.setdefault("precision", "fp16" if cuda else "fp32")
        eopts.setdefault("cuda_graph", cuda)
        eopts.setdefault(
            "compile", cuda
        )  # +45% on the H100 (docs/results/benchmarks-history.md); compiles once per batch size
        eopts.setdefault("device", "cuda" if cuda else "cpu")
    if args.checkpoint:
        eopts["checkpoint"] = args.checkpoint
    eopts.update(parse_options(getattr(args, "engine_option", []), "--engine-option"))
    return cfg, eopts


def main(args: argparse.Namespace) -> int:
    """Resolve the settings, run the pipelines, the end-to-end rows and the decoders; print, save."""
    from posefw.console import console as make_console
    from posefw.testing import cuda_reason

    console = make_console()
    why = cuda_reason()
    cuda = why is None
    cfg, eopts = resolve(args, cuda)
    # Fail before the long run, creating nothing (results are written atomically at the end).
    for path, option in ((args.json, "--json"), (args.plot, "--plot")):
        if path:
            check_target(path, option, image=option == "--plot")
    if not cuda:
        console.print(
            f"[yellow]No GPU: {why}.[/yellow] Running the CPU-capable parts "
            f"(engine {cfg.engine.name} {eopts.get('precision', '')} on the CPU, CPU decoders) with batches "
            f"{cfg.bench.batches}, {cfg.bench.iterations} iterations, warm-up {cfg.bench.warmup}."
        )
    t0 = time.time()
    engine = _make_engine(cfg, eopts)
    algorithm, full_name = cfg.decoder.algorithm, cfg.decoder.name
    rows = _pipeline_rows(engine, cfg, cuda, console)
    _ratios(rows)
    e2e = None if args.no_e2e else _end_to_end(args, engine, cfg, cuda, console)
    decoders = [] if args.no_decoders else _decoders(cfg, cuda, console, algorithm)
    result = {
        "environment": _environment(cuda),
        "engine": engine.describe(),
        "weights": engine.weights,
        "model": f"ViTPose-{str(engine.describe().get('size', 'b')).upper()} 256x192",
        "configuration": {
            "engine": cfg.engine.name,
            "engine_options": eopts,
            "decoder": full_name,
            "algorithm": algorithm,
            "batches": cfg.bench.batches,
            "iterations": cfg.bench.iterations,
            "warmup": cfg.bench.warmup,
            "config_file": cfg.source,
        },
        "gpu": cuda,
        "pipelines": rows,
        "end_to_end": e2e,
        "decoders": decoders,
        "seconds": round(time.time() - t0, 1),
    }
    _print(console, result)
    if args.json:
        write_json(args.json, result, "--json")
    if args.plot:
        _plot(result, args.plot)
    console.print(f"results: {args.json}, plot: {args.plot} ({result['seconds']} s)")
    return 0


def _make_engine(cfg: Config, eopts: dict[str, Any]) -> Any:
    """The engine, after checking the decoder names and batch sizes against what is installed."""
    import posefw

    reg = posefw.get_registry()
    reg.get("decoder", cfg.decoder.name)  # unknown or unavailable: a clear error with the list
    unknown = sorted(set(cfg.bench.decoders) - {i.name for i in reg.backends("decoder")})
    if unknown:
        raise ValueError(f"config [bench].decoders: unknown {unknown}; installed: {reg.listing('decoder')}")
    engine = posefw.create_engine(cfg.engine.name, **eopts)
    max_batch = getattr(engine, "max_batch", 64)
    too_big = [b for b in cfg.bench.batches if b > max_batch]
    if too_big:
        raise ValueError(f"batches: {too_big} exceed engine {cfg.engine.name!r}'s maximum batch {max_batch}")
    return engine


def _pipeline_rows(engine: Any, cfg: Config, cuda: bool, console: Any) -> list[dict[str, Any]]:
    """The paper's pipelines at every batch size (and every optimization profile), one row each."""
    from rich.progress import Progress

    import posefw
    from posefw.benchmarks import pipelines as pl

    full_name, algorithm = cfg.decoder.name, cfg.decoder.algorithm
    usable = {i.name for i in posefw.get_registry().backends("decoder") if i.available}
    fulls = [full_name] + ([d for d in pl.full_decoders() if d != full_name and d in usable] if cuda else [])
    makers = pl.pipelines(engine, fulls, algorithm, cuda)
    # Engines with optimization profiles (TensorRT) are measured under each profile.
    profiles = [(i, f"[opt{b}]") for i, b in enumerate(engine.opt_batches)] or [(None, "")]
    rows: list[dict[str, Any]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("pipelines", total=len(makers) * len(cfg.bench.batches) * len(profiles))
        for prof, suffix in profiles:
            if prof is not None:
                engine.forced_profile = prof
            for b in cfg.bench.batches:
                group: dict[str, Any] = {}  # device-resident pipelines: timed together, interleaved
                for name, make in makers.items():
                    label = name if name == "pytorch-fp32-eager" else name + suffix
                    if name == "pytorch-fp32-eager" and prof not in (None, profiles[0][0]):
                        progress.advance(task)  # the PyTorch baseline has no profiles: measured once
                        continue
                    progress.update(task, description=f"{label} b={b}")
                    row: dict[str, Any] = {"pipeline": label, "batch": b}
                    rows.append(row)
                    try:
                        fn = make(b)
                        if pl.device_resident(name):
                            group[label] = (fn, row)
                        else:
                            row.update(pl.measure(fn, b, cfg.bench.iterations, cfg.bench.warmup, cuda))
                    except Exception as exc:  # noqa: BLE001 - one failed configuration is reported, the rest run
                        row["error"] = f"{type(exc).__name__}: {exc}"
                    progress.advance(task)
                if group:
                    progress.update(task, description=f"{', '.join(group)} b={b}, interleaved")
                    timed = pl.measure_group(
                        {k: fn for k, (fn, _) in group.items()}, b, cfg.bench.iterations, cfg.bench.warmup, cuda
                    )
                    for label, (_, row) in group.items():
                        res = timed[label]
                        if isinstance(res, Exception):
                            row["error"] = f"{type(res).__name__}: {res}"
                        else:
                            row.update(res)
    return rows


def _ratios(rows: list[dict[str, Any]]) -> None:
    by = {(r["pipeline"], r["batch"]): r for r in rows}
    for r in rows:
        if "qps" not in r:
            continue
        for base, key in (("engine", "vs_engine"), ("engine+cpu-post", "vs_cpu_post")):
            ref = by.get((base, r["batch"]))
            if ref and "qps" in ref:
                r[key] = r["qps"] / ref["qps"]
                if ref is not r and within_noise(r, ref):
                    r.setdefault("within_noise", []).append(key)
        ref = by.get(("engine", r["batch"]))
        if "device_qps" in r and ref and "device_qps" in ref:
            r["vs_engine_device"] = r["device_qps"] / ref["device_qps"]


def within_noise(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two timed rows' means differ by less than twice their combined standard error:
    then their ratio says nothing (the table marks it with ~)."""
    import math

    def rel_err(r):
        n = max(int(r.get("n", 1)), 1)
        return r.get("std_ms", 0.0) / r["mean_ms"] / math.sqrt(n) if r.get("mean_ms") else 0.0

    err = math.hypot(rel_err(a), rel_err(b))
    return abs(a["mean_ms"] / b["mean_ms"] - 1.0) < 2.0 * err


def _end_to_end(args: argparse.Namespace, engine: Any, cfg: Config, cuda: bool, console) -> dict[str, Any]:
    """Frames and boxes in, keypoints out, beside the engine alone (benchmarks/end_to_end.py)."""
    import posefw
    from posefw.benchmarks import end_to_end

    boxes = args.e2e_boxes or (64 if cuda else 2)
    if boxes < 1 or boxes > engine.max_batch:
        raise ValueError(f"--e2e-boxes: expected 1..{engine.max_batch}, got {boxes}")
    try:
        import cv2  # noqa: F401 - reads the frames, and crops them on the CPU path
    except ImportError:
        return {"skipped": "the end-to-end rows read real frames with OpenCV: pip install 'posefw[eval]'"}
    d = cfg.decoder
    decoder = posefw.create_decoder(d.name, algorithm=d.algorithm, kernel=d.kernel, **d.options)
    with console.status("end to end: frames and boxes in, keypoints out"):
        try:
            if cuda:
                return end_to_end.rows(engine, decoder, cuda, boxes=boxes)
            # The CPU engine takes ~0.5 s a crop: a few calls show the path works, not its speed.
            return end_to_end.rows(
                engine, decoder, cuda, boxes=boxes, calls=2, warmup=1, rounds=2, latency_iters=3, latency_warmup=1
            )
        except Exception as exc:  # noqa: BLE001 - reported; the rest of the bench stands
            return {"error": f"{type(exc).__name__}: {exc}"}


def _decoders(cfg: Config, cuda: bool, console, algorithm: str) -> list[dict[str, Any]]:
    import posefw
    from posefw.benchmarks import decoders as db
    from posefw.conformance import numeric

    out = []
    batches = [1, 8, 64] if cuda else [1, 8]
    iters = 200 if cuda else 10
    infos = posefw.available_decoders()
    wanted = cfg.bench.decoders  # [bench] decoders = [...] restricts the table (checked in main); empty: all
    for info in infos if not wanted else [i for i in infos if i.name in wanted]:
        row: dict[str, Any] = {"decoder": info.name, "device": info.device, "provider": info.provider}
        if not info.available:
            row["status"] = f"{info.status}: {info.reason}"
            out.append(row)
            continue
        opts = {"device": "cuda"} if ("device" in info.cls.options and cuda) else {}
        to_input = db.input_converter(info, cuda)
        res = numeric.run(
            lambda info=info, opts=opts, **kw: posefw.create_decoder(info.name, **kw, **opts),
            (algorithm,),
            to_input=to_input,
        )
        row["conformance"] = "pass" if all(r.passed for r in res) else "FAIL"
        row["timings"] = [
            db.bench_one(info.name, algorithm, b, dt, iters, 10, cuda) for b in batches for dt in ("float32", "float16")
        ]
        out.append(row)

    # rank conforming decoders by time per call at the largest fp32 batch
    def key(r):
        t = [x for x in r.get("timings", []) if x["batch"] == batches[-1] and x["dtype"] == "float32"]
        if not t:
            return float("inf")
        m = t[0].get("graph_ms") or t[0].get("device_ms") or t[0].get("end_to_end_ms") or t[0].get("host_ms") or {}
        return m.get("median_ms", float("inf"))

    ranked = sorted((r for r in out if r.get("conformance") == "pass"), key=key)
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
        r["rank_ms"] = key(r)
    return out


def _print(console, result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    env = result["environment"]
    title = (
        f"posefw bench - {env.get('device', 'CPU ' + env['cpu'])} - {result['model']} ({result['weights']}) - "
        f"engine {result['engine'].get('engine')} {result['engine'].get('precision', '')}"
    )
    t = Table(title=title)
    for col in (
        "pipeline",
        "batch",
        "mean ms",
        "std",
        "p50 ms",
        "p99 ms",
        "img/s",
        "vs engine",
        "vs cpu-post",
        "device ms",
        "vs engine (device)",
    ):
        t.add_column(col, justify="right" if col != "pipeline" else "left", no_wrap=True)
    for r in result["pipelines"]:
        if "error" in r:
            t.add_row(
                r["pipeline"], str(r["batch"]), f"[red]{escape(r['error'][:80])}[/red]", "", "", "", "", "", "", "", ""
            )
            continue
        t.add_row(
            r["pipeline"],
            str(r["batch"]),
            f"{r['mean_ms']:.3f}",
            f"{r['std_ms']:.3f}",
            f"{r['p50_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            f"{r['qps']:.0f}",
            _pct(r.get("vs_engine"), "vs_engine" in r.get("within_noise", ())),
            _pct(r.get("vs_cpu_post"), "vs_cpu_post" in r.get("within_noise", ())),
            f"{r['device_median_ms']:.3f}" if "device_median_ms" in r else "",
            _pct(r.get("vs_engine_device")),
        )
    console.print(t)
    if any(r.get("within_noise") for r in result["pipelines"]):
        console.print("~ : within noise (the two means differ by less than twice their combined standard error)")
    e2e = result.get("end_to_end")
    if e2e and "skipped" in e2e:
        console.print(f"[yellow]end to end: skipped:[/yellow] {escape(e2e['skipped'])}")
    elif e2e and "error" in e2e:
        console.print(f"[red]end to end: {escape(e2e['error'])}[/red]")
    elif e2e:
        e = Table(title=f"end to end: {e2e['boxes_per_call']} boxes per call from {e2e['source']}")
        for col in ("path", "ms per call", "boxes/s", "vs engine"):
            e.add_column(col, justify="right" if col != "path" else "left", no_wrap=True)
        for name, r in e2e["throughput"].items():
            if "error" in r:
                e.add_row(name, f"[red]{escape(r['error'][:80])}[/red]", "", "")
                continue
            ref = " (vs half: each box runs twice)" if "+flip" in name else ""
            e.add_row(name, f"{r['ms_per_call']:.3f}", f"{r['per_s']:.0f}", _pct(r.get("vs_engine")) + ref)
        for name, r in e2e["latency"].items():
            e.add_row(name + " (latency)", f"{r['median_ms']:.3f}", "", f"{r['vs_engine_latency']:.2f}x engine")
        console.print(e)
    if result["decoders"]:
        d = Table(title="decoders alone (median per call; device time from CUDA events / graph replay on GPU)")
        for col in (
            "rank",
            "decoder",
            "device",
            "conformance",
            "b64 fp32 ms" if result["gpu"] else "b8 fp32 ms",
            "status",
        ):
            d.add_column(col)
        for r in sorted(result["decoders"], key=lambda r: r.get("rank", 1e9)):
            d.add_row(
                str(r.get("rank", "-")),
                r["decoder"],
                r["device"],
                r.get("conformance", "-"),
                f"{r['rank_ms']:.4f}" if "rank_ms" in r else "-",
                escape(r.get("status", "")),
            )
        console.print(d)


def _pct(v, noise: bool = False) -> str:
    """A ratio as a percentage; ``~`` marks one within the run's noise (no real difference shown)."""
    return "" if v is None else f"{'~' if noise else ''}{v * 100:.1f}%"


def _plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted((r for r in result["decoders"] if "rank_ms" in r), key=lambda r: r["rank"])
    panels = 2 if ranked else 1  # no empty decoder panel with --no-decoders
    fig, axes = plt.subplots(1, panels, figsize=(7 + 6 * (panels - 1), 5), squeeze=False)
    axes = axes[0]
    by: dict[str, list] = {}
    for r in result["pipelines"]:
        if "qps" in r:
            by.setdefault(r["pipeline"], []).append((r["batch"], r["qps"]))
    for name, pts in by.items():
        pts.sort()
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    axes[0].set_xscale("log", base=2)
    batches = sorted({r["batch"] for r in result["pipelines"]})
    axes[0].set_xticks(batches, [str(b) for b in batches])
    axes[0].set_ylim(bottom=0)  # from zero: a 2% gap must look like 2%
    axes[0].set_xlabel("batch size")
    axes[0].set_ylabel("images / s")
    env = result["environment"]
    axes[0].set_title(f"{env.get('device', 'CPU')} - {result['weights']}", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if ranked:
        # A linear axis from zero (a log axis turned a 2x gap into what looked like 10x), with the
        # value written at each bar so the fast ones stay readable.
        names, us = [r["decoder"] for r in ranked][::-1], [r["rank_ms"] * 1e3 for r in ranked][::-1]
        bars = axes[1].barh(names, us)
        axes[1].bar_label(
            bars, labels=[f"{v:.1f} µs" if v < 1000 else f"{v / 1e3:.2f} ms" for v in us], fontsize=8, padding=3
        )
        axes[1].set_xlim(0, max(us) * 1.25)
        axes[1].set_xlabel("µs per call (largest batch, fp32)")
        axes[1].set_title("decoders (conformance passed)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path, "--plot") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
