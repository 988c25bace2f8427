"""``posefw export``, ``posefw predict`` and ``posefw eval``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from posefw.decoder import ALGORITHMS


def add_parser(sub) -> None:
    ex = sub.add_parser("export", help="export ViTPose to ONNX (dynamic batch), validated with Polygraphy + ONNX Runtime")
    ex.add_argument("--checkpoint", default=None, help="official .pth or HuggingFace .safetensors (default: random weights)")
    ex.add_argument("--size", default="b", choices=("s", "b", "l", "h"))
    ex.add_argument("--out", required=True)
    ex.add_argument("--opset", type=int, default=18)
    ex.add_argument("--max-batch", type=int, default=64)
    ex.add_argument("--with-decoder", default=None, choices=ALGORITHMS, metavar="ALGORITHM",
                    help="append DARK decoding so the model outputs keypoints and scores (inputs images, centers, scales)")
    ex.add_argument("--no-validate", action="store_true")
    ex.set_defaults(func=cmd_export)

    for name, helptext in (("predict", "draw keypoints for boxes on one image"), ("eval", "COCO keypoint AP with pycocotools")):
        p = sub.add_parser(name, help=helptext)
        if name == "predict":
            p.add_argument("image")
            p.add_argument("--boxes", required=True, help="JSON: list of [x, y, w, h], or COCO detections with 'bbox'")
            p.add_argument("--out", required=True, help="PNG to write")
            p.add_argument("--json", default=None, help="also write keypoints here")
        else:
            p.add_argument("--annotations", required=True)
            p.add_argument("--images", required=True, help="folder of the annotation's images")
            p.add_argument("--detections", default=None, help="COCO detection results JSON (default: ground-truth boxes)")
            p.add_argument("--det-threshold", type=float, default=0.0)
            p.add_argument("--json", default=None, help="write the scores and settings here")
        p.add_argument("--engine", default="torch")
        p.add_argument("--checkpoint", default=None)
        p.add_argument("--decoder", default="numpy-cpu")
        p.add_argument("--algorithm", default="dark-udp", choices=ALGORITHMS)
        p.add_argument("--flip-test", action="store_true")
        p.add_argument("--device", default=None, help="engine device for torch (cpu, cuda)")
        p.set_defaults(func=cmd_predict if name == "predict" else cmd_eval)


def cmd_export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from posefw.export import export_onnx, validate
    from posefw.models.checkpoints import load_vitpose
    from posefw.models.vitpose import random_vitpose

    console = Console()
    model = load_vitpose(args.checkpoint) if args.checkpoint else random_vitpose(args.size)
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    out = export_onnx(model, args.out, opset=args.opset, max_batch=args.max_batch, decoder=args.with_decoder, weights=weights)
    console.print(f"exported {weights} to {out} (opset {args.opset}, batch 1..{args.max_batch}"
                  f"{', with ' + args.with_decoder + ' decoder' if args.with_decoder else ''})")
    if not args.no_validate:
        rep = validate(model, out, decoder=args.with_decoder)
        verdict = "[green]matches[/green]" if rep["passed"] else "[red]DIFFERS FROM[/red]"
        console.print(f"Polygraphy: ONNX Runtime (CPU) {verdict} PyTorch; max abs error {rep['max_abs_error']}")
        if not rep["passed"]:
            return 1
    return 0


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.engine in ("torch", "onnxruntime", "tensorrt") and args.checkpoint:
        opts["checkpoint"] = args.checkpoint
    if args.engine == "torch" and args.device:
        opts["device"] = args.device
    if args.engine == "oracle" and getattr(args, "annotations", None):
        opts["annotations"] = args.annotations
    return opts


def _pipeline(args: argparse.Namespace):
    import posefw
    from posefw.pipeline import Pipeline

    engine = posefw.create_engine(args.engine, **_engine_options(args))
    decoder = posefw.create_decoder(args.decoder, algorithm=args.algorithm)
    return Pipeline(engine, decoder, flip_test=args.flip_test), engine


def _read_boxes(path: str, image: str | None = None) -> np.ndarray:
    """[x, y, w, h] boxes; COCO detections are filtered to the image's id (its file stem)."""
    from posefw.cli import load_json

    data = load_json(path, "--boxes")
    if data and isinstance(data[0], dict):
        stem = Path(image).stem if image else ""
        if stem.isdigit() and all("image_id" in d for d in data):
            data = [d for d in data if int(d["image_id"]) == int(stem)]
        data = [d["bbox"] for d in data]
    return np.asarray(data, dtype=np.float64).reshape(-1, 4)


