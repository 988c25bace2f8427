"""Why the bench's one-box latency rows read above the one-box trace, and how they move within one
process (session 7). Two modes, each in a process of its own:

- ``checks`` (run 28; run 27 had read 681 us in the bench's rows against 604-633 us traced in
  the same process), twice over: the engine alone and the pipeline (host frames) 500 calls
  each back to back; the trace's whole call; ``end_to_end.alternating_latency`` of the two in
  7 rounds; the pipeline's first calls after 71 of the engine's; the engine waited for by an
  event instead of a device-wide synchronize.
- ``timeline`` (run 29): the bench's alternating latency rows (engine, host frames, GPU frames;
  7 rounds, 500 calls) twelve times back to back, then after 20 s idle three times more, with
  the trace before, between and after: a warm-up, or phases of the host?
- ``paths`` (session 8, runs 31-33): the general path's trace against the one-box path's
  (posefw.one_box_call) in three rounds, the bench's latency rows twelve times back to back,
  then the bench's end-to-end rows; with ``$OUT`` set, everything as JSON in ``$OUT/e2e.json``.

Run on the GPU machine: ``python experiments/one_box_latency_over_time.py checks|timeline|paths``
(about 40 s to compile the engine first).
"""

import json
import os
import statistics
import sys
import time

import torch
from posefw.benchmarks import end_to_end as e2e
from posefw.benchmarks.one_box_trace import trace, trace_quick
from posefw.benchmarks.timing import host_time

import posefw

t0 = time.time()
eng = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
pipe = posefw.Pipeline(eng, posefw.create_decoder("cupy-full"), preprocess="gpu")
pipe.warm_up()
single, _ = e2e.workload(1, calls=4)
run1 = eng.runner(1)
one = torch.randn((1, 3, 256, 192)).to("cuda", torch.float16)
entries = {
    "engine": (lambda i: run1(one), torch.cuda.synchronize),
    "host": (e2e._blocking(pipe, single), None),
    "gpu": (e2e._blocking(pipe, e2e.on_device(single, "cuda")), None),
}
print(f"ready at {time.time() - t0:.0f} s")


def checks() -> None:
    engine, blocking = entries["engine"], entries["host"]

    def med(st) -> float:
        return round(st.median * 1e3, 1)

    ev = torch.cuda.Event()

    def engine_event(i):
        run1(one)
        ev.record()
        ev.synchronize()

    for rep in range(2):
        cons = med(host_time(engine[0], 500, 20, engine[1])), med(host_time(blocking[0], 500, 20))
        print(rep, "consecutive: engine", cons[0], "pipeline", cons[1])
        print(rep, "trace whole", round(trace(pipe, single)["whole call"], 1))
        lat = e2e.alternating_latency({"engine": engine, "pipe": blocking}, 500, 10, 7)
        rounds = [round(x * 1e3) for x in lat["pipe"]["rounds_median_ms"]]
        print(rep, "alternating engine/pipe", {k: round(v["median_ms"] * 1e3, 1) for k, v in lat.items()}, rounds)
        host_time(engine[0], 71, 2, engine[1])
        s = host_time(blocking[0], 71, 2).samples_ms
        parts = [round(statistics.median(s[a:b]) * 1e3) for a, b in ((0, 10), (10, 40), (40, 71))]
        print(rep, "after 71 engine calls, pipeline calls 1-10 / 11-40 / 41-71:", parts)
        print(rep, "engine with event wait", med(host_time(engine_event, 500, 20)))


def timeline() -> None:
    def one_set(tag: str) -> None:
        m = {k: v["median_ms"] * 1e3 for k, v in e2e.alternating_latency(entries, 500, 10, 7).items()}
        print(
            f"{tag} t={time.time() - t0:5.1f}s engine {m['engine']:.1f} host {m['host']:.1f} "
            f"({m['host'] / m['engine']:.3f}x) gpu {m['gpu']:.1f} ({m['gpu'] / m['engine']:.3f}x)",
            flush=True,
        )

    def steps(tag: str) -> None:
        s = trace(pipe, single, iters=300)
        print(tag, {k.split(" -> ")[-1]: round(v, 1) for k, v in s.items()}, flush=True)

    steps("trace first")
    for i in range(12):
        one_set(f"set {i:2d}")
    steps("trace after 12 sets")
    time.sleep(20)
    for i in range(3):
        one_set(f"after sleeping 20 s, set {i}")
    steps("trace last")


def paths() -> None:
    log: dict = {"trace": [], "timeline": []}
    gpu_single = e2e.on_device(single, "cuda")
    for rnd in range(3):
        base = host_time(lambda i: run1(one), 300, 20, torch.cuda.synchronize).median * 1e3
        for label, items in (("host", single), ("gpu", gpu_single)):
            g, q = trace(pipe, items, iters=400), trace_quick(pipe, items, iters=400)
            log["trace"].append({"round": rnd, "frames": label, "engine_us": base, "general": g, "quick": q})
            print(
                f"round {rnd} engine {base:.1f} | {label} general {g['whole call']:6.1f} = "
                f"{g['whole call'] / base:.3f}x | one-box path {q['whole call']:6.1f} = {q['whole call'] / base:.3f}x "
                + " ".join(f"{k.split(' -> ')[-1]} {v:.1f}" for k, v in q.items()),
                flush=True,
            )
    for i in range(12):
        m = {k: v["median_ms"] * 1e3 for k, v in e2e.alternating_latency(entries, 500, 10, 7).items()}
        log["timeline"].append(m)
        print(
            f"set {i:2d} t={time.time() - t0:5.1f}s engine {m['engine']:.1f} host {m['host']:.1f} "
            f"({m['host'] / m['engine']:.3f}x) gpu {m['gpu']:.1f} ({m['gpu'] / m['engine']:.3f}x)",
            flush=True,
        )
    rows = e2e.rows(eng, pipe.decoder, True, boxes=64, calls=20, warmup=3, rounds=7, latency_iters=500)
    for k, v in rows["throughput"].items():
        spread = [round(x, 3) for x in v.get("vs_engine_rounds", [])]
        print(f"{k:40s} {v['ms_per_call']:8.3f} ms {v['per_s']:7.0f}/s {v.get('vs_engine', 0):.3f} {spread}")
    for k, v in rows["latency"].items():
        spread = [round(x, 3) for x in v["vs_engine_latency_rounds"]]
        print(f"{k:32s} {v['median_ms']:.3f} ms x{v['vs_engine_latency']:.3f} {spread}")
    stages = rows["latency"]["pipeline: host frames, 1 box"]["stages_ms"]
    print("stages (ms)", {k: round(v, 4) for k, v in stages.items()})
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "e2e.json"), "w") as f:
            json.dump({"rows": rows, **log}, f, indent=1, default=str)


{"checks": checks, "timeline": timeline, "paths": paths}[sys.argv[1] if len(sys.argv) > 1 else "timeline"]()
