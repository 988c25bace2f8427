"""``posefw export``, ``posefw predict`` and ``posefw eval``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from posefw.decoder import ALGORITHMS


def add_parser(sub) -> None:
    ex = sub.add_parser(
        "export", help="export ViTPose to ONNX (dynamic batch), validated with Polygraphy + ONNX Runtime"
    )
    ex.add_argument(
        "--checkpoint", default=None, help="official .pth or HuggingFace .safetensors (default: random weights)"
    )
    ex.add_argument("--size", default="b", choices=("s", "b", "l", "h"))
    ex.add_argument("--out", default=None, help="the ONNX file to write (or give --triton-repo)")
    ex.add_argument(
        "--triton-repo",
        default=None,
        metavar="DIR",
        help="write a Triton model repository here (DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx, README)",
    )
    ex.add_argument("--model-name", default="vitpose", help="the model's name in the Triton repository")
    ex.add_argument("--opset", type=int, default=18)
    ex.add_argument("--max-batch", type=int, default=64)
    ex.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16"),
        help="fp16: fp16 weights and activations, LayerNorm in fp32 through Casts, fp32 outputs "
        "(what TensorRT 10/11 build strongly typed)",
    )
    ex.add_argument(
        "--with-decoder",
        default=None,
        choices=ALGORITHMS,
        metavar="ALGORITHM",
        help="append DARK decoding so the model outputs keypoints and scores (inputs images, centers, scales)",
    )
    ex.add_argument("--no-validate", action="store_true")
    ex.set_defaults(func=cmd_export)

    for name, helptext in (
        ("predict", "draw keypoints for boxes on one image"),
        ("eval", "COCO keypoint AP with pycocotools"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "predict":
            p.add_argument("image")
            p.add_argument("--boxes", required=True, help="JSON: list of [x, y, w, h], or COCO detections with 'bbox'")
            p.add_argument("--out", required=True, help="PNG to write")
            p.add_argument("--json", default=None, help="also write keypoints here")
            p.add_argument(
                "--min-score",
                type=float,
                default=0.0,
                help="draw only boxes whose detection score is at least this (COCO detections)",
            )
        else:
            p.add_argument("--annotations", required=True)
            p.add_argument("--images", required=True, help="folder of the annotation's images")
            p.add_argument(
                "--detections", default=None, help="COCO detection results JSON (default: ground-truth boxes)"
            )
            p.add_argument("--det-threshold", type=float, default=0.0)
            p.add_argument("--json", default=None, help="write the scores and settings here")
        add_model_arguments(p)
        p.set_defaults(func=cmd_predict if name == "predict" else cmd_eval)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every command that runs the pipeline takes (``_pipeline`` reads them)."""
    p.add_argument("--config", default=None, help="TOML with [engine], [decoder], [pipeline] (flags override it)")
    p.add_argument("--engine", default=None, help="engine (default torch)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--decoder", default=None, help="decoder (default numpy-cpu)")
    p.add_argument("--algorithm", default=None, choices=ALGORITHMS, help="default dark-udp")
    p.add_argument("--flip-test", action="store_true")
    p.add_argument("--device", default=None, help="engine device (cpu, cuda), for engines that take one")
    p.add_argument(
        "--preprocess",
        default=None,
        choices=("auto", "gpu", "cpu"),
        help="where images are decoded and cropped (auto: the engine's device)",
    )


def cmd_export(args: argparse.Namespace) -> int:
    from posefw.console import console as make_console
    from posefw.outputs import check_target

    console = make_console()
    if (args.out is None) == (args.triton_repo is None):
        raise ValueError("export: give exactly one of --out FILE.onnx or --triton-repo DIR")
    if args.triton_repo:
        return _export_triton(args, console)
    check_target(args.out, "--out")
    return _export_validated(args, Path(args.out), console)


def _export_validated(args: argparse.Namespace, out: Path, console: Any) -> int:
    """Export to ``out``, then check the fp16 LayerNorms and validate against PyTorch (0 when all hold)."""
    from posefw.export import export_onnx, precision_report, validate
    from posefw.models.checkpoints import load_vitpose
    from posefw.models.vitpose import random_vitpose
    from posefw.outputs import atomic_path

    model = load_vitpose(args.checkpoint) if args.checkpoint else random_vitpose(args.size)
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    with atomic_path(out, "--out") as tmp:  # a failed export leaves no half-written model
        export_onnx(
            model,
            tmp,
            opset=args.opset,
            max_batch=args.max_batch,
            decoder=args.with_decoder,
            weights=weights,
            precision=args.precision,
        )
    console.print(
        f"exported {weights} to {out} ({args.precision}, opset {args.opset}, batch 1..{args.max_batch}"
        f"{', with ' + args.with_decoder + ' decoder' if args.with_decoder else ''})"
    )
    if args.precision == "fp16":
        rep = precision_report(out)
        bad = rep["layernorms_not_fp32"]
        console.print(
            f"types: inputs {rep['inputs']}, outputs {rep['outputs']}; {len(rep['layernorms'])} "
            f"LayerNormalization nodes, {len(bad)} not in fp32"
        )
        if bad:
            console.print(f"[red]LayerNorms not in fp32: {bad[:5]}[/red]")
            return 1
    if not args.no_validate:
        rep = validate(model, out, decoder=args.with_decoder)
        verdict = "[green]matches[/green]" if rep["passed"] else "[red]DIFFERS FROM[/red]"
        kp = (
            f"; keypoints within 0.5 heatmap px: {100 * rep['keypoints_within_half_px']:.1f}%"
            if "keypoints_within_half_px" in rep
            else ""
        )
        console.print(
            f"Polygraphy: ONNX Runtime (CPU) {verdict} PyTorch fp32 (atol {rep['atol']}); "
            f"max abs error {rep['max_abs_error']}{kp}"
        )
        if not rep["passed"]:
            return 1
    return 0


