"""The bench's one-box latency rows again and again in one process: is the ratio to the engine
a constant of the code, or does the host's speed move under it? (session 7, run 29)

``end_to_end.alternating_latency`` (engine alone, host frames, GPU frames; 7 rounds, 500 calls)
twelve times back to back, then after 20 s idle three times more; the one-box trace before,
between and after. Run 28 had seen the pipeline at 1.24-1.33x in the first seconds of a
process and 1.166x later in it; this shows whether that was a warm-up or phases of the host.

Run on the GPU machine: ``python experiments/one_box_latency_timeline.py`` (about 40 s to
compile the engine, then 40 s).
"""

import time

import torch

import posefw
from posefw.benchmarks import end_to_end as e2e
from posefw.benchmarks.one_box_trace import trace

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


def one_set(tag: str) -> None:
    lat = e2e.alternating_latency(entries, 500, 10, 7)
    m = {k: v["median_ms"] * 1e3 for k, v in lat.items()}
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
