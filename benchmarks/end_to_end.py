"""End to end: frames and boxes in, keypoints out, beside the engine alone, in one process.

The workload is what a user runs: real coco-mini frames with their ground-truth boxes, taken in
file order until a call holds ``boxes`` boxes (the last frame's boxes cut to fit); without the
data, seeded synthetic 640x480 frames with boxes (the rows say so).

- Throughput: many calls back to back through ``Pipeline.stream`` (the next call's host work and
  upload overlap this one's compute), against the engine's own graph replays on crops already
  on the device, streamed the same way (:func:`queued_step`: one call queued behind the running
  one); each timed in steady state (:func:`steady_rate`), between two runs of the engine alone
  (:func:`bracketed`), so the GPU's clock drift cancels in each round's ratio.
- Latency: one blocking call at a time (one box per call), against one engine call, in
  alternating rounds too; medians over every round's samples, and each round's ratio.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from itertools import cycle
from typing import Any

import numpy as np
from posefw.benchmarks.timing import Stats, device_time, host_time

from posefw.pipeline import Pipeline


def workload(boxes: int, calls: int = 4, seed: int = 0) -> tuple[list[tuple[list, list, list]], str]:
    """``calls`` distinct calls of ``boxes`` boxes each, and where the frames came from."""
    pool, source = _pool(seed)
    out, k = [], 0
    for _ in range(calls):
        frames, bx, ids, have = [], [], [], 0
        while have < boxes:
            img, b, iid = pool[k % len(pool)]
            k += 1
            take = b[: boxes - have]
            frames.append(img)
            bx.append(take)
            ids.append(iid)
            have += len(take)
        out.append((frames, bx, ids))
    return out, source


@functools.cache
def _pool(seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], str]:
    """Every frame with its boxes, read once per process (the rows, the latency calls and the
    breakdown each ask for a workload)."""
    from posefw.coco import load_persons
    from posefw.data import coco_mini, coco_mini_annotations
    from posefw.images import read_image_cpu

    ann = coco_mini_annotations()
    pool: list[tuple[np.ndarray, np.ndarray, int]] = []
    if ann.is_file():
        persons = load_persons(ann)
        for iid in dict.fromkeys(persons.image_ids.tolist()):
            path = coco_mini() / "images" / "val2017" / persons.images[iid]
            if path.is_file():
                pool.append((read_image_cpu(path), persons.boxes[persons.image_ids == iid], iid))
    source = f"coco-mini val2017 ({len(pool)} frames, ground-truth boxes)"
    if not pool:
        rng = np.random.default_rng(seed)
        for i in range(24):
            xy = rng.uniform(0, 400, (3, 2))
            pool.append(
                (
                    rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                    np.concatenate([xy, rng.uniform(60, 220, (3, 2))], 1),
                    i,
                )
            )
        source = "synthetic 640x480 frames (coco-mini not found: set POSEFW_DATA)"
    return pool, source


def on_device(calls: list[tuple[list, list, list]], device: str) -> list[tuple[list, list, list]]:
    """The same calls with every frame already on the GPU (uploaded once, before timing)."""
    import torch

    return [([torch.from_numpy(f).to(device) for f in frames], bx, ids) for frames, bx, ids in calls]


def throughput(step: Callable[[], Any], calls: int, sync: Callable[[], None] | None) -> float:
    """Seconds per call for ``calls`` calls back to back, synchronizing once at the end."""
    t0 = time.perf_counter()
    for _ in range(calls):
        step()
    if sync:
        sync()
    return (time.perf_counter() - t0) / calls


def steady_rate(step: Callable[[], Any], calls: int) -> float:
    """Seconds per call in steady state, by the host clock: from one step's return to the
    ``calls``-th return after it. Each step returns as its oldest call in flight completes and
    leaves the next one queued, so the window holds exactly ``calls`` completions: no pipeline
    fill before the first (the host's work for a first call, with the device idle), no drain
    after the last, and none of the warm-up's calls still running."""
    step()
    t0 = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - t0) / calls


def queued_step(run: Callable[[Any], Any], inputs: list[Any], cuda: bool) -> Callable[[], Any]:
    """The engine alone as ``Pipeline.stream`` runs the pipeline: each step queues one call on
    the next input and returns once the call before it is done (on the CPU every call is done
    when it returns); ``step.close()`` waits for the last one."""
    import torch

    done = [torch.cuda.Event(), torch.cuda.Event()] if cuda else None
    k = [0]

    def step() -> Any:
        k[0] += 1
        out = run(inputs[k[0] % len(inputs)])
        if done is not None:
            done[k[0] % 2].record()
            done[(k[0] - 1) % 2].synchronize()  # (an event never recorded is complete)
        return out

    step.close = (lambda: done[k[0] % 2].synchronize()) if cuda else (lambda: None)  # type: ignore[attr-defined]
    return step


