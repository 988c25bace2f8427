"""The crop kernel's tile shapes against the untiled kernel (64 boxes and 1 box, windows and
GPU frames, L2 flushed before each launch), the device time of the engine alone against the
pipeline's graph (64 and 1 box), and the host cost of a small host-to-device copy's launch by
torch, CuPy and ctypes' cudart, of an event record and of a one-box replay.

Run on the GPU machine from the checkout, with the untiled kernel as a file beside it:
``git show 90b4114:posefw/crop_kernel.py > /tmp/crop_kernel_old.py`` then
``OLD=/tmp python experiments/crop_tiles_and_launch_costs.py`` (docs/benchmarks.md, session
6: run 21). A "cold" figure is the one to read: the L2 flush queued ahead of the launch hides
the host's launch; a "warm" one includes it.
"""

import ctypes
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.environ["OLD"])
import crop_kernel_old as old  # noqa: E402
from posefw.benchmarks import end_to_end as e2e  # noqa: E402
from posefw.benchmarks.timing import device_time, host_time  # noqa: E402

import posefw  # noqa: E402
from posefw import crop_kernel as new  # noqa: E402
from posefw.pipeline import Pipeline  # noqa: E402

OUT = os.environ.get("OUT", ".")
res = {}
eng = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
dec = posefw.create_decoder("cupy-full")
pipe = Pipeline(eng, dec, preprocess="gpu")
pipe.warm_up()
run = pipe.runner
flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
for boxes in (64, 1):
    work, _ = e2e.workload(boxes, calls=4)
    gw = e2e.on_device(work, "cuda")
    crops = torch.empty((boxes, 3, 256, 192), dtype=torch.float16, device="cuda")
    for label, items in (("windows", work), ("gpu frames", gw)):
        plans = []
        for i in range(4):
            plan = pipe.plan(*items[i])
            job = run.launch(plan)
            run.finish(plan, job)
            plans.append((plan.rows, run.ints[: plan.rows].clone(), run.floats[: plan.rows].clone(), job))
        variants = {"old": lambda a, b, c, n: old.launch(a, b, c, n)}
        for tr, tc in ((16, 64), (8, 64), (32, 64), (4, 64), (8, 32), (16, 32)):

            def v(a, b, c, n, tr=tr, tc=tc):
                new.TILE_ROWS, new.TILE_COLS = tr, tc
                new.launch(a, b, c, n)

            variants[f"tile {tr}x{tc}"] = v
        ref = None
        for name, fn in variants.items():
            cold, warm = [], []
            for i in range(40):
                n, ints, floats, job = plans[i % 4]
                flush.fill_(i & 255)
                for lst in (cold, warm):
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    fn(ints, floats, crops[:n], n)
                    b.record()
                    b.synchronize()
                    lst.append(a.elapsed_time(b) * 1e3)
            n, ints, floats, job = plans[0]
            fn(ints, floats, crops[:n], n)
            out = crops[:n].clone()
            same = None if ref is None else bool(torch.equal(out, ref))
            ref = out if ref is None else ref
            r = res[f"crop {boxes} {label} {name}"] = dict(
                cold_us=statistics.median(cold), warm_us=statistics.median(warm), same_as_old=same
            )
            print(
                f"crop {boxes:2d} {label:10s} {name:12s} cold {r['cold_us']:7.1f} us  warm {r['warm_us']:7.1f} us  same {same}",
                flush=True,
            )
new.TILE_ROWS, new.TILE_COLS = 16, 64

# device time: engine alone vs the pipeline's graph (64 and 1)
for n in (64, 1):
    x = torch.randn((n, 3, 256, 192), device="cuda", dtype=torch.float16)
    r1 = eng.runner(n)
    step = run._step(n)
    res[f"device engine alone {n}"] = device_time(lambda i: r1(x), 200, 20).median
    res[f"device pipeline graph {n}"] = device_time(lambda i: step(None, None), 200, 20).median
    res[f"host engine alone {n}"] = host_time(lambda i: r1(x), 200, 20, torch.cuda.synchronize).median
    res[f"host pipeline graph {n}"] = host_time(lambda i: step(None, None), 200, 20, torch.cuda.synchronize).median
    print(n, {k: round(v, 4) for k, v in res.items() if k.endswith(f" {n}")}, flush=True)

# the launch cost of one small H2D copy (pinned -> device), host clock, no sync in the loop
src = torch.empty(64 << 10, dtype=torch.uint8, pin_memory=True)
dst = torch.empty(64 << 10, dtype=torch.uint8, device="cuda")
s16, d16 = src[: 16 << 10], dst[: 16 << 10]
stream = torch.cuda.current_stream()


def per_call(fn, n=2000):
    for _ in range(100):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
        if len(ts) % 50 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return statistics.median(ts) * 1e6


res["h2d torch copy_"] = per_call(lambda: d16.copy_(s16, non_blocking=True))
try:
    import cupy

    rt = cupy.cuda.runtime
    sp, dp, sptr = src.data_ptr(), dst.data_ptr(), stream.cuda_stream
    res["h2d cupy memcpyAsync"] = per_call(lambda: rt.memcpyAsync(dp, sp, 16 << 10, rt.memcpyHostToDevice, sptr))
except Exception as exc:
    print("cupy", exc)
try:
    lib = None
    for line in open("/proc/self/maps"):
        if "libcudart.so" in line:
            lib = line.split()[-1]
            break
    print("cudart", lib)
    cudart = ctypes.CDLL(lib)
    f = cudart.cudaMemcpyAsync
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
    f.restype = ctypes.c_int
    sp, dp, sptr = src.data_ptr(), dst.data_ptr(), stream.cuda_stream
    res["h2d ctypes cudaMemcpyAsync"] = per_call(lambda: f(dp, sp, 16 << 10, 1, sptr))
except Exception as exc:
    print("ctypes", exc)
ev = torch.cuda.Event()
res["event record"] = per_call(lambda: ev.record(stream))
res["torch.cuda.current_device"] = per_call(lambda: torch.cuda.current_device())
g = run._step(1)
res["replay 1 (wrapper)"] = per_call(lambda: g(None, None), 500)
print({k: round(v, 2) for k, v in res.items() if not k.startswith(("crop", "device", "host"))}, flush=True)
json.dump(res, open(OUT + "/diag21.json", "w"), indent=1)
