"""Decoder benchmark: every available decoder, side by side on the same inputs, in one process.

GPU decoders get torch CUDA tensors (as an engine produces them) and are timed with CUDA
events (device time), graph replays where capturable, and host time per call; CPU decoders
mmpose 0.x's own decoders (``mmpose-0.x``) and the per-keypoint port (``mmpose-loop``) get NumPy
and are timed by the host clock. The floor is the
bytes the decode must read over the measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from posefw.benchmarks.timing import copy_bandwidth_gbs, device_time, graph_time, host_time
from posefw.conformance.cases import realistic

import posefw


def inputs(batch: int, dtype: str, copies: int) -> list[np.ndarray]:
    return [realistic(1000 + i, n=batch).astype(dtype) for i in range(copies)]


def bench_one(name: str, algorithm: str, batch: int, dtype: str, iters: int, warmup: int, cuda: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"decoder": name, "algorithm": algorithm, "batch": batch, "dtype": dtype}
    copies = 8 if batch >= 16 else 2
    host_inputs = inputs(batch, dtype, copies)
    row["bytes"] = int(host_inputs[0].nbytes)
    if name == "mmpose-loop":
        from posefw.conformance.mmpose_port import keypoints_from_heatmaps

        st = host_time(lambda i: keypoints_from_heatmaps(host_inputs[i % copies], algorithm), max(3, iters // 10), 1)
        row["host_ms"] = st.summary()
        return row
    if name == "mmpose-0.x":  # mmpose's own code: every map blurred by OpenCV, vectorised UDP step
        from posefw.benchmarks.mmpose0x import decode

        st = host_time(lambda i: decode(host_inputs[i % copies], algorithm), max(5, iters // 4), 2)
        row["host_ms"] = st.summary()
        return row
    info = {i.name: i for i in posefw.available_decoders()}.get(name)
    if info is None or not info.available:
        row["error"] = f"unavailable: {info.reason if info else 'not installed'}"
        return row
    is_gpu = info.device != "cpu" and cuda
    opts = {"device": "cuda"} if ("device" in info.cls.options and cuda) else {}
    dec = posefw.create_decoder(name, algorithm=algorithm, **opts)
    if not is_gpu:
        st = host_time(lambda i: dec.decode(host_inputs[i % copies]), iters, warmup)
        row["host_ms"] = st.summary()
        return row
    import torch

    dev_inputs = [torch.from_numpy(a).cuda() for a in host_inputs]
    centers = torch.full((batch, 2), 200.0, device="cuda")
    scales = torch.tensor([[150.0, 200.0]], device="cuda").repeat(batch, 1)

    def call(i: int):
        return dec.decode(dev_inputs[i % copies], centers, scales)

    sync = torch.cuda.synchronize
    row["host_ms"] = host_time(call, iters, warmup).summary()  # call overhead, no sync
    row["end_to_end_ms"] = host_time(call, iters, warmup, sync=sync).summary()
    if name != "cupy-partial":
        row["device_ms"] = device_time(call, iters, warmup).summary()
    if info.cls.graph_safe:
        row["graph_ms"] = graph_time(call).summary()
    return row


def input_converter(info, cuda: bool):
    """What a decoder is fed for conformance during a benchmark: device arrays for GPU decoders."""
    if cuda and info.device != "cpu":
        import torch

        return lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()
    return lambda a: a


def run(
    names: list[str],
    algorithms: list[str],
    batches: list[int],
    dtypes: list[str],
    iters: int,
    warmup: int,
    progress=None,
) -> dict[str, Any]:
    from posefw.testing import cuda_reason

    cuda = cuda_reason() is None
    meta: dict[str, Any] = {"cuda": cuda}
    if cuda:
        import torch

        meta["device"] = torch.cuda.get_device_name(0)
        meta["copy_bandwidth_gbs"] = copy_bandwidth_gbs()
    rows = []
    for alg in algorithms:
        for b in batches:
            for dt in dtypes:
                for name in names:
                    rows.append(bench_one(name, alg, b, dt, iters, warmup, cuda))
                    if progress:
                        progress(rows[-1])
    return {"meta": meta, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--decoders", default="numpy-cpu,mmpose-0.x,mmpose-loop,cupy-partial,cupy-full,numba-full,torch-full"
    )
    p.add_argument("--algorithms", default="dark-udp")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--dtypes", default="float32,float16")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    def show(r):
        d = r.get("device_ms", {}).get("median_ms")
        g = r.get("graph_ms", {}).get("median_ms")
        h = r.get("host_ms", {}).get("median_ms")
        e = r.get("end_to_end_ms", {}).get("median_ms")
        print(
            f"{r['decoder']:>13} {r['algorithm']:>8} b={r['batch']:<3} {r['dtype']:<7} device={_f(d)} graph={_f(g)} "
            f"host={_f(h)} e2e={_f(e)} {r.get('error', '')}",
            flush=True,
        )

    out = run(
        a.decoders.split(","),
        a.algorithms.split(","),
        [int(b) for b in a.batches.split(",")],
        a.dtypes.split(","),
        a.iters,
        a.warmup,
        progress=show,
    )
    print(json.dumps(out["meta"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def _f(v) -> str:
    return "      -" if v is None else f"{v * 1e3:8.1f}us"


if __name__ == "__main__":
    raise SystemExit(main())
