"""numba-full block size and register cap, timed by graph replay at batch 1 and 64 (GPU machine).

Batch 64 is 1,088 blocks: whether they fit in one wave depends on registers per thread.
Batch 1 is 17 blocks on 132 SMs: there only the latency of one block matters, and a larger
block shortens it. ``flat`` compares the contiguous-input kernel (one linear index per sample)
with the strided one. ``python experiments/numba_tuning.py`` prints every combination.
"""

from __future__ import annotations

import torch
from posefw.benchmarks.timing import graph_time
from posefw.conformance.cases import realistic

import posefw

CONFIGS = (
    (128, 56, False),
    (128, 56, True),
    (128, None, True),
    (128, 48, True),
    (256, None, True),
    (512, None, False),
    (512, None, True),
    (512, 56, True),
)


def main() -> None:
    for algorithm in ("dark-udp", "dark"):
        for threads, regs, flat in CONFIGS:
            dec = posefw.create_decoder(
                "numba-full", algorithm=algorithm, threads=threads, max_registers=regs, flat=flat
            )
            row = []
            for b in (1, 64):
                xs = [torch.from_numpy(realistic(100 + i, n=b)).cuda() for i in range(8)]
                ms = graph_time(lambda i, xs=xs, dec=dec: dec.decode(xs[i % 8])).median
                row.append(f"b={b}: {ms * 1e3:6.1f} us")
            ref = posefw.create_decoder("numpy-cpu", algorithm=algorithm).decode(realistic(7, n=8))
            got = dec.decode(torch.from_numpy(realistic(7, n=8)).cuda()).numpy()
            same = bool((got.scores == ref.scores).all())
            print(
                f"{algorithm:<9} threads={threads:<4} max_registers={regs!s:<5} flat={flat!s:<5} "
                + "  ".join(row)
                + f"  scores identical: {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
