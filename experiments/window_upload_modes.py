"""How a one-box call's frame window best reaches the device (session 7).

A host frame's window (the pixels its crop reads, 23-282 KB for the four coco-mini boxes the
latency rows use) is staged by NumPy into pinned memory and copied up with the box table
(``DeviceRunner``'s direct copy): ~24 us of the host's critical path on the H200. The driver
can copy from pageable memory itself (``cudaMemcpy2DAsync`` straight from the frame's rows: it
stages through its own pinned buffers, chunk by chunk, overlapping its memcpy with the DMA).
Per window, median over 400 calls, in the same process and alternating:

- host: microseconds until the upload call(s) return;
- done: microseconds until the copy is complete on the device (host clock, after a sync).

Run on the GPU machine: ``python experiments/window_upload_modes.py`` (writes
``$OUT/window-upload-modes.json`` where OUT is set).
"""

import ctypes
import json
import os
import statistics
import time

import numpy as np
import torch

from posefw import cudart
from posefw.benchmarks.end_to_end import workload
from posefw.pipeline import Pipeline

torch.zeros(1, device="cuda")  # loads the runtime
rt = cudart.runtime()
assert rt is not None, cudart.unavailable()
lib = ctypes.CDLL(rt.path)
copy2d = lib.cudaMemcpy2DAsync
copy2d.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
copy2d.argtypes += [ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
copy2d.restype = ctypes.c_int
stream = torch.cuda.current_stream().cuda_stream

single, _ = workload(1, calls=4)


class Runner:  # plan() needs only the frame check
    def check_frame(self, frame, index):
        pass


pipe = Pipeline.__new__(Pipeline)
pipe.udp, pipe.per_batch, pipe.flip_test, pipe.runner = True, 64, False, Runner()
windows = []
for frames, boxes, ids in single:
    y0, y1, x0, x1 = pipe.plan(frames, boxes, ids).windows[0]
    windows.append((frames[0], y0, y1, x0, x1))

cap = max((y1 - y0) * (x1 - x0) * 3 for _, y0, y1, x0, x1 in windows)
pinned = torch.empty(cap, dtype=torch.uint8, pin_memory=True)
pinned_np = pinned.numpy()
dev = torch.empty(cap, dtype=torch.uint8, device="cuda")
dst = dev.data_ptr()


def staged(frame, y0, y1, x0, x1):
    n = (y1 - y0) * (x1 - x0) * 3
    np.copyto(pinned_np[:n].reshape(y1 - y0, x1 - x0, 3), frame[y0:y1, x0:x1])
    rt.copy_to_device(dst, pinned.data_ptr(), n, stream)


def pageable(frame, y0, y1, x0, x1):
    rw = (x1 - x0) * 3
    src = frame.ctypes.data + y0 * frame.strides[0] + x0 * 3
    err = copy2d(dst, rw, src, frame.strides[0], rw, y1 - y0, 1, stream)
    assert err == 0, err


modes = {"staged (NumPy into pinned, one copy)": staged, "pageable (cudaMemcpy2DAsync from the frame)": pageable}
times = {(m, w): ([], []) for m in modes for w in range(4)}
for it in range(420):
    for m, fn in modes.items():
        w = it % 4
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(*windows[w])
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        if it >= 20:
            times[(m, w)][0].append((t1 - t0) * 1e6)
            times[(m, w)][1].append((t2 - t0) * 1e6)
# the two modes leave the same bytes on the device
for w in range(4):
    frame, y0, y1, x0, x1 = windows[w]
    n = (y1 - y0) * (x1 - x0) * 3
    pageable(*windows[w])
    torch.cuda.synchronize()
    assert np.array_equal(dev[:n].cpu().numpy(), np.ascontiguousarray(frame[y0:y1, x0:x1]).reshape(-1))
out = {}
for (m, w), (host, done) in times.items():
    _, y0, y1, x0, x1 = windows[w]
    kb = (y1 - y0) * (x1 - x0) * 3 / 1e3
    h, d = statistics.median(host), statistics.median(done)
    out[f"{m} | window {w} ({kb:.0f} KB)"] = {"host_us": h, "done_us": d}
    print(f"{m:48s} window {w} {kb:6.0f} KB  host {h:6.1f} us  done {d:6.1f} us")
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "window-upload-modes.json"), "w") as f:
        json.dump(out, f, indent=1)
