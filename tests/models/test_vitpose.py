"""ViTPose architecture and checkpoint loading in both real key layouts (generated weights)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from posefw.models.checkpoints import CheckpointError, from_huggingface, load_vitpose  # noqa: E402
from posefw.models.vitpose import SIZES, ViTPose, ViTPoseConfig, random_vitpose  # noqa: E402

SMALL = dict(dim=64, depth=2, heads=4, deconv_channels=32)


def small(seed=0, **kw):
    return random_vitpose("b", seed=seed, **{**SMALL, **kw})


def test_vitpose_b_shapes_and_key_layout():
    m = ViTPose(SIZES["b"])
    sd = m.state_dict()
    assert sd["backbone.pos_embed"].shape == (1, 193, 768)
    assert sd["backbone.patch_embed.proj.weight"].shape == (768, 3, 16, 16)
    assert sd["backbone.blocks.11.attn.qkv.weight"].shape == (2304, 768)
    assert sd["backbone.blocks.0.mlp.fc1.weight"].shape == (3072, 768)
    assert sd["keypoint_head.deconv_layers.0.weight"].shape == (768, 256, 4, 4)
    assert sd["keypoint_head.deconv_layers.4.running_var"].shape == (256,)
    assert sd["keypoint_head.final_layer.weight"].shape == (17, 256, 1, 1)
    assert m.backbone.patch_embed.proj.padding == (2, 2)
    assert all(b.norm1.eps == 1e-6 for b in m.backbone.blocks)


def test_output_shape_and_dead_input_pixels():
    m = small()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        y = m(x)
        x2 = x.clone()
        x2[:, :, 254:, :] = 5.0  # rows 254-255 never reach the output (patch 16, padding 2)
        x2[:, :, :, 190:] = -5.0
        y2 = m(x2)
    assert y.shape == (2, 17, 64, 48)
    torch.testing.assert_close(y, y2)


def test_official_checkpoint_roundtrip(tmp_path):
    src = small(seed=3)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["backbone.cls_token"] = torch.zeros(1, 1, 64)  # present in some official files, unused
    torch.save({"state_dict": sd, "meta": {"epoch": 210}}, tmp_path / "vitpose.pth")
    m = load_vitpose(tmp_path / "vitpose.pth", heads=4)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))
    assert m.cfg.dim == 64 and m.cfg.depth == 2 and m.cfg.head == "classic"


def to_hf(sd):
    """Official keys -> HuggingFace VitPoseForPoseEstimation keys (qkv split in three)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("backbone.blocks."):
            i, rest = k.split(".")[2], ".".join(k.split(".")[3:])
            base = f"backbone.encoder.layer.{i}."
            if rest.startswith("attn.qkv."):
                kind = rest.split(".")[-1]
                for name, part in zip(("query", "key", "value"), v.chunk(3, 0)):
                    out[f"{base}attention.attention.{name}.{kind}"] = part
                continue
            rest = (
                rest.replace("norm1.", "layernorm_before.")
                .replace("norm2.", "layernorm_after.")
                .replace("attn.proj.", "attention.output.dense.")
            )
            out[base + rest] = v
            continue
        k = (
            k.replace("backbone.patch_embed.proj.", "backbone.embeddings.patch_embeddings.projection.")
            .replace("backbone.pos_embed", "backbone.embeddings.position_embeddings")
            .replace("backbone.last_norm.", "backbone.layernorm.")
            .replace("keypoint_head.deconv_layers.0.", "head.deconv1.")
            .replace("keypoint_head.deconv_layers.1.", "head.batchnorm1.")
            .replace("keypoint_head.deconv_layers.3.", "head.deconv2.")
            .replace("keypoint_head.deconv_layers.4.", "head.batchnorm2.")
            .replace("keypoint_head.final_layer.", "head.conv.")
        )
        out[k] = v
    return out


def test_huggingface_safetensors_roundtrip(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    src = small(seed=4)
    st.save_file({k: v.contiguous() for k, v in to_hf(src.state_dict()).items()}, str(tmp_path / "model.safetensors"))
    m = load_vitpose(tmp_path / "model.safetensors", heads=4)
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))


def test_simple_head_layout(tmp_path):
    src = random_vitpose("b", seed=5, head="simple", **{k: v for k, v in SMALL.items() if k != "deconv_channels"})
    torch.save(src.state_dict(), tmp_path / "simple.pth")
    m = load_vitpose(tmp_path / "simple.pth", heads=4)
    assert m.cfg.head == "simple"
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))


