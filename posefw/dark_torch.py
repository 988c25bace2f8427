"""DARK decoding as a torch.nn.Module, beside :mod:`posefw.dark` in the algorithm's one home:
batched, branch-free, CUDA-graph capturable, exportable (torch-full and ``export`` use it).

Same rules and float32 operation order as numpy-cpu. There is no data-dependent control flow:
the classic-DARK rescale is computed for every map from a full zero-padded blur (conv2d) and
applied where numpy-cpu's guard would apply it, so the graph is static. ``solve_dtype`` is
float64 like the reference, or float32 for engines without doubles (TensorRT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posefw.dark import DARK_FLOOR, DARK_RESCALE_GUARD, EPS32, UDP_CLIP, gaussian_kernel1d

_TAPS = [(0, 2), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1), (3, 2), (3, 3), (4, 2)]


def _reflect101(i: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * n - 2
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


class DarkDecode(nn.Module):
    """(N, K, H, W) heatmaps [+ centers, scales (N, 2)] -> keypoints (N, K, 2), scores (N, K)."""

    def __init__(self, algorithm: str = "dark-udp", kernel: int = 11, solve_dtype: torch.dtype = torch.float64):
        super().__init__()
        self.algorithm, self.kernel, self.solve_dtype = algorithm, kernel, solve_dtype
        self.register_buffer("g", torch.from_numpy(gaussian_kernel1d(kernel).copy()), persistent=False)
        r = (kernel - 1) // 2
        # Band matrices of the two window sizes used (UDP: 3 outputs, DARK: 5), built once.
        self.register_buffer("band3", self._make_band(2 * r + 3, 3), persistent=False)
        self.register_buffer("band5", self._make_band(2 * r + 5, 5), persistent=False)

    def forward(
        self, heatmaps: torch.Tensor, centers: torch.Tensor | None = None, scales: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, k, h, w = heatmaps.shape
        flat = heatmaps.float().reshape(n * k, h * w)
        idx = torch.argmax(flat, dim=1)
        score = torch.gather(flat, 1, idx[:, None])[:, 0]
        finite = torch.isfinite(score) & torch.isfinite(flat.amin(dim=1))
        x, y = idx % w, torch.div(idx, w, rounding_mode="floor")
        valid = finite & (score > 0)
        xf, yf = x.float(), y.float()
        if self.algorithm == "dark-udp":
            px, py = self._udp(flat, x, y, h, w, xf, yf)
        elif self.algorithm == "dark":
            px, py = self._dark(flat, x, y, h, w, xf, yf, score)
        else:
            px, py = self._argmax(flat, x, y, h, w, xf, yf)
        neg = torch.full_like(px, -1.0)
        px, py = torch.where(valid, px, neg), torch.where(valid, py, neg)
        coords = torch.stack([px, py], dim=1).reshape(n, k, 2)
        if centers is not None and scales is not None:
            coords = self._to_image(coords, centers, scales, h, w)
        nan = torch.full_like(score, float("nan"))
        bad = ~finite
        coords = torch.where(bad.reshape(n, k, 1), nan[0], coords)
        score = torch.where(bad, nan, score)
        return coords, score.reshape(n, k)

    def _window(self, flat, x, y, h, w, reach, zero):
        r = (self.kernel - 1) // 2
        off = torch.arange(-(r + reach), r + reach + 1, device=flat.device)
        rows, cols = y[:, None] + off, x[:, None] + off
        if zero:
            rin = (rows >= 0) & (rows < h)
            cin = (cols >= 0) & (cols < w)
            rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
        else:
            rows, cols = _reflect101(rows, h), _reflect101(cols, w)
        index = rows[:, :, None] * w + cols[:, None, :]
        win = torch.gather(flat, 1, index.reshape(flat.shape[0], -1)).reshape(index.shape)
        if zero:
            win = win * (rin[:, :, None] & cin[:, None, :]).float()
        m = 2 * reach + 1
        band = self.band3 if m == 3 else self.band5  # (m, L)
        hor = (win[:, :, None, :] * band).sum(-1)  # (M, L, m): one multiply and one reduction
        return hor, m

    def _make_band(self, length: int, m: int) -> torch.Tensor:
        """(m, length) rows of the 1-D valid blur: out[s] = sum_j g[j] * in[s + j].

        Elementwise products and a sum, not a matmul, so TF32 settings can't touch accuracy.
        """
        j = torch.arange(length)[None, :] - torch.arange(m)[:, None]
        inside = (j >= 0) & (j < self.kernel)
        return torch.where(inside, self.g[j.clamp(0, self.kernel - 1)], torch.zeros(()))

    def _vertical(self, hor, m):
        band = self.band3 if m == 3 else self.band5
        return (hor.transpose(1, 2)[:, :, None, :] * band).sum(-1).transpose(1, 2)

    def _udp(self, flat, x, y, h, w, xf, yf):
        hor, m = self._window(flat, x, y, h, w, 1, zero=False)
        cx = torch.stack([(x - 1).clamp(min=0), x, (x + 1).clamp(max=w - 1)], 1) - x[:, None] + 1
        hor = torch.gather(hor, 2, cx[:, None, :].expand(-1, hor.shape[1], -1))
        b = self._vertical(hor, m)
        ry = torch.stack([(y - 1).clamp(min=0), y, (y + 1).clamp(max=h - 1)], 1) - y[:, None] + 1
        b = torch.gather(b, 1, ry[:, :, None].expand(-1, -1, 3))
        f = torch.log(b.clamp(UDP_CLIP[0], UDP_CLIP[1]))
        i_, ix1, ix1_, iy1, iy1_ = f[:, 1, 1], f[:, 1, 2], f[:, 1, 0], f[:, 2, 1], f[:, 0, 1]
        dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
        dxx, dyy = ix1 - 2.0 * i_ + ix1_, iy1 - 2.0 * i_ + iy1_
        dxy = 0.5 * (f[:, 2, 2] - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + f[:, 0, 0])
        t = self.solve_dtype
        a, c = dxx.to(t) + EPS32, dyy.to(t) + EPS32
        dxy, dx, dy = dxy.to(t), dx.to(t), dy.to(t)
        det = a * c - dxy * dxy
        ox, oy = (c * dx - dxy * dy) / det, (a * dy - dxy * dx) / det
        ok = (det != 0) & torch.isfinite(ox) & torch.isfinite(oy)
        zero = torch.zeros_like(ox)
        return xf - torch.where(ok, ox, zero).float(), yf - torch.where(ok, oy, zero).float()

    def _dark(self, flat, x, y, h, w, xf, yf, score):
        interior = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
        xs, ys = x.clamp(2, max(w - 3, 2)), y.clamp(2, max(h - 3, 2))
        hor, m = self._window(flat, xs, ys, h, w, 2, zero=True)
        b = self._vertical(hor, m)
        taps = torch.stack([b[:, i, j] for i, j in _TAPS], 1)
        need = (taps < DARK_RESCALE_GUARD).any(dim=1)
        r = (self.kernel - 1) // 2
        maps = flat.reshape(-1, 1, h, w)
        full = F.conv2d(maps, self.g.reshape(1, 1, 1, -1), padding=(0, r))
        full = F.conv2d(full, self.g.reshape(1, 1, -1, 1), padding=(r, 0))
        s = score / full.reshape(full.shape[0], -1).amax(dim=1)
        b = torch.where(need[:, None, None], b * s[:, None, None], b)
        f = torch.log(torch.where(torch.isnan(b), b, b.clamp(min=DARK_FLOOR)))
        c = f[:, 2, 2]
        dx, dy = 0.5 * (f[:, 2, 3] - f[:, 2, 1]), 0.5 * (f[:, 3, 2] - f[:, 1, 2])
        dxx = 0.25 * (f[:, 2, 4] - 2.0 * c + f[:, 2, 0])
        dxy = 0.25 * (f[:, 3, 3] - f[:, 1, 3] - f[:, 3, 1] + f[:, 1, 1])
        dyy = 0.25 * (f[:, 4, 2] - 2.0 * c + f[:, 0, 2])
        det32 = dxx * dyy - dxy * dxy
        t = self.solve_dtype
        dx, dy, dxx, dxy, dyy = (v.to(t) for v in (dx, dy, dxx, dxy, dyy))
        det = dxx * dyy - dxy * dxy
        ox, oy = (dyy * dx - dxy * dy) / det, (dxx * dy - dxy * dx) / det
        ok = interior & (det32 != 0) & torch.isfinite(ox) & torch.isfinite(oy)
        zero = torch.zeros_like(ox)
        return xf - torch.where(ok, ox, zero).float(), yf - torch.where(ok, oy, zero).float()

    @staticmethod
    def _argmax(flat, x, y, h, w, xf, yf):
        inner = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
        xs, ys = x.clamp(1, max(w - 2, 1)), y.clamp(1, max(h - 2, 1))

        def at(yy, xx):
            return torch.gather(flat, 1, (yy * w + xx).clamp(0, h * w - 1)[:, None])[:, 0]

        ddx = at(ys, xs + 1) - at(ys, xs - 1)
        ddy = at(ys + 1, xs) - at(ys - 1, xs)
        zero = torch.zeros_like(xf)
        return (
            xf + torch.where(inner, torch.sign(ddx) * 0.25, zero),
            yf + torch.where(inner, torch.sign(ddy) * 0.25, zero),
        )

    def _to_image(self, coords, centers, scales, h, w):
        # Python scalars only: a host tensor here would be a copy, which graph capture forbids.
        udp = self.algorithm == "dark-udp"
        size = (w - 1.0, h - 1.0) if udp else (float(w), float(h))
        t = self.solve_dtype
        c, s = centers.to(t)[:, None, :], scales.to(t)[:, None, :]
        xy = coords.to(t)
        out = [xy[..., i] * (s[..., i] / size[i]) + c[..., i] - s[..., i] * 0.5 for i in (0, 1)]
        return torch.stack(out, dim=-1).float()
