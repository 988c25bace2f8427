"""The bench's interleaved timing of device-resident pipelines (CPU: host clock only)."""

from __future__ import annotations

from posefw.benchmarks.pipelines import measure_group


def test_measure_group_interleaves_rounds_and_isolates_failures():
    calls: list[str] = []

    def timed(name):
        def fn(i):
            calls.append(name)

        return fn

    def broken(i):
        calls.append("bad")
        raise RuntimeError("kernel failed")

    out = measure_group(
        {"a": timed("a"), "bad": broken, "c": timed("c")}, batch=4, iters=6, warmup=1, cuda=False, rounds=3
    )
    assert isinstance(out["bad"], RuntimeError) and calls.count("bad") == 1  # not retried, others ran on
    for name in ("a", "c"):
        assert out[name]["n"] == 6 and out[name]["qps"] > 0
    # Rounds alternate: a's and c's calls are interleaved, not one block each.
    firsts = [i for i, c in enumerate(calls) if c == "c"]
    lasts = [i for i, c in enumerate(calls) if c == "a"]
    assert min(firsts) < max(lasts) and min(lasts) < max(firsts)
    # Round 2 starts one pipeline later (rotation): c was timed before a in some round.
    order = [c for c in calls if c != "bad"]
    assert any(order[i] == "c" and order[i + 1] == "a" for i in range(len(order) - 1))
