"""Crops: the CPU crop is OpenCV 4's warpAffine on every OpenCV, and the GPU kernel equals it.

On the CPU the Triton kernel runs under Triton's interpreter (small crops keep it quick); on a
GPU the same tests run it for real.
"""

from __future__ import annotations

import numpy as np
import pytest

from posefw.crop_kernel import crop_gpu, crop_matrices
from posefw.preprocess import STD, check_boxes_xywh, crop_cpu, fixed_point_positions, read_image
from posefw.transforms import box_to_center_scale, crop_matrix

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

SMALL = (48, 64)  # crop (w, h): a 16th of the network's, so the interpreter takes a second
BOXES = np.array([[100, 40, 120, 300], [300, 100, 90, 160], [-20, -10, 200, 150], [560, 380, 120, 90]], float)


@pytest.fixture
def device(monkeypatch):
    if torch.cuda.is_available():
        return "cuda"
    pytest.importorskip("triton", reason="triton is not installed: the crop kernel cannot be interpreted")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "cpu"


@pytest.fixture
def frame(coco_mini):
    img = read_image(coco_mini / "images" / "val2017" / "000000196141.jpg")
    return np.ascontiguousarray(img[:427, :639])  # odd height and width


def grey_levels(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) * (STD[None, :, None, None] * 255)


def test_crop_matrices_invert_crop_matrix():
    c, s = box_to_center_scale(BOXES)
    for udp in (True, False):
        inv = crop_matrices(c, s, udp)
        for m, ci, si in zip(inv, c, s):
            fwd = np.vstack([crop_matrix(ci, si, udp=udp), [0, 0, 1]])
            np.testing.assert_allclose(np.vstack([m, [0, 0, 1]]) @ fwd, np.eye(3), atol=1e-9)


@pytest.mark.parametrize("udp", [True, False])
def test_cpu_crop_is_opencv4_fixed_point(frame, udp):
    """Where OpenCV is 4.x, crop_cpu equals warpAffine exactly; on any OpenCV it samples at
    1/32 px (OpenCV 5's float warpAffine differs by a few grey levels at edges)."""
    c, s = box_to_center_scale(BOXES)
    ours = crop_cpu(frame, c, s, udp=udp, size=SMALL)
    ref = np.stack(
        [
            cv2.warpAffine(
                frame,
                crop_matrix(ci, si, SMALL, udp=udp),
                SMALL,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            for ci, si in zip(c, s)
        ]
    )
    ref = ((ref.astype(np.float32) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(0, 3, 1, 2)
    grey = grey_levels(ours, ref)
    if cv2.__version__.startswith("4."):
        assert grey.max() < 1e-3
    assert grey.mean() <= 1.0


def test_fixed_point_positions_round_like_opencv():
    inv = np.array([[0.5, 0.0, 10.0 + 1 / 64], [0.0, 2.0, -3.0]])
    gx, gy = fixed_point_positions(inv, (4, 3))
    # x = 0.5 * col + 10.015625: 1/32 units, (row + col terms in 1/1024, + 16) >> 5
    assert gx[0].tolist() == [
        (10256 + 0 + 16) >> 5,
        (10256 + 512 + 16) >> 5,
        (10256 + 1024 + 16) >> 5,
        (10256 + 1536 + 16) >> 5,
    ]
    assert gy[:, 0].tolist() == [(-3072 + 16) >> 5, (-1024 + 16) >> 5, (1024 + 16) >> 5]


@pytest.mark.parametrize("udp", [True, False])
def test_gpu_crop_equals_cpu_crop(device, frame, udp):
    """Odd frame size, boxes across every border, plain and mirrored: the same uint8 samples."""
    c, s = box_to_center_scale(BOXES)
    cpu = crop_cpu(frame, c, s, udp=udp, size=SMALL)
    cpu_flip = crop_cpu(frame, c, s, udp=udp, flip=True, size=SMALL)
    out = crop_gpu([torch.from_numpy(frame).to(device)], [0] * len(c), c, s, udp=udp, flip=True, size=SMALL)
    out = out.cpu().numpy()
    n = len(c)
    assert grey_levels(out[:n], cpu).max() < 1e-3
    assert grey_levels(out[n:], cpu_flip).max() < 1e-3


def test_gpu_crop_frames_of_mixed_sizes_and_layouts(device, frame):
    """Two frames of different sizes in one launch, one HWC and one CHW (as decode_jpeg gives)."""
    small = np.ascontiguousarray(frame[50:301, 100:453])
    chw = torch.from_numpy(small).permute(2, 0, 1).contiguous().to(device)
    boxes = np.array([[10, 20, 100, 200], [200, 50, 80, 150], [30, 30, 300, 200]], float)
    c, s = box_to_center_scale(boxes)
    out = (
        crop_gpu([torch.from_numpy(frame).to(device), chw], [0, 1, 1], c, s, size=SMALL, dtype=torch.float16)
        .float()
        .cpu()
        .numpy()
    )
    ref = np.concatenate([crop_cpu(frame, c[:1], s[:1], size=SMALL), crop_cpu(small, c[1:], s[1:], size=SMALL)])
    assert grey_levels(out, ref).max() < 0.1  # fp16 rounding of the normalised values only


@pytest.mark.slow
def test_gpu_crop_network_size(device, frame):
    c, s = box_to_center_scale(BOXES[:1])
    out = crop_gpu([torch.from_numpy(frame).to(device)], [0], c, s).cpu().numpy()
    assert grey_levels(out, crop_cpu(frame, c, s)).max() < 1e-3


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image: file not found"):
        read_image(tmp_path / "none.jpg")


def test_box_checks_name_the_index():
    ok, why = check_boxes_xywh(
        [[0, 0, 10, 10], [0, 0, 0, 10], [500, 0, 10, 10], [0, 0, 1.5e308, 10], [0, 0, 1e300, 1e300], [np.nan, 0, 1, 1]],
        (100, 200, 3),
    )
    assert ok.tolist() == [True, False, False, False, False, False]
    assert why[0] == "" and why[1].startswith("box 1") and "outside" in why[2]
    assert "times the 200x100 frame" in why[3] and "times" in why[4] and "non-finite" in why[5]
