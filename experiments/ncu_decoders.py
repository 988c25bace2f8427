"""A few launches of cupy-full and numba-full at batch 64 fp32, for Nsight Compute to profile.

    ncu -k regex:"decode|dark_f32" --launch-skip 4 -c 2 --section LaunchStats --section Occupancy \\
        --section SpeedOfLight python experiments/ncu_decoders.py
"""

from __future__ import annotations

import torch
from posefw.conformance.cases import realistic

import posefw


def main() -> None:
    hm = torch.from_numpy(realistic(0, n=64)).cuda()
    for name in ("cupy-full", "numba-full"):
        dec = posefw.create_decoder(name)
        for _ in range(5):
            dec.decode(hm)
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
