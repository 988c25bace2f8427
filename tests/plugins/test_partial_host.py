"""cupy-partial's host half: the compiled loop gives the same bits as numpy-cpu's vectorised steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posefw.plugins.cuda_dark_source import (
    CODE_KEEP,
    CODE_NONFINITE,
    CODE_REFINE,
    CODE_SKIP,
    PARTIAL_WIDTH,
)
from posefw.plugins.partial_host import (
    compiled_finisher,
    finish_compiled,
    finish_loop,
    finish_numpy,
)

ALGOS = ("dark-udp", "dark", "argmax")


def _parts(seed: int, n: int, k: int) -> np.ndarray:
    """Per-keypoint rows as the kernel writes them, with the edge cases the solve must agree on."""
    rng = np.random.default_rng(seed)
    m = n * k
    p = np.zeros((m, PARTIAL_WIDTH), np.float32)
    p[:, 0] = rng.normal(0.5, 0.5, m)
    p[:, 1] = rng.integers(0, 48, m)
    p[:, 2] = rng.integers(0, 64, m)
    p[:, 3] = rng.choice([CODE_SKIP, CODE_REFINE, CODE_REFINE, CODE_KEEP, CODE_NONFINITE], m)
    p[:, 4:6] = rng.normal(0, 0.3, (m, 2))
    p[:, 6] = -rng.uniform(0.01, 3, m)
    p[:, 8] = -rng.uniform(0.01, 3, m)
    p[:, 7] = rng.normal(0, 0.5, m)
    kind = rng.integers(0, 6, m)
    p[kind == 0, 4:9] = 0.0  # singular: keeps the argmax
    p[kind == 1, 7] = np.sqrt(p[kind == 1, 6] * p[kind == 1, 8])  # det ~ 0 in float32
    p[kind == 2, 4] = np.float32(3e38)  # a huge step: non-finite offset
    p[kind == 3, 5] = 0.0  # argmax: no shift in y
    return p


def _boxes(seed: int, n: int):
    rng = np.random.default_rng(seed + 1)
    centers = rng.uniform(0, 2000, (n, 2))
    scales = rng.uniform(10, 900, (n, 2))
    return centers, scales


def _same(a, b):
    np.testing.assert_array_equal(a.keypoints, b.keypoints)  # NaN == NaN here, bit-level otherwise
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.keypoints.dtype == b.keypoints.dtype == np.float32


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 9), with_boxes=st.booleans(), algorithm=st.sampled_from(ALGOS))
def test_python_loop_equals_numpy_steps(seed, n, with_boxes, algorithm):
    parts, k = _parts(seed, n, 17), 17
    boxes = _boxes(seed, n) if with_boxes else None
    udp = algorithm == "dark-udp"
    with np.errstate(all="ignore"):
        ref = finish_numpy(parts, algorithm, boxes, (48, 64), udp, n, k)
        got = finish_compiled(finish_loop, parts, algorithm, boxes, (48, 64), udp, n, k)
    _same(got, ref)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("with_boxes", [False, True])
def test_compiled_loop_equals_numpy_steps(algorithm, with_boxes):
    run = compiled_finisher()
    if run is None:
        pytest.skip("numba is not installed: cupy-partial uses the NumPy steps")
    n, k = 64, 17
    for seed in range(5):
        parts = _parts(seed, n, k)
        boxes = _boxes(seed, n) if with_boxes else None
        udp = algorithm == "dark-udp"
        with np.errstate(all="ignore"):
            ref = finish_numpy(parts, algorithm, boxes, (48, 64), udp, n, k)
        _same(finish_compiled(run, parts, algorithm, boxes, (48, 64), udp, n, k), ref)
