"""The end-to-end bench's timing: steady-state throughput windows, and blocking calls in
alternating rounds with every sample kept."""

from __future__ import annotations

import time

from posefw.benchmarks.end_to_end import alternating_latency, bracketed, queued_step, steady_rate


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


def test_steady_rate_counts_completions_not_the_first_call():
    """A stream whose first call pays a long fill (the host's work with the device idle): the
    window opens after it, so the rate is the steady one, over exactly ``calls`` steps."""
    seen: list[int] = []

    def step() -> None:
        seen.append(1)
        time.sleep(0.05 if len(seen) == 1 else 0.002)

    per_call = steady_rate(step, 10)
    assert len(seen) == 11
    assert 0.002 <= per_call < 0.02  # with the fill in the window it would be >= 0.007


def test_queued_step_cycles_inputs_and_closes_on_the_cpu():
    got: list[int] = []
    step = queued_step(lambda x: got.append(x) or x, [10, 20, 30], cuda=False)
    assert [step() for _ in range(4)] == [20, 30, 10, 20]
    step.close()
    assert got == [20, 30, 10, 20]


def test_bracketed_ratios_cancel_a_drifting_clock_and_keep_going_past_an_error():
    """Every step slows the "machine" by 1%: medians of raw times drift by tens of percent, the
    ratio against the reference's runs on either side stays the true one. The reference runs
    before each other entry and after the last; a failing entry is reported, the rest run."""
    clock = [1.0]
    order: list[str] = []

    def entry(name: str, ms: float):
        def step() -> None:
            if not order or order[-1] != name:
                order.append(name)
            time.sleep(ms / 1e3 * clock[0])
            clock[0] += 0.01

        return step, 64

    def broken() -> None:
        raise RuntimeError("no device")

    entries = {"ref": entry("ref", 4), "half": entry("half", 8), "broken": (broken, 64), "same": entry("same", 4)}
    out = bracketed(entries, "ref", calls=4, warmup=1, rounds=3)
    assert out["broken"] == {"error": "RuntimeError: no device"}
    # (a round's last run of the reference and the next round's first are one stretch here;
    # broken failed between half and same; each round starts one entry further on)
    assert order == ["ref", "half", "ref", "same", "ref", "same", "ref", "half", "ref", "same", "ref", "half", "ref"]
    assert len(out["half"]["vs_reference_rounds"]) == 3 and len(out["ref"]["runs_ms"]) == 9
    assert abs(out["half"]["vs_reference"] - 0.5) < 0.05, out["half"]
    assert abs(out["same"]["vs_reference"] - 1.0) < 0.1, out["same"]
    assert max(out["ref"]["runs_ms"]) > 1.3 * min(out["ref"]["runs_ms"])  # the drift was there
