"""The two preconditions of the mapped path tried in session 6 (commit 477d4a0, not kept): the
crop kernel reads a window from pinned host memory (mapped into the device's address space)
as it reads it from device memory, and a host-to-device copy captured in a CUDA graph reads
the pinned block's contents at replay. Both held on the H200 (run 22). Its crop timings are
not usable: the L2 flush queued ahead of each launch was shorter than the launch itself, so
they include the host's launch (80 us for one crop, where run 21 measured 5-13 us).

Run on the GPU machine: ``python experiments/zero_copy_reads.py``.
"""

import json
import os
import statistics

import numpy as np
import torch

from posefw.benchmarks.end_to_end import workload
from posefw.crop_kernel import crop_matrices, launch, read_windows
from posefw.transforms import box_to_center_scale

out = {}
flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
for nb in (1, 4, 8):
    work, _ = workload(nb, calls=4)
    for where in ("device", "pinned"):
        ts = []
        for i in range(60):
            frames, bx, ids = work[i % 4]
            boxes = np.concatenate(bx)
            fr = np.repeat(np.arange(len(frames)), [len(b) for b in bx])
            c, s = box_to_center_scale(boxes)
            m = crop_matrices(c, s, True).reshape(-1, 6)
            win = read_windows(m, fr, [f.shape[:2] for f in frames])
            ints = torch.zeros((nb, 8), dtype=torch.int64)
            floats = torch.zeros((nb, 8), dtype=torch.float64)
            bufs = []
            for j, f in enumerate(frames):
                y0, y1, x0, x1 = win[j].tolist()
                w = np.ascontiguousarray(f[y0:y1, x0:x1])
                t = torch.from_numpy(w).pin_memory() if where == "pinned" else torch.from_numpy(w).cuda()
                bufs.append(t)
                rw = x1 - x0
                ints[fr == j, :6] = torch.tensor(
                    [t.data_ptr() - y0 * rw * 3 - x0 * 3, f.shape[0], f.shape[1], rw * 3, 3, 1]
                )
            floats[:, :6] = torch.from_numpy(m)
            di, df = ints.cuda(), floats.cuda()
            crops = torch.empty((nb, 3, 256, 192), dtype=torch.float16, device="cuda")
            torch.cuda.synchronize()
            flush.fill_(i & 255)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            launch(di, df, crops, nb)
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) * 1e3)
        out[f"crop {nb} {where}"] = statistics.median(ts)
        print(
            f"crop {nb} boxes, window in {where} memory: {statistics.median(ts):.1f} us (median of 60, L2 flushed)",
            flush=True,
        )
# equality: one call both ways
frames, bx, ids = workload(1, calls=1)[0][0]
f = frames[0]
c, s = box_to_center_scale(bx[0])
m = crop_matrices(c, s, True).reshape(-1, 6)
y0, y1, x0, x1 = read_windows(m, np.zeros(1, np.int64), [f.shape[:2]])[0].tolist()
w = np.ascontiguousarray(f[y0:y1, x0:x1])
rw = x1 - x0
res = []
for t in (torch.from_numpy(w).cuda(), torch.from_numpy(w).pin_memory()):
    ints = torch.zeros((1, 8), dtype=torch.int64)
    ints[0, :6] = torch.tensor([t.data_ptr() - y0 * rw * 3 - x0 * 3, f.shape[0], f.shape[1], rw * 3, 3, 1])
    floats = torch.zeros((1, 8), dtype=torch.float64)
    floats[0, :6] = torch.from_numpy(m[0])
    crops = torch.empty((1, 3, 256, 192), dtype=torch.float16, device="cuda")
    launch(ints.cuda(), floats.cuda(), crops, 1)
    torch.cuda.synchronize()
    res.append(crops.clone())
out["pinned equals device"] = bool(torch.equal(res[0], res[1]))
print("pinned equals device:", out["pinned equals device"])
# a captured H2D copy of a table block from fixed pinned memory
src = torch.zeros(16 << 10, dtype=torch.uint8).pin_memory()
dst = torch.zeros(16 << 10, dtype=torch.uint8, device="cuda")
g = torch.cuda.CUDAGraph()
s = torch.cuda.Stream()
with torch.cuda.graph(g, stream=s):
    dst.copy_(src, non_blocking=True)
src.fill_(7)
g.replay()
torch.cuda.synchronize()
out["captured copy sees new host data"] = bool((dst == 7).all())
ts = []
for i in range(100):
    flush.fill_(1)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    g.replay()
    b.record()
    b.synchronize()
    ts.append(a.elapsed_time(b) * 1e3)
out["captured 16 KiB copy us"] = statistics.median(ts)
ts = []
for i in range(100):
    flush.fill_(1)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    dst.copy_(src, non_blocking=True)
    b.record()
    b.synchronize()
    ts.append(a.elapsed_time(b) * 1e3)
out["plain 16 KiB copy us"] = statistics.median(ts)
print({k: v for k, v in out.items() if not k.startswith("crop")})
json.dump(out, open(os.environ.get("OUT", ".") + "/zero-copy-reads.json", "w"), indent=1)
