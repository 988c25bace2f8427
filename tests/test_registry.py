"""The plugin registry: entry points, isolation of broken plugins, conflicts, the disable switch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import posefw
from posefw.registry import PluginError, Registry

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "posefw-example-decoder"


def make_dist(root: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    """A minimal installed distribution on ``root`` with one ``posefw`` entry point."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[posefw]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
    import posefw
    from posefw.plugins.numpy_cpu import NumpyCPUDecoder

    class Mine(NumpyCPUDecoder):
        name = "{name}"

    @posefw.hookimpl
    def posefw_register_decoders():
        return [Mine]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_register_through_entry_points():
    infos = {i.name: i for i in Registry().backends("decoder")}
    ref = infos["numpy-cpu"]
    assert ref.available and ref.provider == "posefw" and ref.plugin == "numpy_cpu"
    assert set(ref.algorithms) == {"dark-udp", "dark", "argmax"}


def test_broken_import_is_listed_and_others_work(site):
    make_dist(site, "broken-dist", "broken", "broken_mod", "raise ImportError('no such backend library')\n")
    with pytest.warns(RuntimeWarning, match="broken"):
        reg = Registry()
    infos = {i.name: i for i in reg.backends("decoder")}
    assert infos["broken"].status == "broken" and "no such backend library" in infos["broken"].reason
    assert infos["numpy-cpu"].available
    assert reg.create("decoder", "numpy-cpu").name == "numpy-cpu"


def test_hook_that_raises_is_isolated(site):
    make_dist(
        site,
        "raising-dist",
        "raising",
        "raising_mod",
        """
        import posefw
        @posefw.hookimpl
        def posefw_register_decoders():
            raise RuntimeError("registration exploded")
    """,
    )
    reg = Registry()
    with pytest.warns(RuntimeWarning, match="registration exploded"):
        infos = {i.name: i for i in reg.backends("decoder")}
    assert infos["raising"].status == "broken"
    assert infos["numpy-cpu"].available


def test_same_name_from_two_distributions_names_both(site):
    make_dist(site, "dist-one", "one", "one_mod", GOOD.format(name="twin"))
    make_dist(site, "dist-two", "two", "two_mod", GOOD.format(name="twin"))
    reg = Registry()
    with pytest.raises(PluginError, match="dist-one.*dist-two|dist-two.*dist-one"):
        reg.create("decoder", "twin")
    assert reg.create("decoder", "numpy-cpu")


def test_same_entry_point_name_in_two_distributions_keeps_both(site):
    make_dist(site, "dist-a", "plug", "plug_a", GOOD.format(name="decoder-a"))
    make_dist(site, "dist-b", "plug", "plug_b", GOOD.format(name="decoder-b"))
    names = {i.name: i.provider for i in Registry().backends("decoder")}
    assert names["decoder-a"] == "dist-a" and names["decoder-b"] == "dist-b"


def test_disabling_one_of_two_same_named_plugins_keeps_the_other(site, monkeypatch):
    make_dist(site, "dist-a", "plug", "plug_a", GOOD.format(name="decoder-a"))
    make_dist(site, "dist-b", "plug", "plug_b", GOOD.format(name="decoder-b"))
    monkeypatch.setenv("POSEFW_DISABLE_PLUGINS", "dist-a")
    reg = Registry()
    by_dist = {r.dist: r.status for r in reg.plugins.values()}
    assert by_dist["dist-a"] == "disabled" and by_dist["dist-b"] == "ok"
    assert reg.create("decoder", "decoder-b")


def test_disable_switch(site, monkeypatch):
    make_dist(site, "extra-dist", "extra", "extra_mod", GOOD.format(name="extra-decoder"))
    monkeypatch.setenv("POSEFW_DISABLE_PLUGINS", "extra-dist")
    reg = Registry()
    assert reg.plugins["extra"].status == "disabled"
    assert "extra-decoder" not in {i.name for i in reg.backends("decoder")}
    monkeypatch.setenv("POSEFW_DISABLE_PLUGINS", "all")
    reg = Registry()
    assert reg.plugins["extra"].status == "disabled" and reg.plugins["numpy_cpu"].status == "ok"


