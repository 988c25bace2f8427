"""``posefw run``: camera streams in, one JSON line of poses per frame out; ``posefw sources list``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

#: Box file formats by suffix when --box-format is not given.
BOX_FORMATS = {".json": "coco-dets", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "mot"}


def add_parser(sub) -> None:
    from posefw.commands_model import add_model_arguments

    src = sub.add_parser("sources", help="frame and box sources installed through plugins")
    ssub = src.add_subparsers(dest="action", metavar="ACTION", required=True)
    ssub.add_parser("list", help="list frame and box sources with their status").set_defaults(func=cmd_sources)

    p = sub.add_parser("run", help="pose every frame of one or more video/image streams")
    p.add_argument(
        "--source", action="append", required=True, help="video file or image folder; repeat for more streams"
    )
    p.add_argument(
        "--boxes",
        action="append",
        required=True,
        help="detections file: once for all streams, or once per --source in the same order",
    )
    p.add_argument(
        "--box-format",
        default=None,
        help="box source name (default by suffix: .json coco-dets, .jsonl jsonl, .txt mot)",
    )
    p.add_argument("--frame-source", default=None, help="frame source name (default: chosen per --source)")
    p.add_argument("--min-score", type=float, default=0.0, help="leave out detections scored below this")
    p.add_argument(
        "--detect-every",
        type=int,
        default=1,
        help="take the detector's boxes every N frames and follow each person's keypoints in between",
    )
    p.add_argument(
        "--follow-score",
        type=float,
        default=0.3,
        help="with --detect-every: keypoints at least this confident make a person's next box",
    )
    p.add_argument("--tracker", default="iou", choices=("iou", "none"), help="track ids (default: IoU tracker)")
    p.add_argument("--max-frames", type=int, default=None, help="stop each stream after this many frames")
    p.add_argument("--out", required=True, help="JSON lines: one per frame, plus one per stream problem")
    p.add_argument("--render", default=None, help="also write the video with skeletons (one per stream: -NAME)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of --render when the source has none")
    add_model_arguments(p)
    p.set_defaults(func=cmd_run)


def cmd_sources(args: argparse.Namespace) -> int:
    from rich.table import Table

    import posefw
    from posefw.console import console, status_markup

    reg = posefw.get_registry()
    table = Table(title="posefw sources")
    for col in ("kind", "name", "opens", "device", "status", "provided by"):
        table.add_column(col)
    for kind in ("frame-source", "box-source"):
        for i in reg.backends(kind):
            opens = " ".join(getattr(i.cls, "suffixes", ())) if i.cls is not None else ""
            table.add_row(kind, i.name, opens, i.device, status_markup(i), f"{i.provider} ({i.plugin})")
    console().print(table)
    return 0


def _names(paths: list[str]) -> list[str]:
    """Stream names: each source's file or folder name, numbered where two share one."""
    stems = [Path(p).stem or Path(p).name for p in paths]
    return [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]


def build_streams(args: argparse.Namespace, device: str, problems: list[str]) -> list[Any]:
    """A Stream per --source; one that cannot be opened is a problem, not the end of the run."""
    import inspect

    import posefw
    from posefw.multistream import Stream
    from posefw.streams import frame_source_for
    from posefw.tracking import IoUTracker, TrackedBoxes

    if len(args.boxes) not in (1, len(args.source)):
        raise ValueError(f"--boxes: give one file for all streams or one per --source ({len(args.source)})")
    reg = posefw.get_registry()
    streams = []
    for i, (path, name) in enumerate(zip(args.source, _names(args.source))):
        box_path = args.boxes[0 if len(args.boxes) == 1 else i]
        fmt = args.box_format or BOX_FORMATS.get(Path(box_path).suffix.lower())
        if fmt is None:
            known = sorted(set(BOX_FORMATS.values()))
            raise ValueError(f"--box-format: cannot tell the format of {box_path}; give one of {known}")
        try:
            cls = frame_source_for(path, device, args.frame_source)
            opts = {"device": device} if "device" in inspect.signature(cls).parameters else {}
            frames = cls(path, stream=name, **opts)
            boxes = reg.create("box-source", fmt, path=box_path, stream=name, min_score=args.min_score)
        except (OSError, ValueError, LookupError) as exc:
            problems.append(f"stream {name}: {exc}")
            continue
        tracker = IoUTracker() if args.tracker == "iou" else None
        if tracker is not None or args.detect_every > 1:
            boxes = TrackedBoxes(boxes, tracker, args.detect_every, args.follow_score)
        streams.append(Stream(frames, boxes))
    return streams


