"""The paper's pipelines, measured side by side in one process on the same inputs.

1. pytorch-fp32-eager: the PyTorch model as published (no post-processing)
2. engine: the chosen engine alone
3. engine+cpu-post: heatmaps copied to the host and decoded by numpy-cpu
4. partial: engine + cupy-partial (solve on the host)
5. full:<decoder>: engine + a full GPU decoder, in the engine's CUDA graph where it has one

Each is timed end to end per call (host clock after a device synchronize), batch by batch.
The device-resident ones (engine, full) are timed in alternating rounds (``measure_group``), so
that clock and thermal drift over a run falls on all of them alike rather than on the last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from posefw.benchmarks.timing import Stats, host_time

import posefw


def full_decoders() -> list[str]:
    """Decoders that declare themselves graph-safe: they can run in the engine's CUDA graph."""
    return [i.name for i in posefw.available_decoders() if getattr(i.cls, "graph_safe", False)]


def _sync(cuda: bool) -> Callable[[], None] | None:
    if not cuda:
        return None
    import torch

    return torch.cuda.synchronize


def device_resident(name: str) -> bool:
    """Pipelines that stay on the device: also timed with CUDA events (host jitter excluded)."""
    return name == "engine" or name.startswith("full:")


def measure(fn: Callable[[int], Any], batch: int, iters: int, warmup: int, cuda: bool) -> dict[str, Any]:
    """Host-clock time per call, synchronizing the device after each."""
    st: Stats = host_time(fn, iters, warmup, sync=_sync(cuda))
    s = st.summary()
    s["qps"] = batch / (s["mean_ms"] * 1e-3)
    return s


def measure_group(
    fns: dict[str, Callable[[int], Any]], batch: int, iters: int, warmup: int, cuda: bool, rounds: int = 5
) -> dict[str, dict[str, Any] | Exception]:
    """``measure`` for several pipelines at once, in ``rounds`` alternating rounds.

    Each round times every pipeline for iters/rounds calls (host clock, then CUDA events on a
    GPU), starting one pipeline later than the round before. Ratios between pipelines are then
    not biased by the GPU's clocks drifting during the run. A pipeline that raises gets its
    exception back and leaves the others running.
    """
    from posefw.benchmarks.timing import device_time

    rounds = max(1, min(rounds, iters))
    per = -(-iters // rounds)  # at least iters calls in all
    host: dict[str, Stats] = {n: Stats() for n in fns}
    dev: dict[str, Stats] = {n: Stats() for n in fns}
    out: dict[str, dict[str, Any] | Exception] = {}
    names = list(fns)
    for r in range(rounds):
        shift = r % len(names)
        rewarm = warmup if r == 0 else (2 if cuda else 0)  # GPU: back to its clocks after the others
        for n in names[shift:] + names[:shift]:
            if n in out:  # failed earlier
                continue
            try:
                host[n].samples_ms += host_time(fns[n], per, rewarm, sync=_sync(cuda)).samples_ms
                if cuda:
                    dev[n].samples_ms += device_time(fns[n], per, 2).samples_ms
            except Exception as exc:  # noqa: BLE001 - reported in that pipeline's row
                out[n] = exc
    for n in names:
        if n in out:
            continue
        s = host[n].summary()
        s["qps"] = batch / (s["mean_ms"] * 1e-3)
        if cuda:
            s["device_median_ms"] = dev[n].median
            s["device_qps"] = batch / (dev[n].median * 1e-3)
        out[n] = s
    return out


def pipelines(engine: Any, full_decoders: list[str], algorithm: str, cuda: bool) -> dict[str, Callable]:
    """name -> factory(batch) -> callable(i) that runs one batch through that pipeline."""
    import torch

    dev = "cuda" if cuda else "cpu"

    def boxes(b):
        return (torch.full((b, 2), 200.0, device=dev), torch.tensor([[150.0, 200.0]], device=dev).repeat(b, 1))

    def images(b):
        g = torch.Generator().manual_seed(b)
        return [torch.randn((b, 3, 256, 192), generator=g).to(dev) for _ in range(2)]

    def run_engine(b, post=None):
        """The engine for one batch size, in one CUDA graph with ``post`` where the engine has runners."""
        return engine.runner(b, post=post)

    out: dict[str, Callable] = {}
    reference: list[Any] = []

    def eager(b):
        from posefw.engines.torch_engine import TorchEngine

        if not reference:
            # Its own model instance (same checkpoint or seed): converting the engine's model would change it.
            reference.append(
                TorchEngine(
                    checkpoint=getattr(engine, "checkpoint", None),
                    size=getattr(engine, "size", "b"),
                    seed=getattr(engine, "seed", 0),
                    precision="fp32",
                    device=dev,
                    fuse_head=False,
                )
            )
        x = images(b)
        return lambda i: reference[0].infer(x[i % 2])

    def engine_only(b):
        x = images(b)
        run = run_engine(b)
        return lambda i: run(x[i % 2])

    def cpu_post(b):
        x = images(b)
        c, s = (v.cpu().numpy() for v in boxes(b))
        run = run_engine(b)
        dec = posefw.create_decoder("numpy-cpu", algorithm=algorithm)

        def step(i):
            hm = run(x[i % 2])
            host = hm.float().cpu().numpy() if hasattr(hm, "cpu") else np.asarray(hm)
            return dec.decode(host, c, s)

        return step

    def partial(b):
        x = images(b)
        c, s = boxes(b)
        run = run_engine(b)
        dec = posefw.create_decoder("cupy-partial", algorithm=algorithm)
        return lambda i: dec.decode(run(x[i % 2]), c, s)

    def full(name):
        def make(b):
            x = images(b)
            c, s = boxes(b)
            opts = {"device": dev} if "device" in posefw.get_registry().get("decoder", name).options else {}
            dec = posefw.create_decoder(name, algorithm=algorithm, **opts)

            def post(hm):
                r = dec.decode(hm, c, s)
                return r.keypoints, r.scores

            run = run_engine(b, post)  # one CUDA graph: model + decoder
            return lambda i: run(x[i % 2])

        return make

    out["pytorch-fp32-eager"] = eager
    out["engine"] = engine_only
    out["engine+cpu-post"] = cpu_post
    if cuda:
        out["partial:cupy-partial"] = partial
    for name in full_decoders:
        out[f"full:{name}"] = full(name)
    return out