def test_strict_loading_lists_keys_and_shapes(tmp_path):
    sd = small().state_dict()
    bad = dict(sd)
    del bad["backbone.last_norm.weight"]
    bad["keypoint_head.extra.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError,
        match=r"missing keys \['backbone.last_norm.weight'\].*unexpected keys \['keypoint_head.extra.weight'\]",
    ):
        load_vitpose(tmp_path / "bad.pth", heads=4)
    wrong = dict(sd)
    wrong["backbone.blocks.0.mlp.fc2.bias"] = torch.zeros(65)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="wrong shapes: backbone.blocks.0.mlp.fc2.bias"):
        load_vitpose(tmp_path / "wrong.pth", heads=4)
    with pytest.raises(FileNotFoundError, match="checkpoint: file not found"):
        load_vitpose(tmp_path / "none.pth")


def test_unknown_width_needs_heads(tmp_path):
    torch.save(small().state_dict(), tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="pass heads="):
        load_vitpose(tmp_path / "w.pth")


def test_hf_missing_qkv_part_is_an_error():
    with pytest.raises(CheckpointError, match="lacks"):
        from_huggingface(
            {
                "backbone.embeddings.position_embeddings": torch.zeros(1),
                "backbone.encoder.layer.0.attention.attention.query.weight": torch.zeros(1),
            }
        )


def test_same_heatmaps_as_transformers():
    tf = pytest.importorskip("transformers")
    if not hasattr(tf, "VitPoseForPoseEstimation"):
        pytest.skip("this transformers has no VitPose")
    bcfg = tf.VitPoseBackboneConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        layer_norm_eps=1e-6,
        image_size=[256, 192],
        patch_size=[16, 16],
        out_indices=[2],
        qkv_bias=True,
    )
    cfg = tf.VitPoseConfig(backbone_config=bcfg, use_simple_decoder=False, num_labels=17)
    torch.manual_seed(0)
    hf = tf.VitPoseForPoseEstimation(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    sd = {k: v for k, v in hf.state_dict().items()}
    ours = ViTPose(ViTPoseConfig(dim=64, depth=2, heads=4, mlp_ratio=4.0, deconv_channels=256)).eval()
    ours.load_state_dict(from_huggingface(sd), strict=True)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = hf(pixel_values=x).heatmaps
        got = ours(x)
    assert (got - ref).abs().max().item() <= 1e-4


def test_patch_embedding_as_matmul_equals_the_padded_convolution():
    """The patch GEMM computes exactly the checkpoint's stride-16, padding-2 convolution."""
    m = small(seed=3)
    pe = m.backbone.patch_embed
    x = torch.randn(3, 3, 256, 192)
    with torch.no_grad():
        ref = pe.proj(x).flatten(2).transpose(1, 2)
        got = pe(x)
    assert got.shape == ref.shape == (3, 192, 64)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_fuse_gelu_is_the_tanh_gelu_model():
    """fuse_gelu swaps erf GELU for its tanh form (the cuBLASLt epilogue) and nothing else."""
    m = small(seed=4).eval()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        exact = m(x)
        for blk in m.backbone.blocks:
            blk.mlp.act = torch.nn.GELU(approximate="tanh")
        tanh_ref = m(x)
        got = m.fuse_gelu()(x)
    torch.testing.assert_close(got, tanh_ref, rtol=1e-5, atol=1e-6)
    assert 0 < (got - exact).abs().max() < 1e-3


def test_flex_attention_is_the_same_attention():
    """flex_attention swaps the attention kernel, not the function (eager reference here; compiled on GPU)."""
    m = random_vitpose("b", dim=64, depth=2, heads=4, deconv_channels=32).eval()
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = m(x)
        got = m.flex_attention()(x)
    assert all(b.attn.flex_block == 64 for b in m.backbone.blocks)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_flex_attention_mask_is_built_once():
    """One all-visible BlockMask for the model's token count, shared by the blocks; a call with
    another token count falls back to flex attention's own default instead of misusing it."""
    m = random_vitpose("b", dim=64, depth=2, heads=4, deconv_channels=32).eval().flex_attention()
    masks = {id(b.attn.block_mask) for b in m.backbone.blocks}
    mask = m.backbone.blocks[0].attn.block_mask
    assert len(masks) == 1 and mask.seq_lengths == (192, 192)
    attn = m.backbone.blocks[0].attn
    x = torch.randn(2, 50, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = attn(x)
        attn.flex_block = None
        ref = attn(x)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    m.flex_attention(None)
    assert all(b.attn.block_mask is None and b.attn.flex_block is None for b in m.backbone.blocks)