def stream_step(pipe: Pipeline, items: list) -> Callable[[], Any]:
    """One result per call from a stream that runs on across rounds (one call in flight);
    ``step.close()`` ends the stream (its call in flight finished)."""
    gen: Iterator = pipe.stream(cycle(items))

    def step() -> Any:
        return next(gen)

    step.close = gen.close  # type: ignore[attr-defined]
    return step


def bracketed(
    entries: dict[str, tuple[Callable[[], Any], int]], reference: str, calls: int, warmup: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Rounds of steady-state runs (:func:`steady_rate`) in which ``reference`` (the engine
    alone) runs before every other entry and once more after the last, so each entry's run sits
    between two of the reference's and its ratio in that round is against their mean.

    Why: a GPU's speed drifts over seconds (boost clocks, power, heat: ~5% between rounds on
    the H200), and an entry that follows an idle spell (the CPU-crop rows) runs fast. A fixed
    rotation keeps the same entry after the same one in every round, so the reference, always
    after the last row, gained ~5% on the pipelines in the previous method. The two runs beside
    each entry cancel linear drift. Each round starts at the next entry; an entry's first run
    steps ``warmup`` calls first, later ones two (to let the previous entry's last call drain).
    Per entry: median seconds per call over its runs, items/s, every run, and for the others
    the median of their per-round rate ratios (``vs_reference``) and each round's."""
    per: dict[str, list[float]] = {k: [] for k in entries}
    ratios: dict[str, list[float]] = {k: [] for k in entries if k != reference}
    out: dict[str, dict[str, Any]] = {}
    others = list(ratios)
    warm = dict.fromkeys(entries, warmup)

    def run(name: str) -> float:
        step, _ = entries[name]
        for _ in range(warm[name]):
            step()
        warm[name] = 2
        per[name].append(steady_rate(step, calls))
        return per[name][-1]

    ref_items = entries[reference][1]
    for r in range(rounds):
        before = run(reference)
        for name in others[r % len(others) :] + others[: r % len(others)] if others else []:
            if name in out:
                continue
            try:
                t = run(name)
            except Exception as exc:  # noqa: BLE001 - reported in that row; the others run on
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            after = run(reference)
            ratios[name].append((entries[name][1] / t) / (ref_items / ((before + after) / 2)))
            before = after
    for name, (_, items) in entries.items():
        if name in out:
            continue
        med = float(np.median(per[name]))
        out[name] = {"ms_per_call": med * 1e3, "items_per_call": items, "per_s": items / med}
        out[name]["runs_ms"] = [v * 1e3 for v in per[name]]
        if name in ratios:
            out[name]["vs_reference"] = float(np.median(ratios[name]))
            out[name]["vs_reference_rounds"] = ratios[name]
    return out


def rows(
    engine: Any,
    decoder: Any,
    cuda: bool,
    boxes: int = 64,
    calls: int = 30,
    warmup: int = 5,
    rounds: int = 5,
    latency_iters: int = 100,
    latency_warmup: int = 10,
) -> dict[str, Any]:
    """The end-to-end section of ``posefw bench``."""
    import torch

    dev = engine.runs_on if cuda else "cpu"
    work, source = workload(boxes, calls=4)
    single, _ = workload(1, calls=4)
    dtype = getattr(torch, engine.input_dtype)
    crops = [
        torch.randn((boxes, 3, 256, 192), generator=torch.Generator().manual_seed(i)).to(dev, dtype) for i in range(2)
    ]
    entries: dict[str, tuple[Callable[[], Any], int]] = {
        "engine only (crops on the device)": (queued_step(engine.runner(boxes), crops, cuda), boxes)
    }
    pipes: dict[str, Pipeline] = {}
    for flip in (False, True):
        label = "+flip" if flip else ""
        if cuda:  # one pipeline per stream of calls: each keeps its own call in flight
            pipes["gpu" + label] = host = Pipeline(engine, decoder, flip_test=flip, preprocess="gpu")
            entries[f"pipeline: host frames{label}"] = (stream_step(host, work), boxes)
            gpu = Pipeline(engine, decoder, flip_test=flip, preprocess="gpu")
            entries[f"pipeline: GPU frames{label}"] = (stream_step(gpu, on_device(work, dev)), boxes)
        pipes["cpu" + label] = cpu = Pipeline(engine, decoder, flip_test=flip, preprocess="cpu")
        name = f"pipeline: host frames, CPU crops{label}" if cuda else f"pipeline: host frames{label}"
        entries[name] = (stream_step(cpu, work), boxes)
    # The GPU rows in rounds of their own, the GPU kept busy; the CPU-crop rows (the GPU
    # mostly idle for seconds) after them, bracketed by the engine too.
    ref = "engine only (crops on the device)"
    slow = [name for name in entries if "CPU crops" in name]
    tp = bracketed({k: v for k, v in entries.items() if k not in slow}, ref, calls, warmup, rounds)
    if slow:
        cpu_rows = bracketed({k: entries[k] for k in [ref, *slow]}, ref, calls, warmup, rounds)
        tp.update({k: cpu_rows[k] for k in slow})
    for step, _ in entries.values():  # no stream paused with a call in flight while latency is measured
        step.close()
    tp[ref]["vs_engine"] = 1.0
    for name, r in tp.items():  # each box runs twice with the flip test: against half the engine
        if "vs_reference" in r:
            half = 2 if "+flip" in name else 1
            r["vs_engine"] = r["vs_reference"] * half
            r["vs_engine_rounds"] = [v * half for v in r["vs_reference_rounds"]]
    # Latency: one box per call, blocking; alternating rounds like the throughput rows.
    sync = torch.cuda.synchronize if cuda else None
    one = [torch.randn((1, 3, 256, 192)).to(dev, dtype)]
    run1 = engine.runner(1)
    w = latency_warmup
    main = pipes["gpu" if cuda else "cpu"]
    timed: dict[str, tuple[Callable[[int], Any], Callable[[], None] | None]] = {
        "engine only, batch 1": (lambda i: run1(one[0]), sync),
        "pipeline: host frames, 1 box": (_blocking(main, single), None),
    }
    if cuda:
        timed["pipeline: GPU frames, 1 box"] = (_blocking(main, on_device(single, dev)), None)
    lat = alternating_latency(timed, latency_iters, w, rounds)
    if cuda:
        lat["engine only, batch 1"]["device_median_ms"] = device_time(lambda i: run1(one[0]), latency_iters, w).median
    lat["pipeline: host frames, 1 box"]["stages_ms"] = latency_breakdown(main, single, latency_iters, w)
    ref = lat["engine only, batch 1"]
    for r in lat.values():
        r["vs_engine_latency"] = r["median_ms"] / ref["median_ms"]
        r["vs_engine_latency_rounds"] = [a / b for a, b in zip(r["rounds_median_ms"], ref["rounds_median_ms"])]
    return {
        "source": source,
        "boxes_per_call": boxes,
        "frames_per_call": [len(c[0]) for c in work],
        "calls_per_round": calls,
        "rounds": rounds,
        "throughput": tp,
        "latency": lat,
        "crops_on": {name: p.device for name, p in pipes.items()},
    }


def _blocking(pipe: Pipeline, items: list) -> Callable[[int], Any]:
    return lambda i: pipe(*items[i % len(items)])


def alternating_latency(
    entries: dict[str, tuple[Callable[[int], Any], Callable[[], None] | None]], iters: int, warmup: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Blocking calls (``fn(i)``, then ``sync``) timed in ``rounds`` alternating rounds of
    ``iters / rounds`` calls, each round starting at the next entry, so drift in the host's
    state (clock, caches, other tenants) falls on every entry alike rather than on whichever
    ran last. Per entry: the summary over all samples, and each round's median."""
    names = list(entries)
    per = {name: Stats() for name in names}
    rounds_ms: dict[str, list[float]] = {name: [] for name in names}
    rounds = max(1, rounds)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, sync = entries[name]
            st = host_time(fn, max(1, iters // rounds), warmup if r == 0 else min(warmup, 2), sync)
            per[name].samples_ms += st.samples_ms
            rounds_ms[name].append(st.median)
    return {name: {**per[name].summary(), "rounds_median_ms": rounds_ms[name]} for name in names}


def latency_breakdown(pipe: Pipeline, items: list, iters: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Where a blocking one-call's time goes, stage by stage as ``Pipeline.__call__`` runs them
    (host clock, milliseconds): on the runner's one-box path where it answers the calls (host
    work up to the launch, the wait, the read); else the general path's plan, launch, what
    overlaps the device, the wait, and what runs after it (``one_box_trace`` without the
    runner's inner steps)."""
    from posefw.benchmarks.one_box_trace import trace, trace_quick

    steps = trace_quick(pipe, items, iters, warmup)
    if steps is not None:
        stages: tuple[str, ...] = ("host work up to the launch", "wait for the device", "read the keypoints")
    else:
        stages = ("plan", "launch", "results (device busy)", "wait for the device", "unpack and scatter")
        steps = trace(pipe, items, iters, warmup, inside=False)
    return {name: us / 1e3 for name, us in zip((*stages, "whole call"), steps.values())}


def breakdown(engine: Any, decoder: Any, boxes: int = 64, iters: int = 50) -> dict[str, Any]:
    """Each stage of one GPU-path call alone, with the bytes it moves and the rate it reaches
    against what the machine does at best (pinned host->device copies for the upload, device
    copies for the crop kernel)."""
    import torch
    from posefw.benchmarks.timing import copy_bandwidth_gbs

    from posefw.crop_kernel import launch, read_windows

    (call,), source = workload(boxes, calls=1)
    pipe = Pipeline(engine, decoder, preprocess="gpu")
    runner = pipe.runner
    out: dict[str, Any] = {"source": source, "boxes": boxes, "frames": len(call[0])}
    plan = pipe.plan(*call)
    out["host: plan (checks, boxes)"] = host_time(lambda i: pipe.plan(*call), iters, 3).summary()
    job = runner.launch(plan)  # makes the slot, the graph and the staging buffers
    pipe.runner.finish(plan, job)
    slot = job.slot
    compute = torch.cuda.current_stream()

    def stage(i):
        slot.busy = False
        table = runner._frames(plan, slot, compute, True, False)[0]
        return runner._meta(plan, slot, table, pipe.chunks(plan.rows))

    torch.cuda.synchronize()
    out["host: staging copy + tables + upload launch"] = host_time(stage, iters, 3, torch.cuda.synchronize).summary()
    sizes = np.array([(f.height, f.width) for f in plan.frames])
    win = read_windows(plan.matrices, plan.frame_of_row, sizes)
    nbytes = int(((win[:, 1] - win[:, 0]) * (win[:, 3] - win[:, 2]) * 3).sum())
    src, dst = slot.pinned_frames[:nbytes], slot.device_frames[:nbytes]
    up = device_time(lambda i: dst.copy_(src, non_blocking=True), iters, 3).median
    big = torch.empty(256 << 20, dtype=torch.uint8, pin_memory=True)
    big_dev = torch.empty_like(big, device="cuda")
    peak = device_time(lambda i: big_dev.copy_(big, non_blocking=True), 10, 2).median
    out["upload"] = {
        "median_ms": up,
        "bytes": nbytes,
        "whole_frames_bytes": sum(f.nbytes for f in plan.frames),
        "GB_s": nbytes / up / 1e6,
        "pinned_h2d_peak_GB_s": big.numel() / peak / 1e6,
    }
    n = plan.rows
    crops = torch.empty((n, 3, 256, 192), dtype=getattr(torch, engine.input_dtype), device="cuda")
    ints, floats = runner.ints[:n], runner.floats[:n]
    t = device_time(lambda i: launch(ints, floats, crops, n), iters, 3).median
    written = crops.numel() * crops.element_size()
    read = n * 256 * 192 * 3  # one uint8 sample per channel and pixel at least (neighbours hit the cache)
    out["crop kernel"] = {
        "median_ms": t,
        "bytes_written": written,
        "bytes_read_min": read,
        "GB_s": (written + read) / t / 1e6,
        "copy_peak_GB_s": copy_bandwidth_gbs(1 << 30),
    }
    run = engine.runner(n)
    out["engine (graph replay)"] = {"median_ms": device_time(lambda i: run(crops), iters, 3).median}
    hm = run(crops).float().clone()
    c, s = runner.centers[:n], runner.scales[:n]
    out["decode"] = {
        "median_ms": device_time(lambda i: decoder.decode(hm, c, s), iters, 3).median,
        "decoder": decoder.name,
    }
    res = torch.empty((n, hm.shape[1], 3), device="cuda")
    host = torch.empty(res.shape, pin_memory=True)
    out["readback"] = {
        "median_ms": device_time(lambda i: host.copy_(res, non_blocking=True), iters, 3).median,
        "bytes": res.numel() * 4,
    }
    whole = stream_step(pipe, [call])
    for _ in range(5):
        whole()
    out["whole call, streamed"] = {"ms_per_call": throughput(whole, iters, torch.cuda.synchronize) * 1e3}
    return out
