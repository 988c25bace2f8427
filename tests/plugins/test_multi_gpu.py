"""GPU decoders with heatmaps on a second GPU: results there, and a clear error for a foreign stream.

Runs only where two CUDA devices are visible (the other machines skip with the reason).
"""

from __future__ import annotations

import numpy as np
import pytest
from posefw.conformance.cases import realistic

import posefw
from posefw.testing import cuda_reason


def _two_gpus() -> str | None:
    reason = cuda_reason()
    if reason:
        return reason
    import torch

    n = torch.cuda.device_count()
    return None if n >= 2 else f"needs two CUDA devices, {n} visible"


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_two_gpus() is not None, reason=str(_two_gpus()))]

GPU = ("cupy-full", "cupy-partial", "numba-full", "torch-full")
ALGOS = ("dark-udp", "dark", "argmax")


def _decoder(name: str, algorithm: str):
    info = {i.name: i for i in posefw.available_decoders()}[name]
    if not info.available:
        pytest.skip(info.reason)
    return posefw.create_decoder(name, algorithm=algorithm)


def _as_numpy(x) -> np.ndarray:
    """Results as NumPy, whatever array the decoder returns (cupy-partial's are NumPy already)."""
    if isinstance(x, np.ndarray):
        return x
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x.get() if hasattr(x, "get") else x.copy_to_host())


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("name", GPU)
def test_heatmaps_on_second_gpu_decode_there(name, algorithm):
    import torch

    host = realistic(21, n=8)
    centers = np.random.default_rng(0).uniform(100, 400, (8, 2)).astype(np.float32)
    scales = np.tile(np.float32([[150.0, 200.0]]), (8, 1))
    ref = posefw.create_decoder("numpy-cpu", algorithm=algorithm).decode(host, centers, scales)
    assert torch.cuda.current_device() == 0
    hm = torch.from_numpy(host).to("cuda:1")
    dec = _decoder(name, algorithm)
    out = dec.decode(hm, torch.from_numpy(centers).to("cuda:1"), torch.from_numpy(scales).to("cuda:1"))
    if name != "cupy-partial":
        assert out.keypoints.device == hm.device  # full decoders keep results on the heatmaps' GPU
    torch.cuda.synchronize(1)
    np.testing.assert_array_equal(_as_numpy(out.scores), ref.scores)
    err = np.abs(_as_numpy(out.keypoints) - ref.keypoints) / scales[:, None, :] * 48
    assert np.nanmax(err) < 1e-2


@pytest.mark.parametrize("name", ("cupy-full", "cupy-partial", "numba-full"))
def test_stream_of_another_gpu_is_refused_and_leaves_nothing_broken(name):
    import torch

    hm = torch.from_numpy(realistic(22, n=4)).to("cuda:1")
    dec = _decoder(name, "dark-udp")
    foreign = torch.cuda.Stream(device="cuda:0")
    with pytest.raises(ValueError, match=r"stream: is on cuda:0 but heatmaps are on cuda:1"):
        dec.decode(hm, stream=foreign)
    own = torch.cuda.Stream(device="cuda:1")
    out = dec.decode(hm, stream=own)
    own.synchronize()
    ref = posefw.create_decoder("numpy-cpu").decode(hm.cpu().numpy())
    np.testing.assert_array_equal(_as_numpy(out.scores), ref.scores)


@pytest.mark.parametrize("name", ("cupy-full", "cupy-partial", "numba-full"))
def test_device_boxes_on_another_gpu_are_refused(name):
    import torch

    hm = torch.from_numpy(realistic(23, n=4)).to("cuda:1")
    centers = torch.full((4, 2), 200.0, device="cuda:0")
    scales = torch.full((4, 2), 150.0, device="cuda:0")
    with pytest.raises(ValueError, match=r"centers: is on cuda:0 but heatmaps are on cuda:1"):
        _decoder(name, "dark-udp").decode(hm, centers, scales)


@pytest.mark.parametrize("graph", [False, True])
def test_torch_engine_on_second_gpu(graph):
    """A compiled fp16 engine (fused head kernel, flex attention, two streams in a graph) on cuda:1
    while cuda:0 is current: its heatmaps stay there and equal the same engine's on cuda:0."""
    import torch

    from posefw.models.vitpose import random_vitpose

    small = dict(dim=64, depth=2, heads=4, deconv_channels=32)
    x = torch.randn(64, 3, 256, 192, generator=torch.Generator().manual_seed(6))
    out = {}
    for dev in ("cuda:0", "cuda:1"):
        eng = posefw.create_engine(
            "torch", model=random_vitpose("b", **small), device=dev, precision="fp16", compile=True, cuda_graph=graph
        )
        assert eng.fuse_head and eng.attention == "flex" and eng.streams == (2 if graph else 1)
        assert torch.cuda.current_device() == 0
        out[dev] = eng.infer(x.to(dev)).clone()
    assert out["cuda:1"].device == torch.device("cuda:1")
    torch.cuda.synchronize(1)
    assert (out["cuda:1"].cpu() - out["cuda:0"].cpu()).abs().max() <= 1e-3 * out["cuda:0"].abs().max().item()
