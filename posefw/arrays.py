"""Framework-agnostic facts about arrays (NumPy, torch, CuPy, numba) without importing any of them.

Decoders receive heatmaps from whatever produced them; these helpers let the core validate
and describe an array while only numpy is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def framework(x: Any) -> str:
    """'numpy', 'torch', 'cupy', 'numba' or 'other', judged by the array's type module."""
    if isinstance(x, np.ndarray):
        return "numpy"
    mod = type(x).__module__.split(".")[0]
    if mod in ("torch", "cupy", "numba"):
        return mod
    return "other"


def dtype_name(x: Any) -> str:
    """The dtype as a plain name ('float32', 'float16', 'int64', ...)."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return type(x).__name__
    return str(dt).removeprefix("torch.")


def is_cuda(x: Any) -> bool:
    """True for arrays resident on a CUDA device."""
    fw = framework(x)
    if fw == "torch":
        return bool(x.is_cuda)
    return fw in ("cupy", "numba") or hasattr(x, "__cuda_array_interface__")


def to_numpy(x: Any) -> np.ndarray:
    """Copy any supported array to host NumPy (a no-op for NumPy input)."""
    fw = framework(x)
    if fw == "numpy":
        return x
    if fw == "torch":
        return x.detach().cpu().numpy()
    if fw == "cupy":
        return x.get()
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    return np.asarray(x)
