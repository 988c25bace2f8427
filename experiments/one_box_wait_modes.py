"""The one-box trace (``posefw.benchmarks.one_box_trace.trace``) under other host conditions,
to see whether the host steps' being ~3x slower in sequence than alone in a loop comes from
how the host waits: ``default``; ``pinned`` (run it under ``taskset -c 5``: no migration
between cores); ``pyspin`` (the wait a Python loop on ``Event.query`` instead of the driver's
synchronize); ``unmapped`` (only at commit 477d4a0, which had the mapped path:
``MAPPED_BOXES = 0``). Twice each, engine alone beside it.

Run on the GPU machine: ``python experiments/one_box_wait_modes.py default`` (docs/benchmarks.md,
session 6: run 22).
"""

import json
import os
import sys

import torch
from posefw.benchmarks.end_to_end import on_device, workload
from posefw.benchmarks.one_box_trace import trace
from posefw.benchmarks.timing import host_time

import posefw
from posefw.pipeline import Pipeline

mode = sys.argv[1]
if mode == "unmapped":
    import posefw.device_runner

    posefw.device_runner.MAPPED_BOXES = 0
if mode == "pyspin":

    def spin(self):
        while not self.query():
            pass

    torch.cuda.Event.synchronize = spin
engine = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
pipe = Pipeline(engine, posefw.create_decoder("cupy-full"), preprocess="gpu")
pipe.warm_up()
single, source = workload(1, calls=4)
run1 = engine.runner(1)
one = torch.randn((1, 3, 256, 192), device="cuda", dtype=torch.float16)
sync = torch.cuda.synchronize
if mode == "pyspin":
    ev = torch.cuda.Event()

    def sync():
        ev.record()
        ev.synchronize()


out = {}
for rep in range(2):
    base = host_time(lambda i: run1(one), 500, 20, sync).summary()["median_ms"] * 1e3
    host = trace(pipe, single)
    gpu = trace(pipe, on_device(single, "cuda"))
    out[rep] = dict(engine=base, host=host, gpu=gpu)
    print(
        f"{mode:8s} engine {base:6.1f} us  host frames {host['whole call']:6.1f} us = {host['whole call'] / base:.3f}x"
        f"  GPU frames {gpu['whole call']:6.1f} us = {gpu['whole call'] / base:.3f}x",
        flush=True,
    )
    print("   host steps:", "  ".join(f"{k.split(' -> ')[-1]} {v:.1f}" for k, v in host.items()), flush=True)
json.dump(out, open(os.environ.get("OUT", ".") + f"/trace-{mode}.json", "w"), indent=1)
