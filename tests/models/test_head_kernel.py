"""The fused head tail (BatchNorm + ReLU + 1x1 conv in one Triton kernel) against the modules.

On the CPU the kernel runs under Triton's interpreter; on a GPU, for real, inside the model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from posefw.models import head_kernel  # noqa: E402
from posefw.models.vitpose import random_vitpose  # noqa: E402

SMALL = dict(dim=64, depth=2, heads=4, deconv_channels=96)


def tail_inputs(c: int, k: int, dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bn = (
        torch.rand(c, generator=g) + 0.5,
        torch.randn(c, generator=g),
        0.1 * torch.randn(c, generator=g),
        torch.rand(c, generator=g) + 0.5,
    )
    w = 0.05 * torch.randn(k, c, 1, 1, generator=g)
    b = torch.randn(k, generator=g)
    return tuple(t.to(dtype) for t in bn), w.to(dtype), b.to(dtype)


@pytest.fixture
def interpreted(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed: the kernel cannot be interpreted")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_kernel_matches_the_modules(interpreted, dtype, channels_last):
    """Odd sizes on purpose: channels not a multiple of the 64-channel step, pixels not of the
    128-pixel tile, keypoints under the padded 32."""
    c, k = 96, 17
    x = torch.randn(3, c, 10, 15, generator=torch.Generator().manual_seed(1)).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    bn, w, b = tail_inputs(c, k, dtype)
    got = head_kernel.launch(x, bn, 1e-5, w, b)
    ref = head_kernel.reference(x.float(), tuple(t.float() for t in bn), 1e-5, w.float(), b.float())
    assert got.dtype == torch.float32 and got.shape == (3, k, 10, 15)
    # fp16: the normalised activations are rounded to fp16 for the tensor cores, as the unfused
    # fp16 head stores them; fp32: exact products (no TF32).
    tol = 2e-3 if dtype == torch.float16 else 1e-5
    assert (got - ref).abs().max() <= tol * ref.abs().max()


def test_kernel_on_a_strided_view(interpreted):
    """A view whose rows cannot be flattened into one pixel axis is copied first, not misread."""
    bn, w, b = tail_inputs(64, 5, torch.float32)
    x = torch.randn(2, 64, 12, 20)[..., ::2]
    ref = head_kernel.reference(x, bn, 1e-5, w, b)
    torch.testing.assert_close(head_kernel.launch(x, bn, 1e-5, w, b), ref, rtol=1e-5, atol=1e-5)


def test_too_many_keypoints_is_an_error():
    bn, w, b = tail_inputs(8, head_kernel.BLOCK_K + 1, torch.float32)
    with pytest.raises(ValueError, match="weight: at most 32 output channels, got 33"):
        head_kernel.launch(torch.zeros(1, 8, 4, 4), bn, 1e-5, w, b)


def test_fused_head_model_equals_the_modules():
    """fuse_head changes how the tail runs (torch ops on the CPU), not what the model computes."""
    m = random_vitpose("b", **SMALL)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the fold is exercised
        for bn in (m.keypoint_head.deconv_layers[1], m.keypoint_head.deconv_layers[4]):
            bn.running_mean.uniform_(-0.1, 0.1), bn.running_var.uniform_(0.5, 1.5), bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = m(x)
        got = m.fuse_head()(x)
    assert m.keypoint_head.fused_tail and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="fuse_head: only the classic head"):
        random_vitpose("b", **SMALL, head="simple").fuse_head()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("compiled", [False, True])
def test_fused_head_on_the_gpu(compiled):
    """The real kernel in an fp16 model, eager and compiled, against the unfused fp16 model."""
    m = random_vitpose("b", **SMALL).cuda().half()
    with torch.no_grad():
        for bn in (m.keypoint_head.deconv_layers[1], m.keypoint_head.deconv_layers[4]):
            bn.running_mean.uniform_(-0.1, 0.1), bn.running_var.uniform_(0.5, 1.5)
    x = torch.randn(5, 3, 256, 192, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        ref = m(x).float()
        m.fuse_head()
        got = (torch.compile(m) if compiled else m)(x)
    assert got.dtype == torch.float32
    # The unfused head rounds its heatmaps to fp16; the kernel keeps its fp32 accumulator.
    assert (got - ref).abs().max() <= 2e-3 * ref.abs().max()
