"""Seeded heatmap case families for numeric conformance.

Each case is a named batch of heatmaps (float32 or float16, possibly non-contiguous) plus the
decoder options it targets. Families: realistic model-like maps and adversarial ones (ties,
borders, degenerate values, non-finite, fp16 extremes, odd sizes, odd K and batch sizes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    heatmaps: np.ndarray
    seed: int  # the suite seed: cases(seed) rebuilds this case exactly
    family: str
    #: what a failure in this case most likely means (shown in reports).
    hint: str = ""


def gaussian_maps(
    rng: np.random.Generator, n: int, k: int, h: int, w: int, sigma=2.0, margin=0.0, noise=0.0, amplitude=1.0
) -> np.ndarray:
    """Sub-pixel Gaussian peaks like a trained model's heatmaps."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = rng.uniform(margin, w - 1 - margin, (n, k, 1, 1))
    cy = rng.uniform(margin, h - 1 - margin, (n, k, 1, 1))
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n, k)).reshape(n, k, 1, 1)
    amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (n, k)).reshape(n, k, 1, 1)
    maps = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig * sig))
    if noise:
        maps = maps + rng.normal(0.0, noise, maps.shape)
    return maps.astype(np.float32)


def realistic(seed: int, n: int = 7, k: int = 17, h: int = 64, w: int = 48) -> np.ndarray:
    """Model-like maps: σ jitter, sub-pixel centres, noise with negative values, occluded joints."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(1.6, 2.6, (n, k))
    amp = rng.uniform(0.3, 1.0, (n, k))
    maps = gaussian_maps(rng, n, k, h, w, sigma=sigma, margin=3, noise=0.01, amplitude=amp)
    occluded = rng.random((n, k)) < 0.1
    maps[occluded] = rng.normal(0.0, 0.01, (int(occluded.sum()), h, w)).astype(np.float32)
    return maps


def _adversarial(seed: int) -> Iterator[Case]:
    """Adversarial families; ``seed`` is the suite seed that reproduces them."""
    rng = np.random.default_rng(seed + 1)
    n, k, h, w = 2, 17, 64, 48
    base = gaussian_maps(rng, n, k, h, w, margin=3)

    ties = np.zeros((n, k, h, w), np.float32)
    for j in range(k):
        pts = rng.choice(h * w, size=2 + j % 3, replace=False)
        ties[:, j].reshape(n, -1)[:, pts] = 0.8
    ties[:, 0, 10:14, 20:26] = 0.9  # a plateau
    yield Case(
        "ties-and-plateaus", ties, seed, "argmax", "tie-break: the first maximum in row-major (y, then x) order wins"
    )

    border = np.zeros((n, k, h, w), np.float32)
    spots = [
        (0, 0),
        (0, w - 1),
        (h - 1, 0),
        (h - 1, w - 1),
        (0, 20),
        (h - 1, 20),
        (30, 0),
        (30, w - 1),
        (1, 1),
        (h - 2, w - 2),
        (2, 2),
        (h - 3, w - 3),
        (1, 20),
        (30, 1),
        (h - 2, 20),
        (30, w - 2),
        (31, 24),
    ]
    yy, xx = np.mgrid[0:h, 0:w]
    for j, (py, px) in enumerate(spots[:k]):
        border[:, j] = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / 8.0)
    yield Case(
        "peaks-on-borders-and-corners",
        border,
        seed,
        "border",
        "edge rules: reflect-101 blur, edge padding (UDP), interior test (DARK)",
    )

    degenerate = base.copy()
    degenerate[:, 0] = 0.0
    degenerate[:, 1] = -rng.uniform(0.1, 1.0, (n, h, w))
    degenerate[:, 2] = 0.25
    degenerate[:, 3] *= 120.0  # above the UDP clip of 50
    degenerate[:, 4] *= 1e-6  # tiny positive peak
    degenerate[:, 5] = -1.0
    degenerate[:, 5, 30, 20] = 1e-12  # a lone tiny positive among negatives
    degenerate[:, 6] = 1e-12
    degenerate[:, 6, 31, 21] = 1e-9  # modulated values fall below the 1e-10 floor
    yield Case(
        "degenerate-values",
        degenerate,
        seed,
        "degenerate",
        "zero/negative maps stay at (-1, -1) with their raw maximum as score; clip, floor and rescale rules",
    )

    nonfinite = base.copy()
    nonfinite[0, 0, 5, 5] = np.nan
    nonfinite[0, 1, 40, 30] = np.inf
    nonfinite[0, 2, 7, 9] = -np.inf
    nonfinite[1, 3] = np.nan
    nonfinite[0, 4] = np.nan  # an all-NaN map in the first crop too (suites cut to one crop keep one)
    yield Case(
        "non-finite",
        nonfinite,
        seed,
        "nonfinite",
        "a map with any NaN/Inf gives a NaN keypoint and NaN score; the rest of the batch is untouched",
    )

    faint = gaussian_maps(rng, n, k, h, w, margin=4, amplitude=rng.uniform(1.5e-10, 3e-10, (n, k)))
    yield Case(
        "floor-straddle",
        faint,
        seed,
        "degenerate",
        "classic DARK rescales the blurred map to the raw maximum before the 1e-10 floor and the log",
    )

    fp16 = (base * rng.choice([1.0, 1000.0, 65000.0, 1e-4], size=(n, k, 1, 1))).astype(np.float16)
    yield Case("float16-extremes", fp16, seed, "dtype", "float16 input converted exactly to float32")


#: Cases too large to build unless asked for by name or in a full run (they have their own seeds).
LARGE = ("batch-301",)


def cases(seed: int = 0, names: set[str] | None = None) -> list[Case]:
    """All case families for one seed, or the ``names`` among them (large ones built only if named)."""
    built = _build(seed, large=names is None or bool(set(LARGE) & set(names)))
    return built if names is None else [c for c in built if c.name in names]


def case_names() -> list[str]:
    """Every case name (the large cases are not built for this)."""
    return [c.name for c in _build(0, large=False)] + list(LARGE)


def _build(seed: int, large: bool) -> list[Case]:
    rng = np.random.default_rng(seed)
    out = [Case("realistic", realistic(seed), seed, "realistic", "sub-pixel DARK refinement on model-like maps")]
    out += list(_adversarial(seed))
    for h, w in [(1, 1), (3, 3), (5, 5), (17, 13), (32, 24)]:
        maps = gaussian_maps(rng, 2, 3, h, w, sigma=max(0.5, min(h, w) / 6), noise=0.01)
        out.append(
            Case(f"size-{h}x{w}", maps, seed, "size", "small and odd map sizes (reflect-101 repeats, tiny maps)")
        )
    for k in (1, 5, 133):
        out.append(Case(f"k-{k}", realistic(seed + k, n=2, k=k), seed, "k", "K other than 17"))
    for n in (0, 1, 7, 64, 65):
        out.append(Case(f"batch-{n}", realistic(seed + 100 + n, n=n), seed, "batch", "batch sizes, including empty"))
    if large:
        out.append(
            Case(
                "batch-301",
                realistic(seed + 401, n=301),
                seed,
                "batch",
                "more crops than a batch of 64 and beyond mmpose's float32 flat index (about 299 crops)",
            )
        )
    big = realistic(seed + 3, n=4, k=34)
    out.append(Case("non-contiguous", big[:, ::2], seed, "layout", "strided input must be read through its strides"))
    out.append(Case("float16", realistic(seed + 4).astype(np.float16), seed, "dtype", "float16 input"))
    large = gaussian_maps(rng, 1, 3, 120, 104, margin=4, amplitude=rng.uniform(1.5e-10, 3e-10, (1, 3)))
    out.append(
        Case(
            "large-floor-straddle",
            large,
            seed,
            "size",
            "a map too large for the shared-memory full blur: the classic-DARK rescale from global memory",
        )
    )
    return out


def well_conditioned(heatmaps: np.ndarray, algorithm: str, kernel: int = 11) -> np.ndarray:
    """(N, K) mask of keypoints whose Taylor step is well conditioned under the reference.

    A clear, strictly concave peak (Hessian negative definite with margin) and a step under
    one pixel. Elsewhere float rounding can legitimately move the refined point far, so only
    the argmax-level rules apply (see docs/conformance.md).
    """
    from posefw import dark as ref

    hm = np.ascontiguousarray(heatmaps, dtype=np.float32)
    n, k, h, w = hm.shape
    if n == 0 or algorithm == "argmax":
        return np.ones((n, k), bool)
    flat = hm.reshape(n * k, h * w)
    idx, score, finite = ref.peaks(flat)
    y, x = np.divmod(idx, w)
    ok = finite & (score > 0)
    with np.errstate(all="ignore"):
        if algorithm == "dark-udp":
            d = ref.udp_derivatives(flat, x, y, h, w, kernel)
        else:
            ok &= ref.dark_interior(x, y, h, w)
            d = ref.dark_derivatives(
                flat, np.clip(x, 2, max(w - 3, 2)), np.clip(y, 2, max(h - 3, 2)), h, w, kernel, score
            )
        dx, dy, dxx, dxy, dyy = (d[:, i].astype(np.float64) for i in range(5))
        det = dxx * dyy - dxy * dxy
        step = np.hypot((dyy * dx - dxy * dy) / det, (dxx * dy - dxy * dx) / det)
        ok &= (dxx < -1e-2) & (dyy < -1e-2) & (det > 1e-4) & (step < 1.0) & np.isfinite(step)
    return ok.reshape(n, k)