def _export_triton(args: argparse.Namespace, console: Any) -> int:
    """The ONNX model exported and validated as for --out, then laid out as a Triton repository."""
    import tempfile

    from posefw.serving.triton_repo import write_repo

    repo = Path(args.triton_repo)
    if (repo / args.model_name).exists():
        raise ValueError(f"--triton-repo: {repo / args.model_name} exists already (choose another DIR or --model-name)")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        rc = _export_validated(args, onnx_file, console)
        if rc:
            return rc
        config = write_repo(repo, onnx_file, args.model_name, args.max_batch, args.precision, args.with_decoder)
    console.print(
        f"Triton model repository: {config} (checked with Triton's ModelConfig protobuf); {repo / 'README.md'}"
    )
    return 0


def _engine_options(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """The command's flags that this engine's constructor takes (checkpoint, device, annotations)."""
    import inspect

    import posefw

    cls = posefw.get_registry().get("engine", engine)
    accepted = set(getattr(cls, "options", ())) | set(inspect.signature(cls).parameters)  # declared, or its keywords
    given = {"checkpoint": args.checkpoint, "device": args.device, "annotations": getattr(args, "annotations", None)}
    return {k: v for k, v in given.items() if v is not None and k in accepted}


def _pipeline(args: argparse.Namespace):
    """Engine, decoder and pipeline from ``--config`` (or the defaults), the flags on top."""
    from posefw.config import Config, load_config
    from posefw.pipeline import Pipeline

    cfg = load_config(args.config) if args.config else Config()
    cfg = cfg.with_overrides("engine", name=args.engine)
    cfg = cfg.with_overrides("engine", options={**cfg.engine.options, **_engine_options(args, cfg.engine.name)})
    cfg = cfg.with_overrides("decoder", name=args.decoder, algorithm=args.algorithm)
    cfg = cfg.with_overrides("pipeline", preprocess=args.preprocess, flip_test=True if args.flip_test else None)
    pipe = Pipeline.from_config(cfg)
    return pipe, pipe.engine


def image_id(path: str | Path) -> int:
    """The COCO image id of a file named as COCO names them (``%012d.jpg``), else 0."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else 0


def _read_boxes(path: str, image: str | None = None, min_score: float = 0.0) -> np.ndarray:
    """[x, y, w, h] boxes; COCO detections are filtered to the image's id (its file stem) and score."""
    from posefw.files import load_json

    data = load_json(path, "--boxes")
    if not isinstance(data, list):
        raise ValueError(
            f"--boxes: expected a JSON list of [x, y, w, h] or of COCO detections, got a {type(data).__name__}"
        )
    if data and isinstance(data[0], dict):
        if not all(isinstance(d, dict) and "bbox" in d for d in data):
            raise ValueError("--boxes: every COCO detection needs a 'bbox' [x, y, w, h]")
        stem = Path(image).stem if image else ""
        if all("image_id" in d for d in data):
            if not stem.isdigit():
                raise ValueError(f"--boxes: detections name image ids, but {image} is not named by a COCO id")
            data = [d for d in data if int(d["image_id"]) == int(stem)]
        data = [d["bbox"] for d in data if float(d.get("score", 1.0)) >= min_score]
    from posefw.frames import as_boxes

    try:
        return as_boxes(data, 0)
    except ValueError as exc:
        raise ValueError(f"--boxes: {str(exc).removeprefix('boxes[0]: ')}") from None


def read_detections(path: str, threshold: float, skipped: list[str]) -> dict[int, list]:
    """COCO detection results (a list of {image_id, bbox, score, category_id}) by image id, persons
    at or above ``threshold``. A malformed entry is reported in ``skipped`` by index, not fatal."""
    from posefw.files import load_json

    dets = load_json(path, "--detections")
    if not isinstance(dets, list):
        raise ValueError(f"--detections: expected a JSON list of COCO detections, got a {type(dets).__name__}")
    by_image: dict[int, list] = {}
    for i, d in enumerate(dets):
        try:
            if not isinstance(d, dict):
                raise ValueError(f"expected an object, got {type(d).__name__}")
            box = [float(v) for v in d["bbox"]]
            if len(box) != 4:
                raise ValueError(f"bbox must be [x, y, w, h], got {len(box)} numbers")
            iid, score = int(d["image_id"]), float(d.get("score", 1.0))
        except KeyError as exc:
            skipped.append(f"detection {i}: missing {exc}")
            continue
        except (TypeError, ValueError) as exc:
            skipped.append(f"detection {i}: {exc}")
            continue
        if d.get("category_id", 1) == 1 and score >= threshold:
            by_image.setdefault(iid, []).append((box, score))
    return by_image


def cmd_predict(args: argparse.Namespace) -> int:
    from posefw.console import console as make_console
    from posefw.files import json_array
    from posefw.frames import as_frame
    from posefw.images import read_images
    from posefw.outputs import check_target, write_image, write_json

    console = make_console()
    check_target(args.out, "--out", image=True)
    if args.json:
        check_target(args.json, "--json")
    boxes = _read_boxes(args.boxes, args.image, args.min_score)
    pipe, engine = _pipeline(args)
    (frame,) = read_images([args.image], device=pipe.device)
    (res,) = pipe([frame], [boxes], image_ids=[image_id(args.image)])
    image = as_frame(frame, 0).host()
    label = f"posefw {engine.name}/{pipe.decoder.name} - {engine.weights}"
    from posefw.drawing import draw

    vis = draw(image, res.keypoints, res.scores, boxes[res.valid], label)
    out = Path(args.out)
    write_image(out, vis, "--out")
    for e in res.errors:
        console.print(f"[yellow]skipped[/yellow] {e}")
    console.print(
        f"{int(res.valid.sum())} of {len(boxes)} boxes decoded ({engine.weights}; crops on {pipe.device}) -> {out}"
    )
    if args.json:
        write_json(
            args.json,
            {
                "image": args.image,
                "weights": engine.weights,
                "errors": res.errors,
                "keypoints": json_array(res.keypoints),
                "scores": json_array(res.scores),
            },
            indent=None,
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import Progress
    from rich.table import Table

    from posefw.coco import evaluate, load_persons
    from posefw.coco import results as coco_results
    from posefw.console import console as make_console
    from posefw.images import read_images
    from posefw.outputs import write_json

    console = make_console()
    persons = load_persons(args.annotations)
    skipped: list[str] = []
    if args.detections:
        by_image = read_detections(args.detections, args.det_threshold, skipped)
    else:
        by_image = {}
        for iid, box in zip(persons.image_ids, persons.boxes):
            by_image.setdefault(int(iid), []).append((box.tolist(), 1.0))
    pipe, engine = _pipeline(args)
    entries = []
    todo = []
    for iid, items in by_image.items():
        if iid not in persons.images:
            skipped.append(f"image {iid}: not in the annotations")
        else:
            todo.append((iid, np.array([b for b, _ in items], np.float64), np.array([s for _, s in items])))
    order: list = []  # what each streamed item holds, consumed in the same order

    def items(group: int = 8):
        for start in range(0, len(todo), group):
            part = todo[start : start + group]
            errors: list[str] = []
            frames = read_images([Path(args.images) / persons.images[iid] for iid, _, _ in part], pipe.device, errors)
            skipped.extend(f"image {e}" for e in errors)
            kept = [(p, f) for p, f in zip(part, frames) if f is not None]
            order.append([p for p, _ in kept])
            yield [f for _, f in kept], [p[1] for p, _ in kept], [p[0] for p, _ in kept]

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(todo))
        for results in pipe.stream(items()):
            for (iid, _, box_scores), res in zip(order.pop(0), results):
                skipped += [f"image {iid} {e}" for e in res.errors]
                ok = np.flatnonzero(res.valid)
                entries += coco_results(np.full(len(ok), iid), res.keypoints[ok], res.scores[ok], box_scores[ok])
                progress.advance(task)
    stats = evaluate(args.annotations, entries)
    dec = pipe.decoder
    table = Table(title=f"COCO keypoints: {engine.name} + {dec.name} ({dec.algorithm}) - {engine.weights}")
    for col in ("AP", "AP50", "AP75", "AR"):
        table.add_column(col)
    table.add_row(*(f"{stats[m]:.4f}" for m in ("AP", "AP50", "AP75", "AR")))
    console.print(table)
    boxes = "detections " + args.detections if args.detections else "ground truth"
    console.print(
        f"{len(entries)} instances from {len(by_image)} images; boxes: {boxes}; "
        f"flip test {'on' if pipe.flip_test else 'off'}"
    )
    for s in skipped:
        console.print(f"[yellow]skipped[/yellow] {s}")
    if args.json:
        write_json(
            args.json,
            {
                "stats": stats,
                "engine": engine.describe(),
                "decoder": dec.name,
                "algorithm": dec.algorithm,
                "flip_test": pipe.flip_test,
                "crops_on": pipe.device,
                "instances": len(entries),
                "skipped": skipped,
            },
        )
    return 0
