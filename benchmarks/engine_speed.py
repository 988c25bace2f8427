"""Engine throughput and latency of ViTPose-B on the GPU, variants side by side, with the FLOP ceiling.

Times the torch engine (fp16, CUDA graph) eager-module and torch.compile variants at batch 1 and 64
with CUDA events over graph replays, and reports each against a measured fp16 matmul ceiling.
"""

from __future__ import annotations

import argparse
import json

import torch
from posefw.benchmarks.timing import device_time

GFLOP_PER_IMAGE = 37.0  # ViTPose-B at 256x192, torch flop counter (shared/device/README.md)


def matmul_ceiling_tflops(n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    st = device_time(lambda i: a @ b, iters=20, warmup=3)
    return 2 * n**3 / (st.median * 1e-3) / 1e12


def model_gflop(engine, batch: int = 1) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 3, 256, 192, device="cuda", dtype=engine.dtype)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        engine.model(x)
    return fc.get_total_flops() / 1e9 / batch


def profile_kernels(batch: int = 64) -> None:
    """Where the time goes: the top CUDA kernels of one eager fp16 pass (torch.profiler)."""
    from posefw.engines.torch_engine import TorchEngine
    from torch.profiler import ProfilerActivity, profile

    for cl in (False, True):
        eng = TorchEngine(precision="fp16", device="cuda", channels_last=cl)
        x = torch.randn(batch, 3, 256, 192, device="cuda", dtype=torch.float16)
        for _ in range(3):
            eng.infer(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            eng.infer(x)
            torch.cuda.synchronize()
        print(f"--- head channels_last={cl}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))


def main(argv=None) -> int:
    from posefw.engines.torch_engine import TorchEngine

    p = argparse.ArgumentParser()
    p.add_argument("--batches", default="1,64")
    p.add_argument("--variants", default="eager-graph,compile-graph")
    p.add_argument("--json", default=None)
    p.add_argument("--profile", action="store_true", help="print the top CUDA kernels of one eager fp16 batch-64 pass")
    a = p.parse_args(argv)
    if a.profile:
        profile_kernels()
    ceiling = matmul_ceiling_tflops()
    rows = []
    for variant in a.variants.split(","):
        base = variant.removesuffix("-cl")
        mode = {"eager-graph": False, "compile-graph": True, "compile-max-graph": "max-autotune-no-cudagraphs"}[base]
        eng = TorchEngine(precision="fp16", device="cuda", cuda_graph=True, compile=mode, channels_last=variant.endswith("-cl"))
        gflop = model_gflop(eng)
        for b in (int(x) for x in a.batches.split(",")):
            x = torch.randn(b, 3, 256, 192, device="cuda", dtype=torch.float16)
            run = eng.runner(b)
            st = device_time(lambda i, run=run, x=x: run(x), iters=100, warmup=10)
            ms = st.median
            tflops = gflop * b / (ms * 1e-3) / 1e3
            rows.append({"variant": variant, "batch": b, "median_ms": ms, "img_per_s": b / (ms * 1e-3),
                         "gflop_per_image": gflop, "tflops": tflops, "ceiling_tflops": ceiling, "fraction": tflops / ceiling})
            print(f"{variant:>14} b={b:<3} {ms:8.3f} ms  {b / (ms * 1e-3):8.0f} img/s  {tflops:6.1f} TFLOP/s "
                  f"({100 * tflops / ceiling:4.1f}% of {ceiling:.0f})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