def cmd_run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from posefw.commands_model import _pipeline
    from posefw.console import console as make_console
    from posefw.multistream import StreamRun
    from posefw.outputs import atomic_path, check_target

    console = make_console()
    if args.detect_every < 1:
        raise ValueError(f"--detect-every: expected an integer >= 1, got {args.detect_every}")
    check_target(args.out, "--out")
    if args.render:
        check_target(args.render, "--render")
    pipe, engine = _pipeline(args)
    problems: list[str] = []
    streams = build_streams(args, pipe.device, problems)
    writers: dict[str, Any] = {}
    with atomic_path(args.out, "--out") as tmp, tmp.open("w") as out:
        for p in problems:  # streams that never opened: a line each, then the others run
            out.write(_problem_line(p))
        run = StreamRun(pipe, streams, max_frames=args.max_frames) if streams else None
        start = time.perf_counter()
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("starting", total=None)
            for res in run or ():
                out.write(json.dumps(res.record()) + "\n")
                if args.render:
                    _render(args, res, writers, engine, pipe, len(streams))
                dt = max(time.perf_counter() - start, 1e-9)
                progress.update(
                    task,
                    description=f"{run.frames_done} frames, {run.frames_done / dt:.1f} frames/s, "
                    f"{run.boxes_done / dt:.1f} boxes/s",
                )
        for w in writers.values():
            w.close()
        for p in run.problems if run is not None else ():  # broken streams, unusable box entries
            out.write(_problem_line(p))
    elapsed = time.perf_counter() - start
    for p in problems + (run.problems if run else []):
        console.print(f"[yellow]problem[/yellow] {escape(p)}")  # reasons hold pip extras in brackets
    if run is None:
        console.print("[red]no stream could be opened[/red]")
        return 1
    sizes = run.batches
    console.print(
        f"{run.frames_done} frames, {run.boxes_done} boxes from {len(streams)} streams in {elapsed:.1f} s "
        f"({run.frames_done / elapsed:.1f} frames/s, {run.boxes_done / elapsed:.1f} boxes/s); "
        f"{len(sizes)} engine calls of {min(sizes, default=0)}-{max(sizes, default=0)} boxes -> {args.out}"
        + (f", videos: {', '.join(str(w.path) for w in writers.values())}" if writers else "")
    )
    return 0


def _problem_line(problem: str) -> str:
    """A JSON line for a problem that is not one frame's: its stream (when it names one) and text."""
    stream = problem.split(":")[0].removeprefix("stream ") if problem.startswith("stream ") else None
    return json.dumps({"stream": stream, "frame": None, "errors": [problem]}) + "\n"


def _render(args: argparse.Namespace, res: Any, writers: dict, engine: Any, pipe: Any, n_streams: int) -> None:
    from posefw.drawing import draw
    from posefw.frames import as_frame
    from posefw.video_out import VideoWriter

    f = res.frame
    if f.image is None:
        return
    name = f.stream
    if name not in writers:
        target = Path(args.render)
        if n_streams > 1:
            target = target.with_name(f"{target.stem}-{name}{target.suffix}")
        writers[name] = VideoWriter(target, args.fps)
    image = as_frame(f.image, 0).host()
    kp = res.keypoints if res.keypoints is not None else []
    sc = res.scores if res.scores is not None else []
    label = f"{name} #{f.index} - {engine.name}/{pipe.decoder.name}"
    writers[name].write(draw(image, kp, sc, res.detections.boxes, label))
