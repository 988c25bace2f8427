"""Where a blocking call's host time goes, step by step, timestamped inside one real call.

``end_to_end.latency_breakdown`` times the pipeline's stages (plan, launch, wait, ...); this
goes inside the GPU path's launch too (the general path; ``trace_quick`` times the one-box path
a blocking one-box call takes): staging the frames, the box tables, the graph replay and
what follows it, each boundary stamped by the host clock in the same call, so the steps add up
to the whole call (each stamp costs ~0.3 us). A step alone in a loop runs with hot caches and
takes a third of what it takes in sequence, so only this shows the critical path as it is.

Run on a GPU machine: ``python -m posefw.benchmarks.one_box_trace`` (ViTPose-B fp16 with CUDA
graphs, cupy-full; one coco-mini box per call, against the engine alone at batch 1).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from posefw.pipeline import Pipeline

#: Step boundaries in call order; those inside ``launch`` exist on the GPU path only.
MARKS = ("start", "planned", "frames0", "frames1", "meta0", "meta1", "replay0", "replay1", "launched")
AFTER = ("results", "waited", "end")


def trace(pipe: Pipeline, items: list, iters: int = 500, warmup: int = 20, inside: bool = True) -> dict[str, float]:
    """Median microseconds of each step of a blocking call (``items`` in rotation), and of the
    whole call. With ``inside`` (and a GPU-path runner) the runner's steps are stamped too: its
    methods are wrapped on the instance for the run, then restored."""
    stamps: dict[str, float] = {}
    clock = time.perf_counter
    run = pipe.runner
    saved: dict[str, Any] = {}

    def wrap(name: str, before: str, after: str) -> None:
        fn = saved[name] = getattr(run, name)

        def timed(*args: Any, **kw: Any) -> Any:
            stamps[before] = clock()
            out = fn(*args, **kw)
            stamps[after] = clock()
            return out

        setattr(run, name, timed)

    inside = inside and hasattr(run, "_frames")
    if inside:
        wrap("_frames", "frames0", "frames1")
        wrap("_meta", "meta0", "meta1")
        wrap("_replay", "replay0", "replay1")
    keys = [k for k in MARKS if inside or k in ("start", "planned", "launched")] + list(AFTER)
    rows = []
    try:
        for i in range(warmup + iters):
            frames, boxes, ids = items[i % len(items)]
            stamps["start"] = clock()
            plan = pipe.plan(frames, boxes, ids)
            stamps["planned"] = clock()
            handle = run.launch(plan)
            stamps["launched"] = clock()
            pipe.results_of(plan)
            stamps["results"] = clock()
            done = getattr(getattr(handle, "slot", None), "done", None)
            if done is not None:
                done.synchronize()
            stamps["waited"] = clock()
            pipe._finish(plan, handle)
            stamps["end"] = clock()
            if i >= warmup:
                rows.append([stamps[k] for k in keys])
    finally:
        for name in saved:
            delattr(run, name)  # the class's methods again
    at = np.diff(np.array(rows), axis=1) * 1e6
    steps = {f"{a} -> {b}": float(np.median(at[:, j])) for j, (a, b) in enumerate(zip(keys, keys[1:]))}
    steps["whole call"] = float(np.median(at.sum(axis=1)))
    return steps


#: The one-box path's steps: its host work up to the launch, the wait, reading the keypoints.
QUICK_STEPS = ("start -> launched", "launched -> waited", "waited -> end")


def trace_quick(pipe: Pipeline, items: list, iters: int = 500, warmup: int = 20) -> dict[str, float] | None:
    """The same for the runner's one-box path (``Pipeline.__call__`` tries it first,
    :mod:`posefw.one_box_call`): its host work up to the launch, the wait, the read. None where
    the pipeline has none or it does not answer an item (the call would take the general path)."""
    quick = getattr(pipe, "_quick", None)
    if quick is None:
        return None
    clock = time.perf_counter
    rows = []
    for i in range(warmup + iters):
        frames, boxes, ids = items[i % len(items)]
        t0 = clock()
        token = quick.start(frames, boxes, ids)
        t1 = clock()
        if token is None:
            return None
        quick.done.synchronize()
        t2 = clock()
        quick.finish(token)
        t3 = clock()
        if i >= warmup:
            rows.append((t0, t1, t2, t3))
    at = np.diff(np.array(rows), axis=1) * 1e6
    steps = {k: float(np.median(at[:, j])) for j, k in enumerate(QUICK_STEPS)}
    steps["whole call"] = float(np.median(at.sum(axis=1)))
    return steps


def main() -> None:
    import torch
    from posefw.benchmarks.end_to_end import on_device, workload
    from posefw.benchmarks.timing import host_time

    import posefw
    from posefw import cudart

    engine = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
    pipe = Pipeline(engine, posefw.create_decoder("cupy-full"), preprocess="gpu")
    pipe.warm_up()
    single, source = workload(1, calls=4)
    run1 = engine.runner(1)
    one = torch.randn((1, 3, 256, 192), device="cuda", dtype=getattr(torch, engine.input_dtype))
    runtime = pipe.runner.rt
    print(source)
    print(f"launch calls: {runtime.path if runtime else 'torch (' + str(cudart.unavailable()) + ')'}")
    modes = {"runtime calls": runtime, "torch calls": None} if runtime else {"torch calls": None}
    for rnd in range(2):  # the modes alternate, so drift between them falls on both
        base = host_time(lambda i: run1(one), 500, 20, torch.cuda.synchronize).summary()["median_ms"] * 1e3
        print(f"[round {rnd}] engine alone, batch 1: {base:.1f} us")
        for mode, rt in modes.items():
            pipe.runner.rt = rt
            for label, items in (("host frames", single), ("GPU frames", on_device(single, "cuda"))):
                paths = {"general path": trace(pipe, items)}
                if mode == "runtime calls":  # (the one-box path needs the runtime)
                    paths["one-box path"] = trace_quick(pipe, items)
                for path, steps in paths.items():
                    if steps is None:
                        print(f"[round {rnd}, {mode}] {label}: the one-box path does not answer these calls")
                        continue
                    whole = steps["whole call"]
                    print(
                        f"[round {rnd}, {mode}] {label}, {path}: {whole:.1f} us = {whole / base:.3f}x the engine alone"
                    )
                    for name, us in steps.items():
                        print(f"  {name:24s} {us:7.1f} us")
    pipe.runner.rt = runtime


if __name__ == "__main__":
    main()
