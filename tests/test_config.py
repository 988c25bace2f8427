"""TOML configuration: typed sections, unknown keys, CLI overrides."""

from __future__ import annotations

import pytest

from posefw.config import Config, load_config


def test_load_and_override(tmp_path):
    f = tmp_path / "posefw.toml"
    f.write_text(
        '[decoder]\nname = "torch-full"\nalgorithm = "dark"\nkernel = 7\n[decoder.options]\nsolve_dtype = "float32"\n'
        "[bench]\nbatches = [1, 8]\niterations = 5\n"
    )
    cfg = load_config(f)
    assert cfg.decoder.name == "torch-full" and cfg.decoder.kernel == 7
    assert cfg.decoder.options == {"solve_dtype": "float32"}
    assert cfg.bench.batches == [1, 8] and cfg.engine.name == "torch"
    over = cfg.with_overrides("decoder", name="numpy-cpu", algorithm=None)
    assert over.decoder.name == "numpy-cpu" and over.decoder.algorithm == "dark"


@pytest.mark.parametrize(
    "text, exc, words",
    [
        ('[decoder]\nnmae = "x"\n', ValueError, r"config \[decoder\]: unknown keys \['nmae'\]"),
        ('[decoders]\nname = "x"\n', ValueError, r"unknown sections \['decoders'\]"),
        ('[decoder]\nkernel = "11"\n', TypeError, r"config \[decoder\].kernel: expected int, got str"),
        ("[decoder\n", ValueError, "is not valid TOML"),
    ],
)
def test_bad_config(tmp_path, text, exc, words):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(exc, match=words):
        load_config(f)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="config: file not found"):
        load_config("/no/such/posefw.toml")


def test_override_unknown_key():
    with pytest.raises(ValueError, match="unknown keys"):
        Config().with_overrides("decoder", colour="red")
