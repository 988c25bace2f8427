"""The classic head's last BatchNorm + ReLU + 1x1 convolution (C -> K keypoints) as one Triton kernel.

Unfused, the 256-channel 64x48 maps (100 MB at batch 64 in fp16) are written by the transposed
convolution, read and written again by BatchNorm+ReLU, and read a third time by the 17-channel
1x1 convolution, which cuBLAS runs in a slow generic kernel (an H100 profile: 68 + 85 us at batch
64). Here each program reads its pixels' channels once, normalises them in registers and
multiplies by the (K, C) weight with the tensor cores: one read of the maps, fp32 heatmaps out.

Triton is imported lazily, so this module imports without it (and without a GPU); ``launch``
also runs on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``), which CI uses.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

#: Tile sizes: keypoints padded to a tensor-core multiple, channels per step, pixels per program.
BLOCK_K, BLOCK_C, BLOCK_P = 32, 64, 128


def triton_unavailable() -> str | None:
    """Why the fused head cannot run here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (it comes with CUDA builds of torch)"
    return None


@functools.cache
def _kernel(interpret: bool):
    """The jitted kernel; built per mode because triton.jit picks the interpreter when it decorates."""
    import triton
    import triton.language as tl

    @triton.jit
    def bn_relu_conv1x1(
        x_ptr,
        gamma_ptr,
        beta_ptr,
        mean_ptr,
        var_ptr,
        w_ptr,
        b_ptr,
        out_ptr,
        P,
        K,
        eps,
        sxn,
        sxc,
        sxp,
        son,
        sok,
        C: tl.constexpr,
        BK: tl.constexpr,
        BC: tl.constexpr,
        BP: tl.constexpr,
        IEEE: tl.constexpr,
    ):
        # C is a compile-time constant (256 in ViTPose): the channel loop unrolls, and Triton 3.6's
        # interpreter cannot range over a run-time integer under NumPy 2.4.
        n = tl.program_id(1).to(tl.int64)
        p = tl.program_id(0) * BP + tl.arange(0, BP)
        k = tl.arange(0, BK)
        pm, km = p < P, k < K
        # tl.full, not tl.zeros: zeros is a jit helper, which the interpreter cannot call when
        # triton was imported before TRITON_INTERPRET was set (as in a test run).
        acc = tl.full((BK, BP), 0.0, dtype=tl.float32)
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            cm = c < C
            scale = tl.load(gamma_ptr + c, mask=cm, other=0.0).to(tl.float32) * tl.rsqrt(
                tl.load(var_ptr + c, mask=cm, other=1.0).to(tl.float32) + eps
            )
            shift = tl.load(beta_ptr + c, mask=cm, other=0.0).to(tl.float32) - scale * tl.load(
                mean_ptr + c, mask=cm, other=0.0
            ).to(tl.float32)
            x = tl.load(
                x_ptr + n * sxn + c[:, None] * sxc + p[None, :] * sxp, mask=cm[:, None] & pm[None, :], other=0.0
            )
            w = tl.load(w_ptr + k[:, None] * C + c[None, :], mask=km[:, None] & cm[None, :], other=0.0)
            a = tl.maximum(x.to(tl.float32) * scale[:, None] + shift[:, None], 0.0).to(w.dtype)
            if IEEE:  # fp32 weights: no TF32 rounding
                acc += tl.dot(w, a, input_precision="ieee")
            else:
                acc += tl.dot(w, a)
        acc += tl.load(b_ptr + k, mask=km, other=0.0).to(tl.float32)[:, None]
        tl.store(out_ptr + n * son + k[:, None] * sok + p[None, :], acc, mask=km[:, None] & pm[None, :])

    return bn_relu_conv1x1


def _pixel_stride(x: torch.Tensor) -> torch.Tensor:
    """x with its (H, W) flattenable into one pixel axis of one stride (NCHW and NHWC both are)."""
    return x if x.stride(2) == x.shape[3] * x.stride(3) else x.contiguous()


def launch(
    x: torch.Tensor, bn: tuple[torch.Tensor, ...], eps: float, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """fp32 ``conv1x1(relu(batchnorm(x)))`` by the Triton kernel. bn = (gamma, beta, running mean, running var)."""
    x = _pixel_stride(x)
    n, c, h, w = x.shape
    k = weight.shape[0]
    if k > BLOCK_K:
        raise ValueError(f"weight: at most {BLOCK_K} output channels, got {k}")
    out = torch.empty((n, k, h, w), device=x.device, dtype=torch.float32)
    grid = (-(-h * w // BLOCK_P), n)
    # Triton launches on the current CUDA device: make it the tensors' (cuda:1 with cuda:0 current).
    on_device = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
    with on_device:
        _kernel(os.environ.get("TRITON_INTERPRET") == "1")[grid](
            x,
            *bn,
            weight.reshape(k, c).contiguous(),
            bias,
            out,
            h * w,
            k,
            float(eps),
            x.stride(0),
            x.stride(1),
            x.stride(3),
            out.stride(0),
            out.stride(1),
            C=c,
            BK=BLOCK_K,
            BC=BLOCK_C,
            BP=BLOCK_P,
            IEEE=weight.dtype == torch.float32,
        )
    return out


def reference(
    x: torch.Tensor, bn: tuple[torch.Tensor, ...], eps: float, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The same function in torch ops (the unfused head), in fp32."""
    gamma, beta, mean, var = bn
    y = torch.relu(torch.nn.functional.batch_norm(x, mean, var, gamma, beta, False, 0.0, eps))
    return torch.nn.functional.conv2d(y, weight.reshape(weight.shape[0], -1, 1, 1), bias).float()


@torch.library.custom_op("posefw::bn_relu_conv1x1", mutates_args=())
def bn_relu_conv1x1(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """fp32 heatmaps from the head's last deconvolution output: one Triton kernel on CUDA, torch ops elsewhere."""
    bn = (gamma, beta, mean, var)
    return launch(x, bn, eps, weight, bias) if x.is_cuda else reference(x, bn, eps, weight, bias)


@bn_relu_conv1x1.register_fake
def _(x, gamma, beta, mean, var, eps, weight, bias):
    return x.new_empty((x.shape[0], weight.shape[0], x.shape[2], x.shape[3]), dtype=torch.float32)
