"""numpy-cpu: the reference decoder every other backend is checked against.

It is the core's reference stages (:mod:`posefw.dark`) behind the decoder interface, registered
like any plugin.
"""

from __future__ import annotations

from typing import Any

from posefw import hookimpl
from posefw.dark import reference_decode
from posefw.decoder import Decoder, DecodeResult


class NumpyCPUDecoder(Decoder):
    """The CPU reference: mmpose 0.x semantics, vectorized NumPy (the stages in posefw.dark)."""

    name = "numpy-cpu"
    device = "cpu"

    def decode(self, heatmaps: Any, centers: Any = None, scales: Any = None) -> DecodeResult:
        return reference_decode(heatmaps, self.algorithm, self.kernel, centers, scales, self.udp)


@hookimpl
def posefw_register_decoders():
    return [NumpyCPUDecoder]
