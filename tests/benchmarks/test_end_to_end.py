"""The end-to-end bench's timing of blocking calls: alternating rounds, every sample kept."""

from __future__ import annotations

import time

from posefw.benchmarks.end_to_end import alternating_latency


def test_latency_rounds_alternate_and_keep_every_sample():
    order: list[str] = []

    def entry(name: str, seconds: float):
        def fn(i: int) -> None:
            order.append(name)
            time.sleep(seconds)

        return fn

    synced: list[int] = []
    entries = {
        "a": (entry("a", 0.001), lambda: synced.append(1)),
        "b": (entry("b", 0.004), None),
        "c": (entry("c", 0.002), None),
    }
    out = alternating_latency(entries, iters=6, warmup=1, rounds=3)
    # each round starts at the next entry; warm-up calls only in the first round
    runs = [order[0]] + [b for a, b in zip(order, order[1:]) if a != b]
    assert runs == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: v["n"] for k, v in out.items()} == {"a": 6, "b": 6, "c": 6}
    assert all(len(v["rounds_median_ms"]) == 3 for v in out.values())
    assert out["a"]["median_ms"] < out["c"]["median_ms"] < out["b"]["median_ms"]
    assert (
        out["a"]["median_ms"] >= 1.0 and len(synced) == 6 + 3
    )  # after every timed call, and once after each round's warm-up
