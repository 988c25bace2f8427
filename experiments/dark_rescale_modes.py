"""Classic DARK's exact rescale: what it costs and where its full-map blur runs (GPU machine).

Graph-replay time at batch 1 and 64 for cupy-full and numba-full with the full blur's
horizontal pass in shared memory (mode 1, the default) or everything from global memory
(mode 0, the fallback for maps over 48 KiB), on realistic maps (about 10% noise-only maps need
the exact rescale) and on maps where none does (no occluded joints).
"""

from __future__ import annotations

import numpy as np
import torch
from posefw.benchmarks.timing import graph_time
from posefw.conformance.cases import gaussian_maps, realistic

import posefw


def clean(seed: int, n: int) -> np.ndarray:
    """Model-like maps without occluded joints: no map needs the exact rescale."""
    rng = np.random.default_rng(seed)
    return gaussian_maps(
        rng,
        n,
        17,
        64,
        48,
        sigma=rng.uniform(1.6, 2.6, (n, 17)),
        margin=3,
        noise=0.01,
        amplitude=rng.uniform(0.3, 1.0, (n, 17)),
    )


def main() -> None:
    for mode in (1, 0):  # the decoders' own option, not a patched module function
        for name in ("cupy-full", "numba-full"):
            dec = posefw.create_decoder(name, algorithm="dark", blur_staging=mode)
            row = []
            for label, make in (("realistic", realistic), ("clean", clean)):
                for b in (1, 64):
                    xs = [torch.from_numpy(make(100 + i, n=b)).cuda() for i in range(8)]
                    ms = graph_time(lambda i, xs=xs, dec=dec: dec.decode(xs[i % 8])).median
                    row.append(f"{label} b={b}: {ms * 1e3:5.1f} us")
            ref = posefw.create_decoder("numpy-cpu", algorithm="dark").decode(realistic(7, n=8))
            got = dec.decode(torch.from_numpy(realistic(7, n=8)).cuda()).numpy()
            same = bool((got.scores == ref.scores).all())
            err = float(abs(got.keypoints - ref.keypoints).max())
            print(
                f"{name:<11} mode={mode} " + "  ".join(row) + f"  scores identical: {same}  max |dkp| {err:.1e} px",
                flush=True,
            )


if __name__ == "__main__":
    main()
