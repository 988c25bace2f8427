"""Why GPU frames trailed host frames at 64 boxes in the bench rows: per call, the device span
(a CUDA event before each launch to one after it) and the idle gap to the next call, in
``Pipeline.stream``'s steady state, host frames and frames already on the GPU, twice each.

Run on the GPU machine from the checkout: ``python experiments/pipeline_device_spans.py``
(docs/benchmarks.md, session 6: run 20). It ended with a crop-kernel timing that is left
out here: its "warm" figure included the kernel's launch from the host.
"""

import json
import os
import statistics
import time

import torch
from posefw.benchmarks import end_to_end as e2e

import posefw
from posefw.pipeline import Pipeline

eng = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
dec = posefw.create_decoder("cupy-full")
work, _ = e2e.workload(64, calls=4)
gw = e2e.on_device(work, "cuda")
res = {}
for label, items in (("host", work), ("gpu", gw), ("host2", work), ("gpu2", gw)):
    pipe = Pipeline(eng, dec, preprocess="gpu")
    pipe.warm_up()
    run = pipe.runner
    ev0, ev1, host_launch = [], [], []
    orig = run.launch

    def launch(plan, orig=orig, ev0=ev0, ev1=ev1, host_launch=host_launch):
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        t = time.perf_counter()
        job = orig(plan)
        host_launch.append(time.perf_counter() - t)
        e1 = torch.cuda.Event(enable_timing=True)
        e1.record()
        ev0.append(e)
        ev1.append(e1)
        return job

    run.launch = launch
    gen = pipe.stream(items[i % 4] for i in range(10**9))
    for _ in range(10):
        next(gen)
    torch.cuda.synchronize()
    ev0.clear()
    ev1.clear()
    host_launch.clear()
    t0 = time.perf_counter()
    for _ in range(60):
        next(gen)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / 60
    gen.close()
    spans = [a.elapsed_time(b) for a, b in zip(ev0, ev1)]
    gaps = [ev1[i].elapsed_time(ev0[i + 1]) for i in range(len(ev0) - 1)]
    res[label] = dict(
        wall_ms=wall * 1e3,
        span_ms=statistics.median(spans),
        gap_ms=statistics.median(gaps),
        gap_max=max(gaps),
        launch_host_ms=statistics.median(host_launch) * 1e3,
    )
    print(label, {k: round(v, 4) for k, v in res[label].items()}, flush=True)
    del run.launch

json.dump(res, open(os.environ.get("OUT", ".") + "/pipeline-device-spans.json", "w"), indent=1)
