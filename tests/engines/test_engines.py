"""Engines through the registry: torch (CPU here), onnxruntime, tensorrt (skipped with its reason), oracle."""

from __future__ import annotations

import numpy as np
import pytest

import posefw
from posefw.models.vitpose import random_vitpose

torch = pytest.importorskip("torch")
SMALL = dict(dim=64, depth=2, heads=4, deconv_channels=32)


def test_engines_listed():
    infos = {i.name: i for i in posefw.available_engines()}
    assert {"torch", "onnxruntime", "tensorrt", "oracle"} <= set(infos)
    assert infos["torch"].available
    if infos["tensorrt"].status != "available":
        assert "tensorrt" in infos["tensorrt"].reason


def test_torch_engine_cpu_batch_and_errors():
    eng = posefw.create_engine("torch", model=random_vitpose("b", **SMALL), device="cpu")
    hm = eng.infer(np.random.default_rng(0).standard_normal((3, 3, 256, 192)).astype(np.float32))
    assert tuple(hm.shape) == (3, 17, 64, 48) and hm.dtype == torch.float32
    with pytest.raises(ValueError, match="exceed engine 'torch'"):
        eng.infer(np.zeros((65, 3, 256, 192), np.float32))
    with pytest.raises(ValueError, match=r"batch: expected images \(N, 3, H, W\)"):
        eng.infer(np.zeros((2, 256, 192), np.float32))
    with pytest.raises(ValueError, match="precision"):
        posefw.create_engine("torch", precision="fp8", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            posefw.create_engine("torch", device="cuda")


def test_torch_engine_bf16_close_to_fp32():
    model = random_vitpose("b", **SMALL)
    ref = posefw.create_engine("torch", model=model, device="cpu").infer(
        torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    )
    eng = posefw.create_engine("torch", model=random_vitpose("b", **SMALL), device="cpu", precision="bf16")
    got = eng.infer(torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0)))
    assert got.dtype == torch.float32 and (got - ref).abs().max() < 0.1 * ref.abs().max()


def test_onnxruntime_engine_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from posefw.export import export_onnx

    model = random_vitpose("b", **SMALL)
    path = export_onnx(model, tmp_path / "m.onnx")
    eng = posefw.create_engine("onnxruntime", onnx=str(path))
    assert eng.describe()["device"] == "CPUExecutionProvider"
    x = np.random.default_rng(1).standard_normal((2, 3, 256, 192)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(eng.infer(x), ref, atol=1e-4)


def test_tensorrt_engine(tmp_path):
    info = {i.name: i for i in posefw.available_engines()}["tensorrt"]
    if not info.available:
        pytest.skip(f"tensorrt engine unavailable: {info.reason}")
    from posefw.export import export_onnx

    model = random_vitpose("b")
    path = export_onnx(model, tmp_path / "b.onnx", precision="fp16")
    eng = posefw.create_engine("tensorrt", onnx=str(path))
    assert eng.input_dtype == "float16"
    x = torch.randn(4, 3, 256, 192, device="cuda")
    out = eng.infer(x)
    assert out.is_cuda and out.dtype == torch.float32 and tuple(out.shape) == (4, 17, 64, 48)
    with torch.no_grad():
        ref = model.cuda()(x)
    assert (out - ref).abs().max() < 2e-2 * ref.abs().max()


def test_tensorrt_module_imports_without_tensorrt():
    import posefw.engines.tensorrt_engine as trt_engine

    assert trt_engine.TensorRTEngine.name == "tensorrt"


def test_torch_engine_fuse_gelu_option():
    from posefw.engines.torch_engine import TorchEngine

    eng = TorchEngine(model=random_vitpose("b", **SMALL), fuse_gelu=True)
    assert eng.describe()["fuse_gelu"] is True
    assert all(b.mlp.fused_gelu for b in eng.model.backbone.blocks)
    assert eng.infer(np.zeros((1, 3, 256, 192), np.float32)).shape == (1, 17, 64, 48)
    with pytest.raises(ValueError, match="fuse_gelu: needs posefw's ViTPose"):
        TorchEngine(model=torch.nn.Identity(), fuse_gelu=True)
    # Default: only in fp16 (CUDA), where tanh GELU is under fp16's rounding; fp32 and bf16 keep erf.
    for precision in ("fp32", "bf16"):
        model = random_vitpose("b", **SMALL)
        assert TorchEngine(model=model, precision=precision).fuse_gelu is False
        assert not any(b.mlp.fused_gelu for b in model.backbone.blocks)
    if torch.cuda.is_available():
        assert TorchEngine(model=random_vitpose("b", **SMALL), precision="fp16", device="cuda").fuse_gelu is True
        assert (
            TorchEngine(model=random_vitpose("b", **SMALL), precision="fp16", device="cuda", fuse_gelu=False).fuse_gelu
            is False
        )


def test_torch_engine_fuse_head_option():
    """On by default only where it runs (CUDA with Triton); asked for elsewhere, a clear error."""
    model = random_vitpose("b", **SMALL)
    eng = posefw.create_engine("torch", model=model, device="cpu")
    assert eng.describe()["fuse_head"] is False and not model.keypoint_head.fused_tail
    with pytest.raises(ValueError, match="fuse_head: needs a CUDA device"):
        posefw.create_engine("torch", model=model, device="cpu", fuse_head=True)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="fuse_head: needs posefw's ViTPose module with the classic head"):
            posefw.create_engine(
                "torch", model=random_vitpose("b", **SMALL, head="simple"), device="cuda", fuse_head=True
            )
        from posefw.models.head_kernel import triton_unavailable

        assert posefw.create_engine("torch", model=model, device="cuda").fuse_head is (triton_unavailable() is None)


