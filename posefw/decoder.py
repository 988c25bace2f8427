"""The decoder contract every backend implements, and the input checks they all share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from posefw.arrays import dtype_name, to_numpy

#: Algorithms of the reference, in mmpose 0.x terms: ``dark-udp`` is ``post_dark_udp``
#: (what ViTPose is evaluated with), ``dark`` is ``post_process='unbiased'``, ``argmax``
#: is ``post_process='default'``.
ALGORITHMS: tuple[str, ...] = ("dark-udp", "dark", "argmax")
FLOAT_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class DecodeResult:
    """Decoded keypoints ``(N, K, 2)`` and scores ``(N, K)``, both float32.

    Arrays stay in the framework and on the device the decoder produced them on; call
    :meth:`numpy` for host copies.
    """

    keypoints: Any
    scores: Any

    def numpy(self) -> DecodeResult:
        return DecodeResult(to_numpy(self.keypoints), to_numpy(self.scores))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def checked_result(res: Any, decoder: str) -> DecodeResult:
    """A decoder's return value, refused with its name unless it is a DecodeResult (or has its
    ``keypoints`` and ``scores``): a plugin returning None or a tuple fails here, clearly."""
    if isinstance(res, DecodeResult):
        return res
    if hasattr(res, "keypoints") and hasattr(res, "scores"):
        return DecodeResult(res.keypoints, res.scores)
    raise TypeError(
        f"decoder {decoder!r}: decode() must return posefw.DecodeResult(keypoints, scores), got {type(res).__name__}"
    )


def check_algorithm(algorithm: str, supported: tuple[str, ...], decoder: str) -> str:
    if not isinstance(algorithm, str) or algorithm not in supported:
        raise ValueError(f"algorithm: decoder {decoder!r} supports {', '.join(supported)}; got {algorithm!r}")
    return algorithm


#: The widest blur accepted: twice the side of the largest heatmaps in use (ViTPose-H 384x288
#: gives 96x72) with room to spare. 100001 used to run the machine out of memory.
MAX_KERNEL = 255


def check_kernel(kernel: Any) -> int:
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)):
        raise TypeError(f"kernel: expected an odd integer >= 1, got {kernel!r}")
    if kernel < 1 or kernel % 2 == 0 or kernel > MAX_KERNEL:
        raise ValueError(f"kernel: expected an odd integer from 1 to {MAX_KERNEL}, got {kernel}")
    return int(kernel)


def check_heatmaps(heatmaps: Any) -> tuple[int, int, int, int]:
    """Validate shape and dtype; return (N, K, H, W)."""
    shape = getattr(heatmaps, "shape", None)
    if shape is None:
        raise TypeError(
            f"heatmaps: expected an array (N, K, H, W) of float32 or float16, got {type(heatmaps).__name__}"
        )
    if len(shape) != 4:
        raise ValueError(f"heatmaps: expected 4 dimensions (N, K, H, W), got shape {tuple(shape)}")
    dt = dtype_name(heatmaps)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"heatmaps: expected float32 or float16, got {dt}")
    n, k, h, w = (int(s) for s in shape)
    if n > 0 and (k < 1 or h < 1 or w < 1):
        raise ValueError(f"heatmaps: K, H and W must be >= 1, got shape {tuple(shape)}")
    return n, k, h, w


def check_boxes(centers: Any, scales: Any, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Validate centers/scales (host copies, float64); None when both are None."""
    if centers is None and scales is None:
        return None
    if centers is None or scales is None:
        missing = "centers" if centers is None else "scales"
        raise ValueError(f"{missing}: centers and scales must be given together")
    out = []
    for name, arr in (("centers", centers), ("scales", scales)):
        a = np.asarray(to_numpy(arr))
        if a.dtype.kind not in "iuf":  # real numbers only (not bool, complex, object, ...)
            raise TypeError(f"{name}: expected a real numeric (N, 2) array, got dtype {a.dtype}")
        if a.shape != (n, 2):
            raise ValueError(f"{name}: expected shape ({n}, 2) to match heatmaps, got {a.shape}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: all values must be finite")
        out.append(a)
    if (out[1] <= 0).any():  # cheap when valid (this runs on every decode with boxes)
        i = int(np.flatnonzero((out[1] <= 0).any(axis=1))[0])
        raise ValueError(f"scales: crop width and height must be > 0; box index {i} has {out[1][i].tolist()}")
    return out[0], out[1]


def check_device_boxes(centers: Any, scales: Any, n: int) -> None:
    """Shape and dtype checks for device-resident centers/scales; their values are not read here
    (that would sync: see ``check_boxes`` for the values, outside a graph capture)."""
    for name, arr in (("centers", centers), ("scales", scales)):
        shape = tuple(int(s) for s in getattr(arr, "shape", ()))
        if shape != (n, 2):
            raise ValueError(f"{name}: expected shape ({n}, 2) to match heatmaps, got {shape}")
        dt = dtype_name(arr)
        if not dt.startswith(("float", "bfloat")):
            raise TypeError(f"{name}: expected a real floating (N, 2) array on the device, got dtype {dt}")


class Decoder:
    """Base class for decoders; plugins may subclass it or follow the same protocol.

    Subclasses set ``name``, ``algorithms`` and ``device``, override ``available`` when they
    need something optional, and implement ``decode``.
    """

    name: ClassVar[str] = ""
    algorithms: ClassVar[tuple[str, ...]] = ALGORITHMS
    device: ClassVar[str] = "cpu"
    #: Option names the constructor accepts besides algorithm and kernel.
    options: ClassVar[tuple[str, ...]] = ()
    #: ``decode`` on CUDA tensors (heatmaps, centers and scales on the device) reads nothing back
    #: to the host and allocates only through torch, so it can be captured in the engine's CUDA
    #: graph (the pipeline and the benchmark then run it there).
    graph_safe: ClassVar[bool] = False

    @classmethod
    def available(cls) -> str | None:
        """None when usable here, otherwise the reason, phrased so a person can act on it."""
        return None

    def __init__(self, algorithm: str = "dark-udp", kernel: int = 11, **options: Any) -> None:
        self.algorithm = check_algorithm(algorithm, self.algorithms, self.name)
        self.kernel = check_kernel(kernel)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(("algorithm", "kernel", *self.options))
            raise TypeError(f"options: decoder {self.name!r} accepts {accepted}; unknown {unknown}")
        self.opts = options

    @property
    def udp(self) -> bool:
        """Whether keypoints go back to the image with the UDP transform (size - 1)."""
        return self.algorithm == "dark-udp"

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None) -> DecodeResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, algorithm={self.algorithm!r}, kernel={self.kernel})"
