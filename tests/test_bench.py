"""`posefw bench` on the CPU: a tiny run end to end, and its bad-input errors."""

from __future__ import annotations

import json

import pytest

from posefw import cli
from posefw.cli import parse_options

pytest.importorskip("torch")


def test_bench_cpu_run_writes_json_and_plot(tmp_path):
    cfg = tmp_path / "bench.toml"
    cfg.write_text('[engine]\nname = "torch"\n[decoder]\nname = "torch-full"\n[bench]\nbatches = [1]\niterations = 1\nwarmup = 0\n')
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    rc = cli.main(["bench", "--config", str(cfg), "--json", str(out), "--plot", str(plot), "--no-decoders",
                   "--engine-option", "fuse_gelu=true"])
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


@pytest.mark.parametrize("argv, message", [
    (["--iterations", "0"], "iterations: must be >= 1"),
    (["--decoder", "no-such-decoder"], "no-such-decoder"),
    (["--engine-option", "fuse_gelu"], "--engine-option: expected KEY=VALUE"),
    (["--json", "/nonexistent-dir/r.json"], "--json: cannot write"),
])
def test_bench_bad_input_is_named(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default result files land here, never in the checkout
    assert cli.main(["bench", "--batches", "1", "--no-decoders", *argv]) == 2
    assert message in capsys.readouterr().err


def test_parse_options_reads_json_values_and_strings():
    assert parse_options(["a=1", "b=true", "c=fp16", 'd="x"'], "--o") == {"a": 1, "b": True, "c": "fp16", "d": "x"}
