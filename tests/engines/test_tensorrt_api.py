"""Every TensorRT name the engine uses exists in the real TensorRT Python bindings of the versions
it supports, and none of the weak-typing API that TensorRT 11 removed is used.

TensorRT's libraries cannot be installed here, so the compiled module cannot be imported. But the
``tensorrt-cu12-bindings`` wheels install from the registry, and pybind11 registers every class,
method and enum value under its name as a NUL-terminated string in ``tensorrt.so``: a name that
is missing from those strings is missing from the module. The check is by name, not by scope
(``FP16`` as a BuilderFlag and as anything else look alike), which is why it is paired with a
control: names TensorRT 11 removed must be found in 10.0 and not in 11.4, or the check is unsound.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engines" / "tensorrt_engine.py"
VERSIONS = ("10.0.1", "10.16.1.11", "11.4.0.106")
REMOVED_IN_11 = ("OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")
WEAK_TYPING = (
    "BuilderFlag",
    "FP16",
    "OBEY_PRECISION",
    "PREFER_PRECISION",
    "precision_constraints",
    "set_output_type",
    "precision = trt.",
    "DIRECT_IO",
    "keep_norms_fp32",
)


def _wheel(version: str, folder: Path) -> Path:
    found = sorted(folder.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        f"tensorrt-cu12-bindings=={version}",
        "-d",
        str(folder),
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"tensorrt-cu12-bindings=={version} could not be downloaded from the package index: {exc}")
    return sorted(folder.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))[0]


@pytest.fixture(scope="module")
def bindings() -> dict[str, tuple[bytes, set[str]]]:
    """Per version: the compiled module's bytes and the names its Python __init__ defines."""
    from posefw.engines.onnx_source import cache_dir

    folder = cache_dir() / "tensorrt-bindings"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for v in VERSIONS:
        with zipfile.ZipFile(_wheel(v, folder)) as z:
            so = z.read("tensorrt_bindings/tensorrt.so")
            init = ast.parse(z.read("tensorrt_bindings/__init__.py").decode())
        defined = {n.name for n in ast.walk(init) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {
            t.id for n in ast.walk(init) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        out[v] = (so, defined)
    return out


def has(binding: tuple[bytes, set[str]], name: str) -> bool:
    so, defined = binding
    return name in defined or re.search(rb"\x00" + re.escape(name.encode()) + rb"\x00", so) is not None


def used_names() -> set[str]:
    """``trt.X.Y`` chains in the engine's source, and the methods it declares calling on TensorRT objects."""
    from posefw.engines.tensorrt_engine import TRT_METHODS

    tree = ast.parse(ENGINE.read_text())
    names: set[str] = set(TRT_METHODS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, cur = [], node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "trt":
                names |= {c for c in chain if not c.startswith("__")}
    return names


def test_engine_declares_every_method_it_calls_on_tensorrt_objects():
    from posefw.engines.tensorrt_engine import TRT_METHODS

    tree = ast.parse(ENGINE.read_text())
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id in ("ctx", "engine")) or (
                isinstance(owner, ast.Attribute) and owner.attr in ("engine", "contexts")
            ):
                called.add(node.attr)
    called -= {"engine", "contexts"}
    assert called <= set(TRT_METHODS), sorted(called - set(TRT_METHODS))


def test_no_weak_typing_api_in_the_engine():
    source = ENGINE.read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("#", "-")))
    body = code.split('"""', 2)[2]  # past the module docstring, which names what is not used
    found = [w for w in WEAK_TYPING if w in body]
    assert not found, found


def test_the_name_check_tells_versions_apart(bindings):
    """The control: what TensorRT 11 removed is found in 10.0 and not in 11.4."""
    for name in REMOVED_IN_11:
        assert has(bindings["10.0.1"], name), name
        assert not has(bindings["11.4.0.106"], name), name
    assert has(bindings["11.4.0.106"], "STRONGLY_TYPED") and has(bindings["10.0.1"], "STRONGLY_TYPED")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_tensorrt_name_used_exists(bindings, version):
    names = used_names()
    assert {"MemoryPoolType", "WORKSPACE", "nptype", "execute_async_v3"} <= names
    missing = sorted(n for n in names if not has(bindings[version], n))
    assert not missing, f"TensorRT {version} lacks {missing}"
