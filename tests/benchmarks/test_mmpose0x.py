"""The benchmark's mmpose 0.x decoders give numpy-cpu's answers (so timing them is a fair race)."""

from __future__ import annotations

import numpy as np
import pytest
from posefw.conformance.cases import realistic, well_conditioned

import posefw

pytest.importorskip("cv2")


@pytest.mark.parametrize("algorithm", ["dark-udp", "dark"])
def test_mmpose_0x_matches_numpy_cpu(algorithm):
    from posefw.benchmarks.mmpose0x import decode

    hm = realistic(7, n=6)
    coords, maxvals = decode(hm, algorithm)
    ref = posefw.create_decoder("numpy-cpu", algorithm=algorithm).decode(hm).numpy()
    ok = well_conditioned(hm, algorithm)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(coords[ok], ref.keypoints[ok], atol=2e-3)
    np.testing.assert_allclose(maxvals, ref.scores, rtol=1e-6)
    assert np.array_equal(hm, realistic(7, n=6)), "the input must not be blurred in place"
