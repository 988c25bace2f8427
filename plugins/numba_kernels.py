"""The numba.cuda DARK kernel behind numba-full (imported only when numba-full decodes).

``cuda`` must be a module-level global here: numba's CUDA simulator swaps exactly that name.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import config, cuda, float32, float64, int32

from posefw.dark import DARK_FLOOR, DARK_RESCALE_GUARD, EPS32, UDP_CLIP, gaussian_kernel1d

# One block per heatmap: a small batch is a small grid by design, not a tuning mistake.
config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

_DARK_TAPS = np.array([2, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 22], np.int32)


@functools.lru_cache(maxsize=16)
def build_kernel(ksize: int, threads: int, max_registers: int | None = None):  # noqa: C901 - one kernel, kept in one place
    g = gaussian_kernel1d(ksize).copy()
    rad = (ksize - 1) // 2
    hor_size = (2 * rad + 5) * 5
    taps = _DARK_TAPS
    clip_lo, clip_hi = np.float32(UDP_CLIP[0]), np.float32(UDP_CLIP[1])
    floor, guard, eps = np.float32(DARK_FLOOR), np.float32(DARK_RESCALE_GUARD), EPS32
    nan = np.float32(np.nan)

    @cuda.jit(device=True)
    def refl(p, n):
        if p >= 0 and p < n:  # the common case: no 64-bit modulo
            return p
        if n == 1:
            return 0
        period = 2 * n - 2
        p = p % period
        if p < 0:
            p += period
        return period - p if p >= n else p

    @cuda.jit(device=True)
    def load_next(m, r, c, i, hw, dr, dc, w):
        """The value at flat index i (or -inf past the end) and the position one stride on."""
        v = float32(m[r, c]) if i < hw else float32(-math.inf)
        r, c = r + dr, c + dc
        if c >= w:
            r, c = r + 1, c - w
        return v, r, c

    @cuda.jit(device=True)
    def nonfinite(v, i, hw):
        return int32(1) if (i < hw and not math.isfinite(v)) else int32(0)

    @cuda.jit(device=True)
    def better(v, i, bv, bi):
        """Strictly greater wins: indices arrive in increasing order, so ties keep the first."""
        if v > bv:
            return v, int32(i)
        return bv, bi

    @cuda.jit(device=True)
    def hpass(m, r, c, h, w, zero):
        acc = float32(0.0)
        for j in range(ksize):
            cc = c + j - rad
            if zero:
                v = float32(m[r, cc]) if (r >= 0 and r < h and cc >= 0 and cc < w) else float32(0.0)
            else:
                v = float32(m[refl(r, h), refl(cc, w)])
            acc = float32(acc + float32(g[j] * v))
        return acc

    jit = cuda.jit(max_registers=max_registers) if max_registers else cuda.jit

    @jit
    def decode(hm, algo, mode, kp, sc, parts, centers, scales, has_boxes):
        nk = hm.shape[1]
        h, w = hm.shape[2], hm.shape[3]
        b = cuda.blockIdx.x
        n = b // nk
        k = b % nk
        m = hm[n, k]
        tid = cuda.threadIdx.x
        s_val = cuda.shared.array(threads, float32)
        s_idx = cuda.shared.array(threads, int32)
        s_bad = cuda.shared.array(threads, int32)
        s_hor = cuda.shared.array(hor_size, float32)
        s_blur = cuda.shared.array(25, float32)
        s_need = cuda.shared.array(1, int32)
        hw = h * w
        bv = float32(-math.inf)
        bi = int32(2147483647)
        bad = int32(0)
        # Eight independent loads in flight per step (a dependent load per iteration would
        # serialize HBM latency), compared in index order to keep the first-maximum rule.
        # Row and column advance incrementally: numba's integer // and % are 64-bit and slow.
        dr = threads // w
        dc = threads - dr * w
        r = tid // w
        c = tid - r * w
        for i0 in range(tid, hw, 8 * threads):
            v0, r, c = load_next(m, r, c, i0, hw, dr, dc, w)
            v1, r, c = load_next(m, r, c, i0 + threads, hw, dr, dc, w)
            v2, r, c = load_next(m, r, c, i0 + 2 * threads, hw, dr, dc, w)
            v3, r, c = load_next(m, r, c, i0 + 3 * threads, hw, dr, dc, w)
            v4, r, c = load_next(m, r, c, i0 + 4 * threads, hw, dr, dc, w)
            v5, r, c = load_next(m, r, c, i0 + 5 * threads, hw, dr, dc, w)
            v6, r, c = load_next(m, r, c, i0 + 6 * threads, hw, dr, dc, w)
            v7, r, c = load_next(m, r, c, i0 + 7 * threads, hw, dr, dc, w)
            bad |= nonfinite(v0, i0, hw) | nonfinite(v1, i0 + threads, hw) | nonfinite(v2, i0 + 2 * threads, hw) \
                | nonfinite(v3, i0 + 3 * threads, hw) | nonfinite(v4, i0 + 4 * threads, hw) \
                | nonfinite(v5, i0 + 5 * threads, hw) | nonfinite(v6, i0 + 6 * threads, hw) \
                | nonfinite(v7, i0 + 7 * threads, hw)
            bv, bi = better(v0, i0, bv, bi)
            bv, bi = better(v1, i0 + threads, bv, bi)
            bv, bi = better(v2, i0 + 2 * threads, bv, bi)
            bv, bi = better(v3, i0 + 3 * threads, bv, bi)
            bv, bi = better(v4, i0 + 4 * threads, bv, bi)
            bv, bi = better(v5, i0 + 5 * threads, bv, bi)
            bv, bi = better(v6, i0 + 6 * threads, bv, bi)
            bv, bi = better(v7, i0 + 7 * threads, bv, bi)
        s_val[tid] = bv
        s_idx[tid] = bi
        s_bad[tid] = bad
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                ov, oi = s_val[tid + step], s_idx[tid + step]
                if ov > s_val[tid] or (ov == s_val[tid] and oi < s_idx[tid]):
                    s_val[tid] = ov
                    s_idx[tid] = oi
                s_bad[tid] = s_bad[tid] | s_bad[tid + step]
            cuda.syncthreads()
            step //= 2
        score = s_val[0]
        idx = s_idx[0]
        bad = s_bad[0]
        if idx == 2147483647:
            idx = 0
            bad = 1
        x = idx % w
        y = idx // w
        valid = bad == 0 and score > 0
        interior = x > 1 and x < w - 2 and y > 1 and y < h - 2
        refine = valid and (algo == 0 or (algo == 1 and interior))
        reach = 1 if algo == 0 else 2
        nn = 2 * reach + 1
        rows = 2 * (rad + reach) + 1
        if refine:
            for t in range(tid, rows * nn, threads):
                rr = t // nn
                cc = t % nn
                r = y - rad - reach + rr
                c = x - reach + cc
                if algo == 0:
                    c = min(max(c, 0), w - 1)
                s_hor[t] = hpass(m, r, c, h, w, algo == 1)
        cuda.syncthreads()
        if refine:
            for t in range(tid, nn * nn, threads):
                a = t // nn
                bb = t % nn
                r0 = a
                if algo == 0:
                    r0 = min(max(y - 1 + a, 0), h - 1) - (y - 1)
                acc = float32(0.0)
                for i in range(ksize):
                    acc = float32(acc + float32(g[i] * s_hor[(r0 + i) * nn + bb]))
                s_blur[t] = acc
        cuda.syncthreads()
        if tid == 0:
            need = 0
            if algo == 1 and refine:
                for t in range(13):
                    if s_blur[taps[t]] < guard:
                        need = 1
            s_need[0] = need
        cuda.syncthreads()
        rescale = float32(1.0)
        if s_need[0] != 0:
            mx = float32(-math.inf)
            for p in range(tid, hw, threads):
                r = p // w
                c = p % w
                acc = float32(0.0)
                for i in range(ksize):
                    acc = float32(acc + float32(g[i] * hpass(m, r + i - rad, c, h, w, True)))
                mx = max(mx, acc)
            s_val[tid] = mx
            cuda.syncthreads()
            step = threads // 2
            while step > 0:
                if tid < step:
                    s_val[tid] = max(s_val[tid], s_val[tid + step])
                cuda.syncthreads()
                step //= 2
            rescale = float32(score / s_val[0])
        if tid != 0:
            return
        fx = float32(x) if valid else float32(-1.0)
        fy = float32(y) if valid else float32(-1.0)
        d0 = d1 = d2 = d3 = d4 = float32(0.0)
        if refine and algo == 0:
            f = cuda.local.array(9, float32)
            for t in range(9):
                f[t] = math.log(min(max(s_blur[t], clip_lo), clip_hi))
            i_, ix1, ix1_, iy1, iy1_ = f[4], f[5], f[3], f[7], f[1]
            d0 = float32(0.5) * float32(ix1 - ix1_)
            d1 = float32(0.5) * float32(iy1 - iy1_)
            d2 = float32(float32(ix1 - float32(2.0) * i_) + ix1_)
            d4 = float32(float32(iy1 - float32(2.0) * i_) + iy1_)
            s = float32(f[8] - ix1)
            s = float32(s - iy1)
            s = float32(s + i_)
            s = float32(s + i_)
            s = float32(s - ix1_)
            s = float32(s - iy1_)
            s = float32(s + f[0])
            d3 = float32(0.5) * s
        elif refine and algo == 1:
            f = cuda.local.array(25, float32)
            for t in range(25):
                v = s_blur[t]
                if rescale != float32(1.0):
                    v = float32(v * rescale)
                f[t] = math.log(v if math.isnan(v) else max(v, floor))
            c = f[12]
            d0 = float32(0.5) * float32(f[13] - f[11])
            d1 = float32(0.5) * float32(f[17] - f[7])
            d2 = float32(0.25) * float32(float32(f[14] - float32(2.0) * c) + f[10])
            s = float32(f[18] - f[8])
            s = float32(s - f[16])
            s = float32(s + f[6])
            d3 = float32(0.25) * s
            d4 = float32(0.25) * float32(float32(f[22] - float32(2.0) * c) + f[2])
        elif valid and algo == 2 and x > 1 and x < w - 1 and y > 1 and y < h - 1:
            d0 = float32(float32(m[y, x + 1]) - float32(m[y, x - 1]))
            d1 = float32(float32(m[y + 1, x]) - float32(m[y - 1, x]))
        if mode == 1:
            code = 3 if bad != 0 else (1 if (refine or (valid and algo == 2)) else (2 if valid else 0))
            o = parts[b]
            o[0], o[1], o[2], o[3] = score, float32(x), float32(y), float32(code)
            o[4], o[5], o[6], o[7], o[8] = d0, d1, d2, d3, d4
            return
        if refine and algo == 0:
            a2 = float64(d2) + eps
            c2 = float64(d4) + eps
            det = a2 * c2 - float64(d3) * float64(d3)
            if det != 0.0:
                ox = (c2 * float64(d0) - float64(d3) * float64(d1)) / det
                oy = (a2 * float64(d1) - float64(d3) * float64(d0)) / det
                if math.isfinite(ox) and math.isfinite(oy):
                    fx = float32(fx - float32(ox))
                    fy = float32(fy - float32(oy))
        elif refine and algo == 1:
            det32 = float32(float32(d2 * d4) - float32(d3 * d3))
            det = float64(d2) * float64(d4) - float64(d3) * float64(d3)
            if det32 != 0 and det != 0.0:
                ox = (float64(d4) * float64(d0) - float64(d3) * float64(d1)) / det
                oy = (float64(d2) * float64(d1) - float64(d3) * float64(d0)) / det
                if math.isfinite(ox) and math.isfinite(oy):
                    fx = float32(fx - float32(ox))
                    fy = float32(fy - float32(oy))
        elif valid and algo == 2:
            sx = 1 if d0 > 0 else (-1 if d0 < 0 else 0)
            sy = 1 if d1 > 0 else (-1 if d1 < 0 else 0)
            fx = float32(fx + float32(sx) * float32(0.25))
            fy = float32(fy + float32(sy) * float32(0.25))
        if bad != 0:
            kp[n, k, 0] = nan
            kp[n, k, 1] = nan
            sc[n, k] = nan
            return
        if has_boxes:
            cx, cy = float64(centers[n, 0]), float64(centers[n, 1])
            sx, sy = float64(scales[n, 0]), float64(scales[n, 1])
            ux = sx / (w - 1.0) if algo == 0 else sx / float64(w)
            uy = sy / (h - 1.0) if algo == 0 else sy / float64(h)
            fx = float32(float64(fx) * ux + cx - sx * 0.5)
            fy = float32(float64(fy) * uy + cy - sy * 0.5)
        kp[n, k, 0] = fx
        kp[n, k, 1] = fy
        sc[n, k] = score

    return decode


