"""Every person crop of a batch in one Triton kernel: affine warp, flip, normalisation and cast.

Each box row carries its frame's device address and strides (a per-frame base pointer table),
so frames of any size and layout (HWC from NumPy, CHW from ``decode_jpeg``) are read in place,
and the launch has fixed arguments: it can be captured in a CUDA graph next to the engine.

The warp is OpenCV's ``warpAffine`` (bilinear, constant 0 border) in its own fixed point:
source positions rounded to 1/32 pixel, integer bilinear weights, the result rounded to uint8
like ViTPose's crop, then ``(v / 255 - mean) / std``. Rows ``i >= n_plain`` are the mirrored
crops of box ``i - n_plain`` (the flip test).

Triton is imported lazily (this module imports without it); on CPU tensors the kernel runs
under Triton's interpreter (``TRITON_INTERPRET=1``), which CI uses.
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from posefw.transforms import INPUT_SIZE

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
#: Output rows and columns per program: 192 columns are three tiles (on an H200, 4 x 64 tiles
#: took 34 us for 64 crops, 16 x 64 tiles 45-60 us, the untiled kernel 46 us).
TILE_ROWS, TILE_COLS = 4, 64
#: Columns of the per-box tables: int64 (frame address, height, width, row, column and channel
#: strides in bytes, 2 spare) and float64 (the crop -> image matrix row-major, 2 spare).
INT_COLS, FLOAT_COLS = 8, 8


def triton_unavailable() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (it comes with CUDA builds of torch on Linux)"
    return None


@functools.cache
def _kernel(interpret: bool):
    import triton
    import triton.language as tl

    @triton.jit
    def warp_crops(
        ints_ptr,
        floats_ptr,
        out_ptr,
        n_plain,
        s0,
        s1,
        s2,
        b0,
        b1,
        b2,
        OW: tl.constexpr,
        OH: tl.constexpr,
        BR: tl.constexpr,
        BC: tl.constexpr,
    ):
        # A program is a tile of BR rows x BC columns of one crop: OpenCV's terms depend on the
        # row alone or on the column alone, so they are worked out once per row and per column
        # (in double, as OpenCV does) and only integer sums are made per pixel.
        i = tl.program_id(1)
        flip = i >= n_plain
        b = tl.where(flip, i - n_plain, i).to(tl.int64)
        cols: tl.constexpr = (OW + BC - 1) // BC
        y = (tl.program_id(0) // cols) * BR + tl.arange(0, BR)
        x = (tl.program_id(0) % cols) * BC + tl.arange(0, BC)
        xs = tl.where(flip, OW - 1 - x, x).to(tl.float64)  # column of the unmirrored crop
        yf = y.to(tl.float64)
        row = ints_ptr + b * 8
        base = tl.load(row).to(tl.pointer_type(tl.uint8))
        fh = tl.load(row + 1)
        fw = tl.load(row + 2)
        sy = tl.load(row + 3)
        sx = tl.load(row + 4)
        sc = tl.load(row + 5)
        m = floats_ptr + b * 8
        m00 = tl.load(m)
        m01 = tl.load(m + 1)
        m02 = tl.load(m + 2)
        m10 = tl.load(m + 3)
        m11 = tl.load(m + 4)
        m12 = tl.load(m + 5)
        # OpenCV's warpAffine in double: row term and column term each in 1/1024 px rounded half
        # to even (saturate_cast<int>), + 16, >> 5 -> 1/32 px. Rows: (x, y) terms of each row;
        # columns: (x, y) terms of each column.
        t = tl.join(m01 * yf + m02, m11 * yf + m12) * 1024.0
        r = tl.floor(t + 0.5)
        ra, rc = tl.split(tl.where((r - t == 0.5) & (r - 2.0 * tl.floor(r * 0.5) == 1.0), r - 1.0, r).to(tl.int32))
        t = tl.join(m00 * xs, m10 * xs) * 1024.0
        r = tl.floor(t + 0.5)
        rb, rd = tl.split(tl.where((r - t == 0.5) & (r - 2.0 * tl.floor(r * 0.5) == 1.0), r - 1.0, r).to(tl.int32))
        gx = (ra[:, None] + rb[None, :] + 16) >> 5
        gy = (rc[:, None] + rd[None, :] + 16) >> 5
        ix = gx >> 5
        iy = gy >> 5
        fx = gx & 31
        fy = gy & 31
        w00 = (32 - fx) * (32 - fy)
        w01 = fx * (32 - fy)
        w10 = (32 - fx) * fy
        w11 = fx * fy
        pm = (y[:, None] < OH) & (x[None, :] < OW)
        in_x0 = (ix >= 0) & (ix < fw)
        in_x1 = (ix + 1 >= 0) & (ix + 1 < fw)
        in_y0 = (iy >= 0) & (iy < fh)
        in_y1 = (iy + 1 >= 0) & (iy + 1 < fh)
        o00 = iy.to(tl.int64) * sy + ix.to(tl.int64) * sx
        p = y[:, None] * OW + x[None, :]
        for c in tl.static_range(3):
            o = o00 + c * sc
            v = w00 * tl.load(base + o, mask=pm & in_y0 & in_x0, other=0).to(tl.int32)
            v += w01 * tl.load(base + o + sx, mask=pm & in_y0 & in_x1, other=0).to(tl.int32)
            v += w10 * tl.load(base + o + sy, mask=pm & in_y1 & in_x0, other=0).to(tl.int32)
            v += w11 * tl.load(base + o + sy + sx, mask=pm & in_y1 & in_x1, other=0).to(tl.int32)
            u8 = ((v + 512) >> 10).to(tl.float32)
            if c == 0:
                val = u8 * s0 + b0
            elif c == 1:
                val = u8 * s1 + b1
            else:
                val = u8 * s2 + b2
            dst = out_ptr + (i.to(tl.int64) * 3 + c) * (OW * OH) + p
            tl.store(dst, val.to(out_ptr.dtype.element_ty), mask=pm)

    return warp_crops


def launch(ints, floats, out, n_plain: int) -> None:
    """Fill ``out`` (N, 3, H, W), N = n_plain or 2 * n_plain, from the box tables (torch tensors)."""
    import torch

    n_out, _, oh, ow = out.shape
    if not out.is_contiguous():
        raise ValueError("out: expected a contiguous (N, 3, H, W) tensor")
    scale = 1.0 / (255.0 * STD.astype(np.float64))
    bias = -MEAN.astype(np.float64) / STD.astype(np.float64)
    grid = (-(-oh // TILE_ROWS) * -(-ow // TILE_COLS), n_out)
    on_device = torch.cuda.device(out.device) if out.is_cuda else contextlib.nullcontext()
    with on_device:
        _kernel(os.environ.get("TRITON_INTERPRET") == "1")[grid](
            ints,
            floats,
            out,
            int(n_plain),
            *(float(v) for v in scale),
            *(float(v) for v in bias),
            OW=ow,
            OH=oh,
            BR=TILE_ROWS,
            BC=TILE_COLS,
        )


def crop_matrices(centers: np.ndarray, scales: np.ndarray, udp: bool, size=INPUT_SIZE) -> np.ndarray:
    """(N, 2, 3) crop pixel -> image pixel matrices for rotation 0, vectorised (no loop per box).

    The image -> crop matrices are ``posefw.transforms.crop_matrix``'s (UDP or standard), and
    they are inverted as OpenCV's ``warpAffine`` inverts them (``D = 1 / (m0 m4 - m1 m3)``,
    ``b = -A t``), so the kernel samples where the CPU crop does to the last bit of the double.
    Without rotation both matrices are diagonal, which the column arithmetic below uses: a
    dozen array operations instead of three dozen (this runs on every call's critical path).
    """
    c = np.asarray(centers, np.float64).reshape(-1, 2)
    s = np.asarray(scales, np.float64).reshape(-1, 2)
    out = np.asarray(size, np.float64)
    if udp:
        f = (out - 1.0) / s  # forward diagonal (x, y)
        t = f * (-c + 0.5 * s)  # forward translation
    else:
        a = out[0] / s[:, :1]
        f = np.concatenate([a, a], 1)
        t = out * 0.5 - a * c
    det = f[:, 0] * f[:, 1]  # m0 m4 - m1 m3 with m1 = m3 = 0
    inv_det = np.divide(1.0, det, out=np.zeros_like(det), where=det != 0)
    diag = f[:, ::-1] * inv_det[:, None]  # (A11, A22) = (m4 D, m0 D)
    inv = np.zeros((len(c), 2, 3), np.float64)
    inv[:, 0, 0], inv[:, 1, 1] = diag[:, 0], diag[:, 1]
    inv[:, :, 2] = -diag * t  # -A11 t0 - A12 t1 with A12 = -0 D: the same double
    return inv


#: Pixels added on every side of a crop's corners: the kernel's fixed-point positions differ
#: from the exact ones by less than 1/16 pixel, and bilinear reads the next pixel too.
WINDOW_MARGIN = 2


def window_row(at: int, window: tuple[int, int, int, int], height: int, width: int) -> tuple[int, ...]:
    """A host frame's table row when only its ``window`` (y0, y1, x0, x1) was uploaded, packed
    (3 bytes a pixel) at device address ``at``: the address is shifted back by the window's
    offset and the size is the whole frame's, so the kernel's coordinates and zero border are
    the frame's own."""
    y0, _, x0, x1 = window
    rw3 = (x1 - x0) * 3
    return (at - y0 * rw3 - x0 * 3, height, width, rw3, 3, 1)


def read_windows(matrices: np.ndarray, frame_of_row: np.ndarray, sizes: np.ndarray, size=INPUT_SIZE) -> np.ndarray:
    """(F, 4) y0, y1, x0, x1 per frame: the part of each frame its crops can read.

    Host frames are uploaded as this window, not whole: one person in a 640x480 frame reads
    about a third of it, and a one-box call's upload sits on its critical path. Without
    rotation a crop's corners bound what it samples; ``WINDOW_MARGIN`` covers fixed-point
    rounding and the second bilinear tap. ``frame_of_row`` must be sorted (rows come frame by
    frame); ``sizes`` is (F, 2) height, width. A window may be empty (a crop wholly outside its
    frame reads only the zero border).
    """
    ow, oh = size
    m = np.asarray(matrices, np.float64).reshape(-1, 6)
    u, v = np.array([0.0, ow - 1, 0.0, ow - 1]), np.array([0.0, 0.0, oh - 1, oh - 1])
    xs = m[:, 0:1] * u + m[:, 1:2] * v + m[:, 2:3]  # (R, 4) image x of the four corners
    ys = m[:, 3:4] * u + m[:, 4:5] * v + m[:, 5:6]
    lo = np.floor(np.stack([ys.min(1), xs.min(1)], 1)) - WINDOW_MARGIN
    hi = np.floor(np.stack([ys.max(1), xs.max(1)], 1)) + (WINDOW_MARGIN + 2)
    starts = np.flatnonzero(np.r_[True, np.diff(frame_of_row) != 0]) if len(frame_of_row) else []
    lo, hi = np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    lo = np.clip(lo, 0, sizes)
    hi = np.clip(hi, lo, sizes)
    return np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], 1).astype(np.int64)


