"""Person crops for the network: box -> centre/scale -> affine warp -> ImageNet normalisation.

CPU: OpenCV ``warpAffine`` (bilinear, constant 0 border) on uint8 RGB, as ViTPose does.
GPU: one batched ``grid_sample`` over frames already on the device; it agrees with the CPU
crop to about one grey level (OpenCV quantizes sub-pixel positions to 1/32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posefw.transforms import INPUT_SIZE, crop_matrix

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); a clear error names the file when it cannot be read."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image: file not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"image: {p} could not be decoded as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_cpu(image: np.ndarray, centers: np.ndarray, scales: np.ndarray, udp: bool = True,
             flip: bool = False, size=INPUT_SIZE) -> np.ndarray:
    """(N, 3, H, W) float32 normalised crops of one RGB uint8 image."""
    import cv2

    out = np.empty((len(centers), 3, size[1], size[0]), np.float32)
    for i, (c, s) in enumerate(zip(centers, scales)):
        m = crop_matrix(c, s, size, udp=udp)
        crop = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if flip:
            crop = crop[:, ::-1]
        out[i] = ((crop.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    return out


def crop_gpu(frames: Any, frame_index: Any, centers: Any, scales: Any, udp: bool = True, size=INPUT_SIZE):
    """Batched crops of frames already on the GPU: frames (F, 3, H, W) uint8 or float in [0, 255].

    ``frame_index`` (N,) picks each box's frame; returns (N, 3, 256, 192) float32 normalised.
    """
    import torch
    import torch.nn.functional as F

    dev = frames.device
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    s = torch.as_tensor(np.asarray(scales), dtype=torch.float64)
    inv = np.stack([crop_matrix(ci, si, size, udp=udp, inv=True) for ci, si in zip(c.numpy(), s.numpy())])
    inv = torch.as_tensor(inv, dtype=torch.float32, device=dev)  # crop pixel -> image pixel
    w, h = size
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)  # (HW, 3)
    src = torch.einsum("nij,pj->npi", inv, pix)  # (N, HW, 2) image pixels
    fh, fw = frames.shape[2], frames.shape[3]
    grid = torch.stack([src[..., 0] / (fw - 1) * 2 - 1, src[..., 1] / (fh - 1) * 2 - 1], -1).reshape(-1, h, w, 2)
    idx = torch.as_tensor(np.asarray(frame_index), device=dev, dtype=torch.long)
    imgs = frames.float().index_select(0, idx)
    crops = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    mean = torch.as_tensor(MEAN * 255, device=dev).view(1, 3, 1, 1)
    std = torch.as_tensor(STD * 255, device=dev).view(1, 3, 1, 1)
    return (crops - mean) / std


def check_boxes_xywh(boxes: Any, image_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Valid-box mask and a reason per invalid box (index named) for (N, 4) x, y, w, h boxes."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4) as x, y, w, h, got {b.shape}")
    h, w = image_shape[:2]
    ok = np.ones(len(b), bool)
    reasons = [""] * len(b)
    for i, (x, y, bw, bh) in enumerate(b):
        if not np.isfinite(b[i]).all():
            ok[i], reasons[i] = False, f"box {i}: non-finite values {b[i].tolist()}"
        elif bw <= 0 or bh <= 0:
            ok[i], reasons[i] = False, f"box {i}: width and height must be > 0, got {bw} x {bh}"
        elif x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
            ok[i], reasons[i] = False, f"box {i}: {b[i].tolist()} lies entirely outside the {w}x{h} image"
    return ok, reasons
