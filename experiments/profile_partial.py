"""Where cupy-partial's host time goes: cProfile over repeated batch-64 decodes (GPU machine)."""

from __future__ import annotations

import cProfile
import pstats

import torch
from posefw.conformance.cases import realistic

import posefw


def main() -> None:
    dec = posefw.create_decoder("cupy-partial")
    hm = torch.from_numpy(realistic(0, n=64)).cuda()
    centers = torch.full((64, 2), 200.0, device="cuda")
    scales = torch.tensor([[150.0, 200.0]], device="cuda").repeat(64, 1)
    for _ in range(20):
        dec.decode(hm, centers, scales)
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(200):
        dec.decode(hm, centers, scales)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
