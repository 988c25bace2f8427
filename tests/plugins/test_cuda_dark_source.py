"""Launch-shape rules and source specialisation of the CUDA decoders (pure Python: no GPU needed)."""

from __future__ import annotations

from posefw.plugins.cuda_dark_source import (
    SMEM_BLUR_BYTES,
    THREADS,
    block_threads,
    smem_blur_mode,
    source,
)


def test_block_size_follows_the_grid():
    """One block per heatmap: 512 threads when every block has an SM to itself, else 128 (occupancy)."""
    assert block_threads(17, 132) == 512  # one person on an H100
    assert block_threads(132, 132) == 512
    assert block_threads(133, 132) == THREADS == 128
    assert block_threads(64 * 17, 132) == 128


def test_full_blur_scratch_only_for_classic_dark_maps_that_fit():
    assert smem_blur_mode("dark", 64, 48) == 1
    assert smem_blur_mode("dark", 96, 128) == 1 and 4 * 96 * 128 == SMEM_BLUR_BYTES
    assert smem_blur_mode("dark", 120, 104) == 0  # case large-floor-straddle: blurs from global memory
    assert smem_blur_mode("dark-udp", 64, 48) == smem_blur_mode("argmax", 64, 48) == 0


def test_source_is_specialised_per_kernel_and_block_size():
    src = source(11, 512)
    assert "#define THREADS 512" in src and "#define KSIZE 11" in src
    assert "__launch_bounds__(THREADS)" in src
    assert source(5) != source(11) and "#define THREADS 128" in source(5)
