"""Engine throughput and latency of ViTPose-B on the GPU, variants side by side, with the FLOP ceiling.

Times the torch engine (fp16, CUDA graph) eager-module and torch.compile variants at batch 1 and 64
with CUDA events over graph replays, and reports each against a measured fp16 matmul ceiling.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from posefw.benchmarks.timing import device_time


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


def profile_kernels(
    batch: int = 64, compiled: bool = False, fuse_gelu: bool = False, channels_last: bool = False
) -> None:
    """Where the time goes: one fp16 pass's CUDA kernels grouped by name, with counts and totals
    (torch.profiler; no graph and one stream, so every kernel is visible), eager or torch.compile'd
    with the engine's other defaults (flex attention and the fused head when compiled on CUDA)."""
    import collections

    from posefw.engines.torch_engine import TorchEngine
    from torch.profiler import ProfilerActivity, profile

    eng = TorchEngine(
        precision="fp16", device="cuda", compile=compiled, fuse_gelu=fuse_gelu, channels_last=channels_last
    )
    x = torch.randn(batch, 3, 256, 192, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        for _ in range(3):
            eng.forward(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            eng.forward(x)
            torch.cuda.synchronize()
    kernels = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type.name == "CUDA":
            kernels[e.name][0] += 1
            kernels[e.name][1] += e.device_time
    total = sum(t for _, t in kernels.values())
    print(
        f"--- compiled={compiled} fuse_gelu={fuse_gelu} channels_last={channels_last} batch {batch}: "
        f"{sum(n for n, _ in kernels.values())} kernels, {total:.0f} us"
    )
    for name, (n, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:30]:
        print(f"{t:9.1f} us {n:4d}x {t / n:8.1f}  {name[:110]}")


def reference_output(batch: int = 64):
    """Seeded images and the fp32 eager model's heatmaps: what every variant's drift is measured against."""
    from posefw.models.vitpose import random_vitpose

    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 256, 192, generator=g).cuda()
    with torch.inference_mode():
        return x, random_vitpose("b").cuda().eval()(x).float()


def output_drift(eng, reference) -> dict:
    """Heatmap and decoded-keypoint differences of an engine against the fp32 eager model."""
    import posefw

    x, ref = reference
    with torch.inference_mode():
        out = eng.runner(x.shape[0])(x).float().clone()
    dec = posefw.create_decoder("numpy-cpu")
    kp_ref = dec.decode(ref.cpu().numpy()).keypoints
    kp = dec.decode(out.cpu().numpy()).keypoints
    drift = {
        "max_abs_heatmap": float((out - ref).abs().max()),
        "max_kp_px": float(np.nanmax(np.abs(kp - kp_ref))),
        "kp_within_0_5px": float(np.mean(np.abs(kp - kp_ref).max(-1) <= 0.5)),
    }
    print(f"    drift vs fp32 eager: {drift}", flush=True)
    return drift


def main(argv=None) -> int:
    from posefw.engines.torch_engine import TorchEngine

    p = argparse.ArgumentParser()
    p.add_argument("--batches", default="1,64")
    p.add_argument("--variants", default="eager-graph,compile-graph")
    p.add_argument("--json", default=None)
    p.add_argument("--profile", action="store_true", help="print the top CUDA kernels of one eager fp16 batch-64 pass")
    p.add_argument(
        "--profile-compiled", action="store_true", help="the same for the torch.compile'd model with fuse_gelu"
    )
    p.add_argument("--profile-batch", type=int, default=64, help="batch size of the profiled pass")
    a = p.parse_args(argv)
    if a.profile:
        profile_kernels(a.profile_batch)
    if a.profile_compiled:
        profile_kernels(a.profile_batch, compiled=True, fuse_gelu=True)
    ceiling = matmul_ceiling_tflops()
    rows = []
    import torch._inductor.config as inductor_config

    reference = reference_output()
    # FLOPs of the model as published (the flop counter cannot see into the fused custom ops).
    gflop = model_gflop(TorchEngine(precision="fp16", device="cuda", fuse_gelu=False, fuse_head=False))
    for variant in a.variants.split(","):
        # A variant without suffixes is the engine's default (fp16: fused GELU, head and flex
        # attention; two streams). Suffixes: -cl channels-last head, -freeze inductor freezing,
        # -fusegelu / -erf fc1+GELU in one cuBLASLt GEMM or not, -nocudnnsdpa attention without
        # cuDNN's kernel (flash attention 2), -sN the batch split over N CUDA streams (TorchEngine(streams=N)),
        # -lt cuBLASLt as torch's preferred BLAS library, -tma inductor's persistent TMA matmul templates,
        # -sdpa scaled_dot_product_attention instead of the compiled default, flex attention,
        # -nohead the head's tail unfused (modules instead of the Triton kernel), -nomask flex
        # attention's per-call default mask instead of the one built once, -cdt inductor's
        # coordinate-descent tuning of its generated kernels.
        flags = variant.split("-")[2:]
        base = "-".join(variant.split("-")[:2])
        mode = {"eager-graph": False, "compile-graph": True, "compile-max": "max-autotune-no-cudagraphs"}[base]
        torch._dynamo.reset()  # each variant compiles afresh (dynamo's recompile limit is per function)
        inductor_config.freezing = "freeze" in flags
        inductor_config.coordinate_descent_tuning = "cdt" in flags
        inductor_config.triton.enable_persistent_tma_matmul = "tma" in flags
        torch.backends.cuda.enable_cudnn_sdp("nocudnnsdpa" not in flags)
        torch.backends.cuda.preferred_blas_library("cublaslt" if "lt" in flags else "cublas")
        streams = next((int(f[1:]) for f in flags if f[:1] == "s" and f[1:].isdigit()), None)
        fuse_gelu = True if "fusegelu" in flags else False if "erf" in flags else None
        eng = TorchEngine(
            precision="fp16",
            device="cuda",
            cuda_graph=True,
            compile=mode,
            channels_last="cl" in flags,
            fuse_gelu=fuse_gelu,
            streams=streams,
            attention="sdpa" if "sdpa" in flags else None,
            fuse_head=False if "nohead" in flags else None,
        )
        if "nomask" in flags:
            for m in eng.model.modules():
                if hasattr(m, "block_mask"):
                    m.block_mask = None
        for b in (int(x) for x in a.batches.split(",")):
            x = torch.randn(b, 3, 256, 192, device="cuda", dtype=torch.float16)
            run = eng.runner(b)
            st = device_time(lambda i, run=run, x=x: run(x), iters=100, warmup=10)
            ms = st.median
            tflops = gflop * b / (ms * 1e-3) / 1e3
            rows.append(
                {
                    "variant": variant,
                    "batch": b,
                    "median_ms": ms,
                    "img_per_s": b / (ms * 1e-3),
                    "gflop_per_image": gflop,
                    "tflops": tflops,
                    "ceiling_tflops": ceiling,
                    "fraction": tflops / ceiling,
                }
            )
            print(
                f"{variant:>14} b={b:<3} {ms:8.3f} ms  {b / (ms * 1e-3):8.0f} img/s  {tflops:6.1f} TFLOP/s "
                f"({100 * tflops / ceiling:4.1f}% of {ceiling:.0f})",
                flush=True,
            )
        rows[-1].update(output_drift(eng, reference))
        inductor_config.freezing = inductor_config.triton.enable_persistent_tma_matmul = False
        inductor_config.coordinate_descent_tuning = False
        torch.backends.cuda.enable_cudnn_sdp(True)
        torch.backends.cuda.preferred_blas_library("cublas")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
