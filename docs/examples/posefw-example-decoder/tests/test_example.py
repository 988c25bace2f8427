"""The plugin's own tests; conformance itself comes from ``--posefw-decoder`` in pyproject."""

import numpy as np

import posefw


def test_registered_through_entry_point():
    info = {i.name: i for i in posefw.available_decoders()}["example-argmax"]
    assert info.provider == "posefw-example-decoder"
    assert info.available


def test_decodes_a_peak():
    hm = np.zeros((1, 1, 64, 48), np.float32)
    hm[0, 0, 10, 20] = 1.0
    hm[0, 0, 10, 21] = 0.5
    res = posefw.create_decoder("example-argmax").decode(hm)
    assert res.keypoints[0, 0].tolist() == [20.25, 10.0]
