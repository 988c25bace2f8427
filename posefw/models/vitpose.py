"""ViTPose in PyTorch, module names matching the official checkpoints (``backbone.*``, ``keypoint_head.*``).

Plain ViT exactly as ViTPose defines it: patch 16 with padding 2 (16x12 tokens from 256x192),
absolute position embedding without a class token (every token gets pos[1:] + pos[:1]),
pre-norm blocks with qkv bias and LayerNorm eps 1e-6, fused attention, final norm; then the
classic head (two 4x4 stride-2 transposed convs + BN + ReLU, 1x1 conv) or the simple head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .fused_ops import linear_gelu_tanh
from .head_kernel import bn_relu_conv1x1


@dataclass(frozen=True)
class ViTPoseConfig:
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    num_keypoints: int = 17
    image_size: tuple[int, int] = (256, 192)  # (H, W)
    patch: int = 16
    head: str = "classic"  # or "simple"
    deconv_channels: int = 256


SIZES = {
    "s": ViTPoseConfig(dim=384, depth=12, heads=12),
    "b": ViTPoseConfig(dim=768, depth=12, heads=12),
    "l": ViTPoseConfig(dim=1024, depth=24, heads=16),
    "h": ViTPoseConfig(dim=1280, depth=32, heads=16),
}


class PatchEmbed(nn.Module):
    """ViTPose's patch embedding: a 16x16 stride-16 convolution with padding 2, 3 -> dim channels.

    Computed as the same sums in another layout: pad, cut the image into patches, one matmul
    with the flattened conv weight. cuDNN runs a 3-input-channel fp16 convolution in a generic
    kernel (0.46 ms of a 6.6 ms batch-64 pass on an H100, plus layout transposes); as a GEMM it
    is one of the cheapest steps. The parameter is still the conv's, so checkpoints load as is.
    """

    def __init__(self, dim: int, patch: int, padding: int = 2):
        super().__init__()
        self.patch, self.padding = patch, padding
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p, pad = self.patch, self.padding
        gh, gw = (h + 2 * pad - p) // p + 1, (w + 2 * pad - p) // p + 1
        x = F.pad(x, (pad, pad, pad, pad))[:, :, : gh * p, : gw * p]
        x = x.reshape(n, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c * p * p)
        return torch.addmm(self.proj.bias, x.reshape(-1, c * p * p), self.proj.weight.flatten(1).t()).reshape(
            n, gh * gw, -1
        )


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.flex_block: int | None = None  # tile size when flex attention is on (ViTPose.flex_attention)
        self.block_mask = None  # flex attention's all-visible BlockMask, built once (ViTPose.flex_attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.flex_block:
            from torch.nn.attention.flex_attention import flex_attention

            tiles = {"BLOCK_M": self.flex_block, "BLOCK_N": self.flex_block} if x.is_cuda else None
            mask = self.block_mask
            if mask is not None and (mask.kv_num_blocks.device != x.device or mask.seq_lengths != (n, n)):
                mask = None  # built for another device or token count: flex makes its default per call
            out = flex_attention(qkv[0], qkv[1], qkv[2], block_mask=mask, kernel_options=tiles)
        else:
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.fused_gelu = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_gelu:
            return self.fc2(linear_gelu_tanh(x, self.fc1.weight, self.fc1.bias))
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, cfg: ViTPoseConfig):
        super().__init__()
        h, w = cfg.image_size
        self.grid = ((h + 4 - cfg.patch) // cfg.patch + 1, (w + 4 - cfg.patch) // cfg.patch + 1)
        self.patch_embed = PatchEmbed(cfg.dim, cfg.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1] + 1, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.last_norm = nn.LayerNorm(cfg.dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            x = blk(x)
        x = self.last_norm(x)
        return x.transpose(1, 2).reshape(b, -1, self.grid[0], self.grid[1])


class ClassicHead(nn.Module):
    """mmpose TopdownHeatmapSimpleHead with two deconvolutions (the "classic decoder")."""

    def __init__(self, cfg: ViTPoseConfig):
        super().__init__()
        c = cfg.deconv_channels
        self.deconv_layers = nn.Sequential(
            nn.ConvTranspose2d(cfg.dim, c, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, c, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )
        self.final_layer = nn.Conv2d(c, cfg.num_keypoints, 1)
        self.fused_tail = False  # last BatchNorm + ReLU + 1x1 conv in one Triton kernel (ViTPose.fuse_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_tail:
            bn, final = self.deconv_layers[4], self.final_layer
            x = self.deconv_layers[:4](x)
            return bn_relu_conv1x1(
                x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps, final.weight, final.bias
            )
        x = self.deconv_layers(x)
        # The 1x1 conv to K=17 channels as (K, C) @ (C, H*W) per image, straight into NCHW:
        # cuDNN runs a 17-channel output in a slow generic kernel.
        n, c, h, w = x.shape
        y = torch.matmul(self.final_layer.weight.flatten(1), x.reshape(n, c, h * w))
        return (y + self.final_layer.bias[:, None]).reshape(n, -1, h, w)


class SimpleHead(nn.Module):
    """ViTPose's simple decoder: ReLU, bilinear x4, 3x3 conv."""

    def __init__(self, cfg: ViTPoseConfig):
        super().__init__()
        self.final_layer = nn.Conv2d(cfg.dim, cfg.num_keypoints, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(F.relu(x), scale_factor=4, mode="bilinear", align_corners=False)
        return self.final_layer(x)


class ViTPose(nn.Module):
    """Images (N, 3, 256, 192), ImageNet-normalised -> heatmaps (N, K, 64, 48)."""

    def __init__(self, cfg: ViTPoseConfig = SIZES["b"]):
        super().__init__()
        self.cfg = cfg
        self.backbone = ViT(cfg)
        self.keypoint_head = ClassicHead(cfg) if cfg.head == "classic" else SimpleHead(cfg)
        self.head_channels_last = False

    def fuse_gelu(self, on: bool = True) -> ViTPose:
        """Run each MLP's fc1 + bias + GELU as one cuBLASLt GEMM with its GELU epilogue
        (``on=False``: back to the separate erf GELU).

        That epilogue is GELU's tanh form, not erf: |difference| <= 4.8e-4 (at x = 2.7, where an
        fp16 activation is rounded by up to 9.8e-4), measured to move heatmaps no more than fp16
        itself does (docs/engines.md). It saves writing and re-reading the 4x-wide MLP
        activations. The torch engine's default in fp16 only; fp32 and bf16 keep erf.
        """
        for m in self.modules():
            if isinstance(m, Mlp):
                m.fused_gelu = on
        return self

    def flex_attention(self, block: int | None = 64) -> ViTPose:
        """Attention through torch's flex_attention with block x block tiles instead of SDPA
        (``None``: back to SDPA).

        The same softmax attention, computed by a Triton kernel that torch.compile generates (eager
        flex attention is an unfused reference: use it compiled). ViTPose has 192 tokens, which
        64-wide tiles cover exactly; on an H100 this took batch 1 from 0.535 to 0.497 ms and batch
        64 from 11,400 to 11,578 img/s against cuDNN's fused attention (docs/results/benchmarks-history.md).
        """
        from torch.nn.attention.flex_attention import BlockMask

        mask = None
        if block:
            # Built once here: left to flex_attention, its default mask is two tensors made anew on
            # every call, 24 tiny kernels per pass (~5% of batch 1 on an H100). Like that default, it
            # is one block covering every token (no mask function): a mask of 64-token "full" blocks
            # measured 8% slower attention, the kernel then loading block indices per tile.
            tokens = self.backbone.grid[0] * self.backbone.grid[1]
            device = self.backbone.pos_embed.device
            mask = BlockMask.from_kv_blocks(
                torch.ones(1, 1, 1, dtype=torch.int32, device=device),
                torch.zeros(1, 1, 1, 1, dtype=torch.int32, device=device),
                BLOCK_SIZE=-(-tokens // 128) * 128,
                seq_lengths=(tokens, tokens),
            )
        for m in self.modules():
            if isinstance(m, Attention):
                m.flex_block, m.block_mask = block, mask
        return self

    def fuse_head(self, on: bool = True) -> ViTPose:
        """Run the classic head's last BatchNorm + ReLU + 1x1 conv as one Triton kernel on CUDA
        (``posefw.models.head_kernel``): the 64x48 maps are read once instead of three times and
        the heatmaps come out in fp32. The same arithmetic as the modules, in fp32 registers.
        """
        if not isinstance(self.keypoint_head, ClassicHead):
            raise ValueError("fuse_head: only the classic head has the BatchNorm + ReLU + 1x1 conv tail")
        self.keypoint_head.fused_tail = on
        return self

    def plain(self) -> ViTPose:
        """Back to the checkpoint's exact function in plain modules: SDPA attention, erf GELU, the
        unfused head (what ONNX export needs: none of the fused kernels has an ONNX form)."""
        self.flex_attention(None).fuse_gelu(False)
        if isinstance(self.keypoint_head, ClassicHead):
            self.fuse_head(False)
        return self

    def channels_last_head(self) -> ViTPose:
        """Run the convolutional head in NHWC, where cuDNN's fp16 (de)convolutions are fastest."""
        self.keypoint_head.to(memory_format=torch.channels_last)
        self.head_channels_last = True
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(images)
        if self.head_channels_last:
            feats = feats.contiguous(memory_format=torch.channels_last)
        return self.keypoint_head(feats)


def random_vitpose(size: str = "b", seed: int = 0, **overrides) -> ViTPose:
    """Seeded random weights (no checkpoint): outputs say "random weights" wherever accuracy is shown."""
    cfg = SIZES[size]
    if overrides:
        cfg = ViTPoseConfig(**{**cfg.__dict__, **overrides})
    g = torch.Generator().manual_seed(seed)
    model = ViTPose(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        model.backbone.pos_embed.copy_(torch.randn(model.backbone.pos_embed.shape, generator=g) * 0.02)
    return model.eval()
