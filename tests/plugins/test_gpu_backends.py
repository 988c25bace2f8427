"""Every GPU-capable backend against numpy-cpu, through the conformance suite.

On CPU: torch-full on torch CPU tensors and numba-full under the CUDA simulator (small cases).
On a CUDA machine: all four backends, with NumPy, torch and CuPy input, streams and graphs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from posefw.conformance import numeric
from posefw.conformance.cases import realistic

import posefw
from posefw.testing import cuda_reason

ALGOS = ("dark-udp", "dark", "argmax")
GPU = ("cupy-full", "cupy-partial", "numba-full", "torch-full")


def _failures(results):
    return [f"{r.case}/{r.algorithm}/{r.check}: {r.message}" for r in results if not r.passed]


def test_torch_full_conforms_on_cpu():
    torch = pytest.importorskip("torch")
    res = numeric.run(
        lambda **kw: posefw.create_decoder("torch-full", **kw),
        ALGOS,
        to_input=lambda a: torch.from_numpy(np.ascontiguousarray(a)),
    )
    assert not _failures(res)


#: numba-full under the CUDA simulator: every sample is a Python call there (about 0.5 s a 64x48
#: map), so each case is cut to its first crop (17 maps, every adversarial pattern) and the
#: other algorithms and the strided kernel run on the families whose rules they own. The whole
#: suite runs on real GPUs (test_gpu_backend_conforms).
SIM_RUNS = {
    "dark-udp-adversarial": (
        {},
        ("dark-udp",),
        ["ties-and-plateaus", "peaks-on-borders-and-corners", "degenerate-values", "floor-straddle"],
    ),
    "dark-udp-inputs": (
        {},
        ("dark-udp",),
        ["non-finite", "float16-extremes", "size-1x1", "size-3x3", "size-17x13", "k-1", "batch-0", "non-contiguous"],
    ),
    "dark": ({}, ("dark",), ["degenerate-values", "floor-straddle"]),
    "argmax": ({}, ("argmax",), ["ties-and-plateaus"]),  # NaN maps: the scan all three share (dark-udp runs)
    "strided-kernel": (
        {"flat": False},
        ("dark-udp",),
        ["non-contiguous"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(SIM_RUNS))
def test_numba_full_conforms_under_simulator(run):
    """numba-full's kernel on numba's CUDA simulator (a subprocess, since the switch is read at import).

    The simulator copies input to one contiguous array, so the flat kernel runs by default; the
    strided kernel (what non-contiguous GPU input takes) runs with flat=False."""
    pytest.importorskip("numba")
    opts, algos, families = SIM_RUNS[run]
    code = (
        "import json, posefw; from posefw.conformance import numeric\n"
        f"res = numeric.run(lambda **kw: posefw.create_decoder('numba-full', **kw, **{opts!r}), {algos!r}, "
        f"families=set({families!r}), first_crops=1)\n"
        "bad = [f'{r.case}/{r.algorithm}/{r.check}: {r.message}' for r in res if not r.passed]\n"
        "print(json.dumps(bad + [len(res)]))"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True, timeout=1800
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    failures, checked = out[:-1], out[-1]
    assert checked >= 2 * len(families) and not failures, failures


def test_gpu_backends_import_without_gpu_stack():
    """On a CPU machine the GPU backends are listed with a reason, never a crash."""
    infos = {i.name: i for i in posefw.available_decoders()}
    for name in ("cupy-full", "cupy-partial"):
        assert name in infos
        if infos[name].status != "available":
            assert infos[name].reason


# ---- CUDA machine only -------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(cuda_reason() is not None, reason=str(cuda_reason()))


def _inputs():
    import torch

    yield "numpy", lambda a: a
    yield "torch", lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()
    try:
        import cupy

        yield "cupy", lambda a: cupy.asarray(a)
    except ImportError:
        pass


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU)
def test_gpu_backend_conforms(name):
    info = {i.name: i for i in posefw.available_decoders()}[name]
    if not info.available:
        pytest.skip(info.reason)
    failed = []
    opts = {"device": "cuda"} if name == "torch-full" else {}
    for label, conv in _inputs():
        res = numeric.run(lambda **kw: posefw.create_decoder(name, **kw, **opts), ALGOS, to_input=conv)
        failed += [f"[{label}] {f}" for f in _failures(res)]
    assert not failed, "\n".join(failed[:30])


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy-full", "numba-full", "torch-full"])
def test_full_backend_on_side_stream_and_in_cuda_graph(name):
    import torch

    info = {i.name: i for i in posefw.available_decoders()}[name]
    if not info.available:
        pytest.skip(info.reason)
    hm = torch.from_numpy(realistic(5, n=16)).cuda()
    centers = torch.rand(16, 2, device="cuda") * 400 + 50
    scales = torch.rand(16, 2, device="cuda") * 200 + 50
    scales[:, 1] = scales[:, 0] / 0.75
    ref = posefw.create_decoder("numpy-cpu").decode(hm.cpu().numpy(), centers.cpu().numpy(), scales.cpu().numpy())
    dec = posefw.create_decoder(name)
    dec.decode(hm, centers, scales)  # warm-up: compile and load before capture
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = dec.decode(hm, centers, scales)
        assert out.keypoints.device == hm.device  # stays on the device, in torch
        for _ in range(3):
            dec.decode(hm, centers, scales)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.scores.cpu().numpy(), ref.scores)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = dec.decode(hm, centers, scales)
    hm.copy_(torch.from_numpy(realistic(6, n=16)).cuda())
    graph.replay()
    torch.cuda.synchronize()
    ref2 = posefw.create_decoder("numpy-cpu").decode(hm.cpu().numpy(), centers.cpu().numpy(), scales.cpu().numpy())
    np.testing.assert_array_equal(captured.scores.cpu().numpy(), ref2.scores)
    err = np.nanmax(np.abs(captured.keypoints.cpu().numpy() - ref2.keypoints) / scales.cpu().numpy()[:, None, :] * 48)
    assert err < 1e-2


@needs_cuda
@pytest.mark.gpu
def test_cupy_full_non_contiguous_and_fp16_torch_input():
    import torch

    if {i.name: i for i in posefw.available_decoders()}["cupy-full"].status != "available":
        pytest.skip("cupy-full unavailable")
    big = torch.from_numpy(realistic(9, n=8, k=34)).cuda().half()
    view = big[:, ::2].transpose(2, 3).transpose(2, 3)  # strided, not contiguous
    assert not view.is_contiguous()
    got = posefw.create_decoder("cupy-full").decode(view).numpy()
    ref = posefw.create_decoder("numpy-cpu").decode(view.cpu().numpy())
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert np.nanmax(np.abs(got.keypoints - ref.keypoints)) < 1e-3
