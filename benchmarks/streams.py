"""Many camera streams through one pipeline (``posefw run``'s loop), beside the engine alone.

The workload is real video: files made from coco-mini frames with their ground-truth boxes
(:mod:`posefw.testing.videos`), each opened ``copies`` times as separate streams. A warm-up pass
captures the graphs and opens the decoders once; each timed pass then opens every stream anew
and runs it to its end, decode included, as ``posefw run`` does. The engine alone runs the same
number of boxes in full batches on crops already on the device, in the same process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def make_streams(
    pipeline: Any, videos: list[tuple[Path, Path]], copies: int, frame_source: str | None = None, **source_options: Any
) -> Callable[[], list[Any]]:
    """A function that opens ``copies`` streams of every (video, detections) pair."""
    import posefw
    from posefw.multistream import Stream
    from posefw.streams import frame_source_for

    reg = posefw.get_registry()

    def build() -> list[Any]:
        out = []
        for c in range(copies):
            for video, dets in videos:
                cls = frame_source_for(video, pipeline.device, frame_source)
                name = f"{Path(video).stem}-{c}"
                out.append(
                    Stream(cls(video, stream=name), reg.create("box-source", "coco-dets", path=dets, stream=name))
                )
        return out

    return build


def run_pass(pipeline: Any, streams: list[Any], sync: Callable[[], None] | None) -> dict[str, Any]:
    from posefw.multistream import StreamRun

    t0 = time.perf_counter()
    run = StreamRun(pipeline, streams)
    frames = sum(1 for _ in run)
    if sync:
        sync()
    dt = time.perf_counter() - t0
    return {
        "streams": len(streams),
        "seconds": dt,
        "frames": frames,
        "boxes": run.boxes_done,
        "calls": len(run.batches),
        "boxes_per_call": float(np.mean(run.batches)) if run.batches else 0.0,
        "problems": run.problems,
    }


def measure(pipeline: Any, build: Callable[[], list[Any]], passes: int = 3) -> dict[str, Any]:
    """Timed passes over every stream, and the engine alone on the same number of boxes."""
    import torch
    from posefw.benchmarks.end_to_end import throughput

    cuda = str(pipeline.device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    warm = run_pass(pipeline, build(), sync)
    runs = [run_pass(pipeline, build(), sync) for _ in range(passes)]
    engine = pipeline.engine
    batch = pipeline.per_batch
    dev = engine.runs_on if cuda else "cpu"
    crops = torch.randn((batch, 3, 256, 192)).to(dev, getattr(torch, engine.input_dtype))
    step = engine.runner(batch)
    calls = max(1, round(runs[0]["boxes"] / batch))
    for _ in range(3):
        step(crops)
    eng = [throughput(lambda: step(crops), calls, sync) for _ in range(passes)]
    boxes_s = float(np.median([r["boxes"] / r["seconds"] for r in runs]))
    engine_s = batch / float(np.median(eng))
    return {
        "streams": warm["streams"],
        "warm_up": warm,
        "passes": runs,
        "frames_per_s": float(np.median([r["frames"] / r["seconds"] for r in runs])),
        "boxes_per_s": boxes_s,
        "engine_boxes_per_s": engine_s,
        "vs_engine": boxes_s / engine_s,
        "engine_batch": batch,
    }