def crop_gpu(
    frames: list, frame_index, centers, scales, udp: bool = True, flip: bool = False, size=INPUT_SIZE, dtype=None
):
    """Crops of frames already on one device (torch uint8 (H, W, 3) or (3, H, W), any strides).

    Returns (N, 3, H, W) normalised crops, or (2N, ...) with the mirrored ones after them when
    ``flip``. The pipeline fills the same tables in pinned memory instead of calling this.
    """
    import torch

    from posefw.frames import as_frame

    checked = [as_frame(f, i) for i, f in enumerate(frames)]
    table = np.array([[_address(f.array), f.height, f.width, *f.strides] for f in checked], np.int64)
    idx = np.asarray(frame_index, np.int64)
    n = len(idx)
    dev = torch.device(checked[0].device)
    ints = torch.zeros((n, INT_COLS), dtype=torch.int64)
    ints[:, :6] = torch.from_numpy(table[idx])
    floats = torch.zeros((n, FLOAT_COLS), dtype=torch.float64)
    floats[:, :6] = torch.from_numpy(crop_matrices(centers, scales, udp, size).reshape(n, 6))
    out = torch.empty((2 * n if flip else n, 3, size[1], size[0]), dtype=dtype or torch.float32, device=dev)
    launch(ints.to(dev), floats.to(dev), out, n)
    return out


def _address(a) -> int:
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data_ptr()
