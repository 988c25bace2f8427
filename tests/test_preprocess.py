"""CPU (OpenCV) and GPU-style (grid_sample) crops agree to about a grey level."""

from __future__ import annotations

import numpy as np
import pytest

from posefw.preprocess import STD, check_boxes_xywh, crop_cpu, crop_gpu, read_image
from posefw.transforms import box_to_center_scale

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")


@pytest.mark.parametrize("udp", [True, False])
def test_gpu_crop_matches_cpu(coco_mini, udp):
    img = read_image(coco_mini / "images" / "val2017" / "000000196141.jpg")
    boxes = np.array([[100, 40, 120, 300], [300, 100, 90, 160], [-20, -10, 200, 150]], float)
    c, s = box_to_center_scale(boxes)
    cpu = crop_cpu(img, c, s, udp=udp)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    frames = torch.from_numpy(img).permute(2, 0, 1)[None].to(dev)
    gpu = crop_gpu(frames, [0, 0, 0], c, s, udp=udp).cpu().numpy()
    grey = np.abs(gpu - cpu) * (STD[None, :, None, None] * 255)  # back to 0..255 grey levels
    assert grey.mean() <= 1.0, grey.mean()


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image: file not found"):
        read_image(tmp_path / "none.jpg")


def test_box_checks_name_the_index():
    ok, why = check_boxes_xywh([[0, 0, 10, 10], [0, 0, 0, 10], [500, 0, 10, 10]], (100, 200, 3))
    assert ok.tolist() == [True, False, False]
    assert why[1].startswith("box 1") and "outside" in why[2]