def test_torch_engine_streams_option_checked():
    model = random_vitpose("b", **SMALL)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="streams: expected an integer >= 1"):
            posefw.create_engine("torch", model=model, device="cpu", streams=bad)
    with pytest.raises(ValueError, match="streams: more than one stream needs a CUDA device"):
        posefw.create_engine("torch", model=model, device="cpu", streams=2)
    assert posefw.create_engine("torch", model=model, device="cpu").describe()["streams"] == 1
    if torch.cuda.is_available():  # default: two slices in CUDA graphs, where they were measured to pay
        assert posefw.create_engine("torch", model=model, device="cuda", cuda_graph=True).streams == 2
        assert posefw.create_engine("torch", model=model, device="cuda").streams == 1
        assert posefw.create_engine("torch", model=model, device="cuda", cuda_graph=True, streams=1).streams == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("graph", [False, True])
def test_torch_engine_streams_split_matches_one_stream(graph):
    """The batch split over streams gives the one-stream heatmaps, in the graph and eagerly, for
    batches that do not divide evenly and for batches too small to split."""
    from posefw.engines.torch_engine import SPLIT_MIN

    model = random_vitpose("b", **SMALL)
    one = posefw.create_engine("torch", model=model, device="cuda", max_batch=128)
    split = posefw.create_engine("torch", model=model, device="cuda", streams=3, cuda_graph=graph, max_batch=128)
    assert [split._slices(n) for n in (1, SPLIT_MIN, 2 * SPLIT_MIN, 4 * SPLIT_MIN + 1)] == [1, 1, 2, 3]
    for n in (1, 2 * SPLIT_MIN + 1, 3 * SPLIT_MIN):
        x = torch.randn(n, 3, 256, 192, generator=torch.Generator().manual_seed(n)).cuda()
        ref = one.infer(x)
        sizes: list[int] = []
        inner = split.forward
        split.forward = lambda c, sizes=sizes, inner=inner: sizes.append(c.shape[0]) or inner(c)
        try:
            got = split.runner(n)(x) if graph else split.infer(x)
        finally:
            split.forward = inner
        # The slices ran: eagerly on this call, or in the graph's warm-up and capture.
        assert sorted(set(sizes)) == sorted({len(t) for t in x.tensor_split(split._slices(n))})
        # Slices are smaller GEMMs and convolutions: cuDNN may pick other (TF32) algorithms.
        assert got.shape == ref.shape and (got - ref).abs().max() <= 5e-3 * ref.abs().max()
        # The graph's output is overwritten by the next replay: a second input must change it.
        if graph:
            got2 = split.runner(n)(x + 1).clone()
            assert not torch.allclose(got2, ref)


def test_torch_engine_attention_option():
    model = random_vitpose("b", **SMALL)
    assert posefw.create_engine("torch", model=model, device="cpu").describe()["attention"] == "sdpa"
    with pytest.raises(ValueError, match="attention: expected one of"):
        posefw.create_engine("torch", model=model, device="cpu", attention="xformers")
    with pytest.raises(ValueError, match="attention: 'flex' needs compile"):
        posefw.create_engine("torch", model=model, device="cpu", attention="flex")
    with pytest.raises(ValueError, match="attention: 'flex' needs posefw's ViTPose"):
        posefw.create_engine("torch", model=torch.nn.Identity(), device="cpu", attention="flex", compile=True)
    # A module without flex support keeps SDPA when compiled (flex is only a default there).
    assert posefw.create_engine("torch", model=torch.nn.Identity(), device="cpu", compile=True).attention == "sdpa"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_torch_engine_compiled_flex_attention_matches_sdpa():
    """The compiled default on CUDA (flex attention, 64x64 tiles) against SDPA, both fp16."""
    model = random_vitpose("b", **SMALL)
    x = torch.randn(3, 3, 256, 192, generator=torch.Generator().manual_seed(4)).cuda()
    sdpa = posefw.create_engine("torch", model=model, device="cuda", precision="fp16", compile=True, attention="sdpa")
    ref = sdpa.infer(x)
    flex = posefw.create_engine(
        "torch", model=random_vitpose("b", **SMALL), device="cuda", precision="fp16", compile=True
    )
    assert flex.attention == "flex"
    got = flex.infer(x)
    assert (got - ref).abs().max() <= 1e-2 * ref.abs().max()
