"""Crops: the CPU crop is OpenCV 4's warpAffine on every OpenCV, and the GPU kernel equals it.

On the CPU the Triton kernel runs under Triton's interpreter (small crops keep it quick); on a
GPU the same tests run it for real.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from posefw.crop_kernel import crop_gpu, crop_matrices, read_windows
from posefw.preprocess import STD, box_checks, check_boxes_xywh, crop_cpu, fixed_point_positions, read_image
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


def _warp_affine_inverse(m: np.ndarray) -> np.ndarray:
    """OpenCV's warpAffine inversion of one 2x3 matrix, written out in its order of operations."""
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = m[1, 1] * d, m[0, 0] * d, -m[0, 1] * d, -m[1, 0] * d
    return np.array([[a11, a12, -a11 * m[0, 2] - a12 * m[1, 2]], [a21, a22, -a21 * m[0, 2] - a22 * m[1, 2]]])


finite = st.floats(-1e5, 1e5, allow_nan=False)
sizes = st.floats(1e-2, 1e5, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(c=st.tuples(finite, finite), s=st.tuples(sizes, sizes), udp=st.booleans())
def test_crop_matrices_are_warp_affines_inverse_to_the_last_bit(c, s, udp):
    """The column arithmetic equals the general 2x3 inversion bit for bit: the GPU kernel and
    the CPU crop sample the same positions only if the doubles are the same."""
    ours = crop_matrices(np.array([c]), np.array([s]), udp)[0]
    ref = _warp_affine_inverse(crop_matrix(np.array(c), np.array(s), udp=udp))
    assert (ours == ref).all(), (ours, ref)


box_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.just(4)),
    elements=st.one_of(st.floats(-400, 900), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e300, 1e-300, 9e-4])),
)


@settings(max_examples=100, deadline=None)
@given(boxes=box_rows, h=st.integers(1, 600), w=st.integers(1, 800))
def test_box_checks_valid_boxes_are_exactly_the_finite_sane_inside_ones(boxes, h, w):
    ok, code = box_checks(boxes, h, w)
    x, y, bw, bh = boxes.T
    limit = 16.0 * max(h, w)
    with np.errstate(invalid="ignore", over="ignore"):
        want = np.isfinite(boxes).all(1) & (bw >= 1e-3) & (bh >= 1e-3) & (bw <= limit) & (bh <= limit)
        want &= (x < w) & (y < h) & (x + bw > 0) & (y + bh > 0)
    assert (ok == want).all()
    assert code is None if want.all() else ((code == 0) == want).all() and (code[~np.isfinite(boxes).all(1)] == 1).all()


@settings(max_examples=60, deadline=None)
@given(
    boxes=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(4)), elements=st.floats(-300, 900)),
    frames=st.lists(st.tuples(st.integers(1, 500), st.integers(1, 700)), min_size=1, max_size=3),
    udp=st.booleans(),
    data=st.data(),
)
def test_read_windows_hold_every_pixel_a_crop_reads(boxes, frames, udp, data):
    """Host frames are uploaded as these windows only: every bilinear tap of the kernel's
    fixed-point positions that lies in the frame must lie in its frame's window."""
    boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1.0
    owner = np.sort(data.draw(hnp.arrays(np.int64, len(boxes), elements=st.integers(0, len(frames) - 1))))
    used, frame_of_row = np.unique(owner, return_inverse=True)
    sizes = np.array(frames)[used]
    c, s = box_to_center_scale(boxes)
    inv = crop_matrices(c, s, udp)
    win = read_windows(inv, frame_of_row.reshape(-1), sizes)
    assert win.shape == (len(used), 4) and (win[:, 0] <= win[:, 1]).all() and (win[:, 2] <= win[:, 3]).all()
    for m, f in zip(inv, frame_of_row.reshape(-1)):
        (fh, fw), (y0, y1, x0, x1) = sizes[f], win[f]
        assert 0 <= y0 and y1 <= fh and 0 <= x0 and x1 <= fw
        gx, gy = fixed_point_positions(m)
        ix, iy = (gx >> 5).ravel(), (gy >> 5).ravel()
        for tx, ty in ((ix, iy), (ix + 1, iy), (ix, iy + 1), (ix + 1, iy + 1)):
            inside = (tx >= 0) & (tx < fw) & (ty >= 0) & (ty < fh)
            assert ((tx[inside] >= x0) & (tx[inside] < x1) & (ty[inside] >= y0) & (ty[inside] < y1)).all()


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
