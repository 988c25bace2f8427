"""Boxes and crop matrices against OpenCV/mmpose, and the image -> heatmap -> image round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posefw.coco import keypoints_to_heatmap
from posefw.transforms import (
    HEATMAP_SIZE,
    box_to_center_scale,
    get_affine_transform,
    get_warp_matrix,
    heatmap_to_image,
)


def test_box_to_center_scale_fixes_aspect_and_pads():
    c, s = box_to_center_scale(np.array([[10, 20, 30, 100], [0, 0, 300, 100]]))
    np.testing.assert_allclose(c, [[25, 70], [150, 50]])
    np.testing.assert_allclose(s, [[75 * 1.25, 100 * 1.25], [300 * 1.25, 400 * 1.25]])


def test_box_shape_error():
    with pytest.raises(ValueError, match="boxes: expected shape"):
        box_to_center_scale(np.zeros((3, 3)))


def test_affine_matches_mmpose_three_point_construction():
    cv2 = pytest.importorskip("cv2")
    center, scale, rot, size = np.array([120.0, 90.0]), np.array([80.0, 80 / 0.75]), 17.0, (192, 256)
    # mmpose 0.x get_affine_transform, in its own three-point form
    r = np.deg2rad(rot)
    src_dir = np.array([scale[0] * 0.5 * np.sin(r), -scale[0] * 0.5 * np.cos(r)])  # rotate (0, -w/2) by r
    dst_dir = np.array([0.0, size[0] * -0.5])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0], dst[1] = [size[0] * 0.5, size[1] * 0.5], np.array([size[0] * 0.5, size[1] * 0.5]) + dst_dir

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], np.float32)

    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    expected = cv2.getAffineTransform(src, dst)
    np.testing.assert_allclose(get_affine_transform(center, scale, size, rot=rot), expected, atol=1e-4)


def test_warp_matrix_matches_facts():
    m = get_warp_matrix(np.array([100.0, 200.0]), np.array([60.0, 80.0]))
    # x_in = (x - cx + w/2) * 191 / w
    np.testing.assert_allclose(m @ [100.0, 200.0, 1.0], [0.5 * 191, 0.5 * 255])
    np.testing.assert_allclose(m[:, :2], np.diag([191 / 60, 255 / 80]))


@settings(max_examples=200, deadline=None)
@given(
    box=st.tuples(st.floats(-500, 2000), st.floats(-500, 2000), st.floats(1, 1500), st.floats(1, 1500)),
    pt=st.tuples(st.floats(-1, 2), st.floats(-1, 2)),
    udp=st.booleans(),
)
def test_image_crop_heatmap_image_round_trip(box, pt, udp):
    boxes = np.array([box])
    c, s = box_to_center_scale(boxes)
    p = np.array([[[box[0] + pt[0] * box[2], box[1] + pt[1] * box[3]]]])
    hm = keypoints_to_heatmap(p, c, s, udp)
    back = heatmap_to_image(hm, c, s, HEATMAP_SIZE, udp)
    tol = 1e-4 + 4e-7 * np.abs(p).max()  # float32 output at large magnitudes
    assert np.abs(back.astype(np.float64) - p).max() <= tol