def test_unknown_name_lists_installed_and_why():
    with pytest.raises(PluginError) as err:
        posefw.create_decoder("no-such-decoder")
    assert "numpy-cpu" in str(err.value)


def test_decoder_without_name_is_broken_not_fatal():
    reg = Registry(entry_points=False)

    class NoName:
        pass

    class Plugin:
        @posefw.hookimpl
        def posefw_register_decoders(self):
            return [NoName]

    reg.register(Plugin(), name="noname")
    (info,) = reg.backends("decoder")
    assert info.status == "broken" and "name" in info.reason


@pytest.mark.slow
def test_example_plugin_installs_and_is_found(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    code = (
        "import posefw, json; print(json.dumps({i.name: [i.status, i.provider] for i in posefw.available_decoders()}))"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    found = __import__("json").loads(out.strip().splitlines()[-1])
    assert found["example-argmax"] == ["available", "posefw-example-decoder"]
    assert found["numpy-cpu"][0] == "available"
    # The plugin's own test suite, with posefw's conformance suite through the pytest plugin.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "posefw-conformance" in run.stdout or " passed" in run.stdout


def test_a_third_party_numpy_cpu_does_not_break_the_builtin(site):
    make_dist(site, "shadow-dist", "shadow", "shadow_mod", GOOD.format(name="numpy-cpu"))
    with pytest.warns(RuntimeWarning, match="'numpy-cpu' is also registered by shadow-dist; posefw's built-in is used"):
        reg = Registry()
        infos = [i for i in reg.backends("decoder") if i.name == "numpy-cpu"]
    by = {i.provider: i for i in infos}
    assert by["posefw"].available and by["shadow-dist"].status == "conflict"
    assert type(reg.create("decoder", "numpy-cpu")).__module__ == "posefw.plugins.numpy_cpu"


def test_decoders_without_decode_are_broken_and_bad_results_are_named(site, tmp_path, capsys):
    import numpy as np

    make_dist(
        site,
        "odd-dist",
        "odd",
        "odd_mod",
        """
        import posefw
        from posefw.decoder import Decoder

        class NoDecode(Decoder):
            name = "no-decode"

        class ReturnsNone(Decoder):
            name = "returns-none"
            def decode(self, heatmaps, centers=None, scales=None):
                return None

        class ReturnsTuple(Decoder):
            name = "returns-tuple"
            def decode(self, heatmaps, centers=None, scales=None):
                return (1, 2)

        @posefw.hookimpl
        def posefw_register_decoders():
            return [NoDecode, ReturnsNone, ReturnsTuple]
    """,
    )
    reg = Registry()
    infos = {i.name: i for i in reg.backends("decoder")}
    assert infos["no-decode"].status == "broken" and "does not implement decode()" in infos["no-decode"].reason
    monkey = posefw.registry
    saved = monkey._REGISTRY
    monkey._REGISTRY = reg
    try:
        np.save(tmp_path / "h.npy", np.zeros((1, 17, 64, 48), np.float32))
        for name, got in (("returns-none", "NoneType"), ("returns-tuple", "tuple")):
            assert (
                posefw.cli.main(
                    ["decode", "--decoder", name, str(tmp_path / "h.npy"), "--out", str(tmp_path / "o.json")]
                )
                == 2
            )
            err = capsys.readouterr().err
            assert f"decoder {name!r}: decode() must return posefw.DecodeResult" in err and got in err
    finally:
        monkey._REGISTRY = saved


def test_listing_one_decoder_probes_only_it(monkeypatch):
    """create_decoder('numpy-cpu') asks only numpy-cpu whether it can run (no GPU stack imported)."""
    probed = []
    reg = Registry()
    for group in reg._collect()["decoder"].values():
        for info in group:
            real = info.cls.available
            monkeypatch.setattr(
                info.cls, "available", classmethod(lambda c, r=real, n=info.name: probed.append(n) or r())
            )
    reg.create("decoder", "numpy-cpu")
    assert probed == ["numpy-cpu"]