def draw(image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, label: str,
         threshold: float = 0.0) -> np.ndarray:
    """The COCO skeleton and keypoints over an RGB image (returns a new image)."""
    import cv2

    from posefw.coco import SKELETON

    out = image.copy()
    scale = max(1, round(max(image.shape[:2]) / 640))
    for b in boxes:
        x, y, w, h = (int(round(v)) for v in b)
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 200, 255), scale)
    for kp, sc in zip(keypoints, scores):
        ok = np.isfinite(sc) & (sc > threshold) & np.isfinite(kp).all(-1)
        for a, b in SKELETON:
            if ok[a] and ok[b]:
                cv2.line(out, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), (0, 255, 0), 2 * scale, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(out, tuple(int(v) for v in kp[j]), 3 * scale, (255, 0, 0), -1, cv2.LINE_AA)
    cv2.putText(out, label, (8, 24 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), 3 * scale, cv2.LINE_AA)
    cv2.putText(out, label, (8, 24 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (200, 0, 0), scale, cv2.LINE_AA)
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2
    from rich.console import Console

    from posefw.cli import json_array
    from posefw.preprocess import read_image

    console = Console()
    image = read_image(args.image)
    boxes = _read_boxes(args.boxes, args.image)
    pipe, engine = _pipeline(args)
    (res,) = pipe([image], [boxes])
    label = f"posefw {args.engine}/{args.decoder} - {engine.weights}"
    vis = draw(image, res.keypoints, res.scores, boxes[res.valid], label)
    out = Path(args.out)
    if not cv2.imwrite(str(out), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR)):
        raise OSError(f"--out: could not write {out}")
    for e in res.errors:
        console.print(f"[yellow]skipped[/yellow] {e}")
    console.print(f"{int(res.valid.sum())} of {len(boxes)} boxes decoded ({engine.weights}) -> {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "image": args.image, "weights": engine.weights, "errors": res.errors,
            "keypoints": json_array(res.keypoints), "scores": json_array(res.scores)}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from posefw.coco import evaluate, load_persons
    from posefw.preprocess import read_image

    console = Console()
    persons = load_persons(args.annotations)
    if args.detections:
        from posefw.cli import load_json

        dets = load_json(args.detections, "--detections")
        dets = [d for d in dets if d.get("category_id", 1) == 1 and d.get("score", 1.0) >= args.det_threshold]
        by_image: dict[int, list] = {}
        for d in dets:
            by_image.setdefault(int(d["image_id"]), []).append((d["bbox"], d.get("score", 1.0)))
    else:
        by_image = {}
        for iid, box in zip(persons.image_ids, persons.boxes):
            by_image.setdefault(int(iid), []).append((box.tolist(), 1.0))
    pipe, engine = _pipeline(args)
    entries, skipped = [], []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(by_image))
        for iid, items in by_image.items():
            name = persons.images.get(iid)
            if name is None:
                skipped.append(f"image {iid}: not in the annotations")
                progress.advance(task)
                continue
            img = read_image(Path(args.images) / name)
            boxes = np.array([b for b, _ in items], np.float64)
            box_scores = np.array([s for _, s in items])
            (res,) = pipe([img], [boxes], image_ids=[iid])
            skipped += [f"image {iid} {e}" for e in res.errors]
            for j in np.flatnonzero(res.valid):
                s = np.nan_to_num(res.scores[j])
                good = s > 0.2
                inst = float(s[good].mean()) if good.any() else 0.0
                kp = np.concatenate([np.nan_to_num(res.keypoints[j]), s[:, None]], 1).reshape(-1)
                entries.append({"image_id": iid, "category_id": 1, "keypoints": kp.tolist(), "score": inst * box_scores[j]})
            progress.advance(task)
    stats = evaluate(args.annotations, entries)
    table = Table(title=f"COCO keypoints: {args.engine} + {args.decoder} ({args.algorithm}) - {engine.weights}")
    for col in ("AP", "AP50", "AP75", "AR"):
        table.add_column(col)
    table.add_row(*(f"{stats[m]:.4f}" for m in ("AP", "AP50", "AP75", "AR")))
    console.print(table)
    console.print(f"{len(entries)} instances from {len(by_image)} images; boxes: "
                  f"{'detections ' + args.detections if args.detections else 'ground truth'}; flip test {'on' if args.flip_test else 'off'}")
    for s in skipped:
        console.print(f"[yellow]skipped[/yellow] {s}")
    if args.json:
        Path(args.json).write_text(json.dumps({"stats": stats, "engine": engine.describe(), "decoder": args.decoder,
                                               "algorithm": args.algorithm, "flip_test": args.flip_test,
                                               "instances": len(entries), "skipped": skipped}, indent=1))
    return 0
