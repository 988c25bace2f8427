"""`posefw bench` on the CPU: a tiny run end to end, and its bad-input errors."""

from __future__ import annotations

import json

import pytest

from posefw import cli
from posefw.files import parse_options

pytest.importorskip("torch")


@pytest.mark.slow
def test_bench_cpu_run_writes_json_and_plot(tmp_path):
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        '[engine]\nname = "torch"\n[decoder]\nname = "torch-full"\n[bench]\nbatches = [1]\niterations = 1\nwarmup = 0\n'
    )
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    rc = cli.main(
        [
            "bench",
            "--config",
            str(cfg),
            "--json",
            str(out),
            "--plot",
            str(plot),
            "--no-decoders",
            "--engine-option",
            "fuse_gelu=true",
            "--engine-option",
            "size=s",
            "--e2e-boxes",
            "1",
        ]
    )
    assert rc == 0 and plot.stat().st_size > 0
    res = json.loads(out.read_text())
    assert res["configuration"]["engine_options"]["fuse_gelu"] is True
    assert res["engine"]["fuse_gelu"] is True
    names = {r["pipeline"] for r in res["pipelines"]}
    assert {"pytorch-fp32-eager", "engine", "engine+cpu-post", "full:torch-full"} <= names
    ok = [r for r in res["pipelines"] if "error" not in r]
    assert ok and all(r["qps"] > 0 for r in ok)
    # partial integration needs CuPy and a GPU: reported in its row, the others still ran
    assert all("error" in r for r in res["pipelines"] if r["pipeline"] == "partial")
    # the end-to-end rows ran (one box per call here), each pipeline bracketed by the engine
    e2e = res["end_to_end"]
    assert "error" not in e2e and "skipped" not in e2e, e2e
    rows = e2e["throughput"]
    assert rows.pop("engine only (crops on the device)")["vs_engine"] == 1.0
    assert rows and all(r["per_s"] > 0 and len(r["vs_engine_rounds"]) == e2e["rounds"] for r in rows.values()), rows


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--iterations", "0"], "iterations: must be >= 1"),
        (["--decoder", "no-such-decoder"], "no-such-decoder"),
        (["--engine-option", "fuse_gelu"], "--engine-option: expected KEY=VALUE"),
        (["--json", "/nonexistent-dir/r.json"], "--json: cannot write"),
    ],
)
def test_bench_bad_input_is_named(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default result files land here, never in the checkout
    assert cli.main(["bench", "--batches", "1", "--no-decoders", *argv]) == 2
    assert message in capsys.readouterr().err


def test_parse_options_reads_json_values_and_strings():
    assert parse_options(["a=1", "b=true", "c=fp16", 'd="x"'], "--o") == {"a": 1, "b": True, "c": "fp16", "d": "x"}


def test_a_config_file_does_not_switch_on_gpu_run_lengths_on_a_cpu(tmp_path):
    """Only what the file sets replaces the CPU's small run (it used to bring warm-up 20)."""
    import argparse

    from posefw.bench import CPU_ITERATIONS, resolve

    cfg = tmp_path / "b.toml"
    cfg.write_text('[engine]\nname = "torch"\n[bench]\nbatches = [2]\n')
    args = argparse.Namespace(
        config=str(cfg),
        batches=None,
        iterations=None,
        warmup=None,
        engine=None,
        decoder=None,
        algorithm=None,
        checkpoint=None,
        engine_option=[],
    )
    c, eopts = resolve(args, cuda=False)
    assert c.bench.batches == [2] and c.bench.warmup == 1 and c.bench.iterations == CPU_ITERATIONS
    assert eopts["precision"] == "fp32"


def test_ratios_within_noise_are_marked():
    from posefw.bench import _pct, within_noise

    a = {"mean_ms": 100.0, "std_ms": 15.0, "n": 3}
    b = {"mean_ms": 104.0, "std_ms": 15.0, "n": 3}
    c = {"mean_ms": 200.0, "std_ms": 1.0, "n": 30}
    assert within_noise(a, b) and not within_noise(a, c)
    assert _pct(0.96, True) == "~96.0%" and _pct(0.5) == "50.0%"


def test_bench_config_decoders_restricts_the_decoder_table(tmp_path):
    cfg = tmp_path / "b.toml"
    cfg.write_text(
        '[decoder]\nname = "torch-full"\n[engine.options]\nsize = "s"\n'
        '[bench]\nbatches = [1]\niterations = 1\nwarmup = 0\ndecoders = ["numpy-cpu"]\n'
    )
    out = tmp_path / "r.json"
    assert (
        cli.main(["bench", "--config", str(cfg), "--json", str(out), "--plot", str(tmp_path / "r.png"), "--no-e2e"])
        == 0
    )
    assert [d["decoder"] for d in json.loads(out.read_text())["decoders"]] == ["numpy-cpu"]
    cfg.write_text('[bench]\nbatches = [1]\niterations = 1\nwarmup = 0\ndecoders = ["nope"]\n')
    assert (
        cli.main(["bench", "--config", str(cfg), "--json", str(out), "--plot", str(tmp_path / "r.png"), "--no-e2e"])
        == 2
    )
