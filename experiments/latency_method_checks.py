"""Why the bench's alternating latency rows read above the one-box trace (run 27: 681 us against
604-633 us in the same process), session 7, run 28. In one process, twice over:

- the engine alone and the pipeline (host frames), each 500 calls back to back;
- the one-box trace's whole call;
- ``end_to_end.alternating_latency`` with the engine and the pipeline, 7 rounds;
- the pipeline's first calls after 71 of the engine's (slow after a switch?);
- the engine alone waited for by an event instead of a device-wide synchronize.

Run on the GPU machine: ``python experiments/latency_method_checks.py``.
"""

import statistics

import torch

import posefw
from posefw.benchmarks import end_to_end as e2e
from posefw.benchmarks.one_box_trace import trace
from posefw.benchmarks.timing import host_time

eng = posefw.create_engine("torch", precision="fp16", compile=True, cuda_graph=True, device="cuda")
pipe = posefw.Pipeline(eng, posefw.create_decoder("cupy-full"), preprocess="gpu")
pipe.warm_up()
single, _ = e2e.workload(1, calls=4)
run1 = eng.runner(1)
one = torch.randn((1, 3, 256, 192)).to("cuda", torch.float16)
engine = (lambda i: run1(one), torch.cuda.synchronize)
blocking = (e2e._blocking(pipe, single), None)


def med(st) -> float:
    return round(st.median * 1e3, 1)


for rep in range(2):
    print(
        rep,
        "consecutive: engine",
        med(host_time(engine[0], 500, 20, engine[1])),
        "pipeline",
        med(host_time(blocking[0], 500, 20)),
    )
    print(rep, "trace whole", round(trace(pipe, single)["whole call"], 1))
    lat = e2e.alternating_latency({"engine": engine, "pipe": blocking}, 500, 10, 7)
    print(
        rep,
        "alternating engine/pipe",
        {k: round(v["median_ms"] * 1e3, 1) for k, v in lat.items()},
        [round(x * 1e3) for x in lat["pipe"]["rounds_median_ms"]],
    )
    host_time(engine[0], 71, 2, engine[1])
    s = host_time(blocking[0], 71, 2).samples_ms
    print(
        rep,
        "after 71 engine calls, pipeline calls 1-10 / 11-40 / 41-71:",
        [round(statistics.median(s[a:b]) * 1e3) for a, b in ((0, 10), (10, 40), (40, 71))],
    )
    ev = torch.cuda.Event()

    def engine_event(i):
        run1(one)
        ev.record()
        ev.synchronize()

    print(rep, "engine with event wait", med(host_time(engine_event, 500, 20)))
