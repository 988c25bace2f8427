"""Timing primitives: host clocks for CPU work, CUDA events and graph replays for GPU work.

Device time is measured with the GPU kept busy by a spin kernel while the host enqueues the
timed calls, so the host's launch cost never shows up as device time; it is reported
separately as host time per call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def std(self) -> float:
        return statistics.pstdev(self.samples_ms) if len(self.samples_ms) > 1 else 0.0

    def pct(self, q: float) -> float:
        s = sorted(self.samples_ms)
        if not s:
            return float("nan")
        return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]

    def summary(self) -> dict[str, float]:
        return {
            "median_ms": self.median,
            "mean_ms": self.mean,
            "std_ms": self.std,
            "p50_ms": self.pct(50),
            "p99_ms": self.pct(99),
            "n": len(self.samples_ms),
        }


def host_time(fn: Callable[[int], Any], iters: int, warmup: int, sync: Callable[[], None] | None = None) -> Stats:
    """Wall-clock per call (synchronizing after each call when ``sync`` is given)."""
    for i in range(warmup):
        fn(i)
    if sync:
        sync()
    st = Stats()
    for i in range(iters):
        t0 = time.perf_counter()
        fn(i)
        if sync:
            sync()
        st.samples_ms.append((time.perf_counter() - t0) * 1e3)
    return st


def device_time(fn: Callable[[int], Any], iters: int, warmup: int) -> Stats:
    """CUDA-event time per call on torch's current stream, with launch cost hidden."""
    import torch

    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    torch.cuda._sleep(int(5_000_000 + iters * 600_000))  # keep the GPU busy while we enqueue (~0.3 ms a call)
    for i in range(iters):
        starts[i].record()
        fn(i)
        ends[i].record()
    torch.cuda.synchronize()
    return Stats([s.elapsed_time(e) for s, e in zip(starts, ends)])


def graph_time(fn: Callable[[int], Any], calls: int = 20, replays: int = 50) -> Stats:
    """Per-call device time from replays of a CUDA graph holding ``calls`` calls."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            fn(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    st = Stats()
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        st.samples_ms.append(a.elapsed_time(b) / calls)
    return st


def copy_bandwidth_gbs(nbytes: int = 1 << 30) -> float:
    """Measured device-to-device copy rate, counting bytes read plus written (GB/s)."""
    import torch

    a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    b = torch.empty_like(a)
    st = device_time(lambda i: b.copy_(a), iters=20, warmup=3)
    return 2 * nbytes / (st.median * 1e-3) / 1e9
