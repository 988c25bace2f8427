"""CUDA runtime calls made straight through ctypes: asynchronous copies and a graph launch.

A blocking one-box call waits for its copy and its graph launch before the device can start.
Through torch they cost ~4-5 us each in a hot loop and 15-21 us each inside a call (H200, run 23:
``Tensor.copy_`` from pinned memory records an event for torch's host allocator; the graph's
``replay`` checks its memory pool from Python). The runtime's own ``cudaMemcpyAsync`` and
``cudaGraphLaunch`` do only the launch. The library is the one torch loaded (found in the
process's memory map), so the calls use torch's context and streams; without it (no CUDA, or
a torch that links the runtime statically) :func:`runtime` is None, says why, and callers keep
the torch calls.
"""

from __future__ import annotations

import ctypes

#: cudaMemcpyKind
HOST_TO_DEVICE, DEVICE_TO_HOST = 1, 2


class Runtime:
    """The loaded libcudart, with the calls' argument types set once (ctypes then converts
    Python ints without looking them up per call)."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self._copy = lib.cudaMemcpyAsync
        self._copy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
        self._copy.restype = ctypes.c_int
        self._launch = lib.cudaGraphLaunch
        self._launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._launch.restype = ctypes.c_int
        self._error = lib.cudaGetErrorString
        self._error.argtypes = [ctypes.c_int]
        self._error.restype = ctypes.c_char_p

    def copy_to_device(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """``nbytes`` from host address ``src`` (pinned, for the copy to be asynchronous) to
        device address ``dst``, in order on ``stream`` (a cudaStream_t as an int)."""
        err = self._copy(dst, src, nbytes, HOST_TO_DEVICE, stream)
        if err:
            raise RuntimeError(f"cudaMemcpyAsync: {self._error(err).decode()} ({err})")

    def copy_to_host(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """``nbytes`` from device address ``src`` to host address ``dst`` (pinned), in order
        on ``stream``; the host may read them once the stream has passed the copy."""
        err = self._copy(dst, src, nbytes, DEVICE_TO_HOST, stream)
        if err:
            raise RuntimeError(f"cudaMemcpyAsync: {self._error(err).decode()} ({err})")

    def launch(self, graph_exec: int, stream: int) -> None:
        """Launch an instantiated graph (a cudaGraphExec_t as an int) on ``stream``."""
        err = self._launch(graph_exec, stream)
        if err:
            raise RuntimeError(f"cudaGraphLaunch: {self._error(err).decode()} ({err})")


def loaded_path(maps: str, name: str = "libcudart.so") -> str | None:
    """The file of the first mapping whose name holds ``name`` in a /proc/<pid>/maps text."""
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and name in parts[-1].rsplit("/", 1)[-1]:
            return parts[-1]
    return None


_found: list = []


def runtime() -> Runtime | None:
    """The CUDA runtime torch loaded, or None (:func:`unavailable` says why). Call it once torch
    has initialised CUDA: the library is looked for among those mapped already (a miss is not
    remembered, so a later call after initialisation finds it)."""
    if not _found:
        rt = _load()[0]
        if rt is None:
            return None
        _found.append(rt)
    return _found[0]


def unavailable() -> str | None:
    """Why :func:`runtime` is None now, or None when it is not."""
    return None if runtime() is not None else _load()[1]


def _load() -> tuple[Runtime | None, str | None]:
    try:
        with open("/proc/self/maps") as f:
            path = loaded_path(f.read())
    except OSError as exc:
        return None, f"cannot read this process's memory map: {exc}"
    if path is None:
        return None, "no libcudart is loaded (no CUDA here, or torch links the runtime statically)"
    try:
        return Runtime(ctypes.CDLL(path), path), None
    except (OSError, AttributeError) as exc:
        return None, f"{path}: {exc}"
