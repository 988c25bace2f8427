"""The numba.cuda DARK kernel behind numba-full (imported only when numba-full decodes).

One kernel per (Gaussian size, block size, algorithm): the algorithm is a compile-time
constant, so window sizes fold into the code and the classic-DARK rescale path exists only in
the ``dark`` kernel. Block reductions use warp shuffles on a GPU; numba's CUDA simulator has no
shuffles, so there (and only there) the same reductions run as shared-memory trees.

``cuda`` must be a module-level global here: numba's CUDA simulator swaps exactly that name.
Array indices are cast to unsigned where they are known to be in range: numba adds a
negative-index wraparound to every signed index, which sat on the kernel's critical path.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import config, cuda, float32, float64, int32, uint32

from posefw.dark import DARK_FLOOR, DARK_RESCALE_GUARD, EPS32, UDP_CLIP, gaussian_kernel1d

from .cuda_dark_source import ALGORITHM_CODES

# One block per heatmap: a small batch is a small grid by design, not a tuning mistake.
config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

_DARK_TAPS = np.array([2, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 22], np.int32)
#: Outputs per thread in the full-map blur: one register window of SEG + k - 1 loads feeds them.
SEG = 8
FULL_MASK = 0xFFFFFFFF
UDP, DARK, ARGMAX = ALGORITHM_CODES["dark-udp"], ALGORITHM_CODES["dark"], ALGORITHM_CODES["argmax"]


@functools.lru_cache(maxsize=32)
def build_kernel(
    ksize: int,
    threads: int,
    algo: int,
    max_registers: int | None = None,  # noqa: C901 - one kernel, kept in one place
    flat: bool = False,
):
    """The decode kernel. ``flat``: heatmaps arrive as a C-contiguous (N*K, H*W) view, so a
    sample is one linear index (no per-load row/column bookkeeping, as in cupy-full's flat path);
    otherwise as the (N, K, H, W) array with any strides."""
    g = gaussian_kernel1d(ksize).copy()
    rad = (ksize - 1) // 2
    reach = 1 if algo == UDP else 2
    nn = 2 * reach + 1
    rows = 2 * (rad + reach) + 1
    hor_size = rows * nn
    win = SEG + ksize - 1
    nwarps = max(threads // 32, 1)
    shuffles = not config.ENABLE_CUDASIM
    red_size = nwarps if shuffles else threads
    taps = _DARK_TAPS
    clip_lo, clip_hi = np.float32(UDP_CLIP[0]), np.float32(UDP_CLIP[1])
    floor, guard, eps = np.float32(DARK_FLOOR), np.float32(DARK_RESCALE_GUARD), EPS32
    nan = np.float32(np.nan)

    @cuda.jit(device=True)
    def at(m, r, c, w):
        if flat:
            return float32(m[uint32(r * w + c)])
        return float32(m[uint32(r), uint32(c)])

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
        v = at(m, r, c, w) if i < hw else float32(-math.inf)
        r, c = r + dr, c + dc
        if c >= w:
            r, c = r + 1, c - w
        return v, r, c

    @cuda.jit(device=True)
    def flat_at(m, i, hw):
        return float32(m[uint32(i)]) if i < hw else float32(-math.inf)

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
    def fold8(i0, v0, v1, v2, v3, v4, v5, v6, v7, hw, bv, bi, bad):
        """Samples i0, i0 + threads, ..., i0 + 7 * threads folded into the running first maximum
        and non-finite flag, in index order."""
        bad |= (
            nonfinite(v0, i0, hw)
            | nonfinite(v1, i0 + threads, hw)
            | nonfinite(v2, i0 + 2 * threads, hw)
            | nonfinite(v3, i0 + 3 * threads, hw)
            | nonfinite(v4, i0 + 4 * threads, hw)
            | nonfinite(v5, i0 + 5 * threads, hw)
            | nonfinite(v6, i0 + 6 * threads, hw)
            | nonfinite(v7, i0 + 7 * threads, hw)
        )
        bv, bi = better(v0, i0, bv, bi)
        bv, bi = better(v1, i0 + threads, bv, bi)
        bv, bi = better(v2, i0 + 2 * threads, bv, bi)
        bv, bi = better(v3, i0 + 3 * threads, bv, bi)
        bv, bi = better(v4, i0 + 4 * threads, bv, bi)
        bv, bi = better(v5, i0 + 5 * threads, bv, bi)
        bv, bi = better(v6, i0 + 6 * threads, bv, bi)
        bv, bi = better(v7, i0 + 7 * threads, bv, bi)
        return bv, bi, bad

    @cuda.jit(device=True)
    def block_argmax(bv, bi, bad, tid, s_val, s_idx, s_bad):
        """First maximum, its index and the non-finite flag over the block (the same in every thread)."""
        if shuffles:
            off = 16
            while off > 0:
                ov = cuda.shfl_down_sync(FULL_MASK, bv, off)
                oi = cuda.shfl_down_sync(FULL_MASK, bi, off)
                bad |= cuda.shfl_down_sync(FULL_MASK, bad, off)
                if ov > bv or (ov == bv and oi < bi):
                    bv, bi = ov, oi
                off //= 2
            if tid % 32 == 0:
                s_val[tid // 32], s_idx[tid // 32], s_bad[tid // 32] = bv, bi, bad
            cuda.syncthreads()
            bv, bi, bad = s_val[0], s_idx[0], s_bad[0]
            for j in range(1, nwarps):
                ov, oi = s_val[j], s_idx[j]
                if ov > bv or (ov == bv and oi < bi):
                    bv, bi = ov, oi
                bad |= s_bad[j]
            return bv, bi, bad
        s_val[tid], s_idx[tid], s_bad[tid] = bv, bi, bad
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
        return s_val[0], s_idx[0], s_bad[0]

    @cuda.jit(device=True)
    def block_max(v, tid, s_red):
        if shuffles:
            off = 16
            while off > 0:
                v = max(v, cuda.shfl_down_sync(FULL_MASK, v, off))
                off //= 2
            if tid % 32 == 0:
                s_red[tid // 32] = v
            cuda.syncthreads()
            v = s_red[0]
            for j in range(1, nwarps):
                v = max(v, s_red[j])
            return v
        s_red[tid] = v
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                s_red[tid] = max(s_red[tid], s_red[tid + step])
            cuda.syncthreads()
            step //= 2
        return s_red[0]

    @cuda.jit(device=True)
    def hpass(m, r, c, h, w):
        """One horizontal blur sample: reflect-101 border (UDP) or zero border (classic DARK)."""
        acc = float32(0.0)
        for j in range(ksize):
            cc = c + j - rad
            if algo == UDP:
                v = at(m, refl(r, h), refl(cc, w), w)
            else:
                v = at(m, r, cc, w) if (r >= 0 and r < h and cc >= 0 and cc < w) else float32(0.0)
            acc = float32(acc + float32(g[j] * v))
        return acc

    @cuda.jit(device=True)
    def seg_sums(v, sums):
        """SEG neighbouring blur outputs from one window of SEG + k - 1 inputs."""
        for o in range(SEG):
            acc = float32(0.0)
            for j in range(ksize):
                acc = cuda.fma(g[j], v[o + j], acc)
            sums[o] = acc

    @cuda.jit(device=True)
    def full_blur_max(m, h, w, tid, smem_mode, s_red, s_dyn):
        """Maximum of the zero-padded blurred map, for the exact classic-DARK rescale.

        Only this maximum leaves here (as the rescale factor), so fused multiply-adds are fine.

        smem_mode 1: the horizontal pass in s_dyn (h*w floats); 0: everything from global memory.
        """
        mx = float32(-math.inf)
        if smem_mode > 0:
            hb = s_dyn
            v = cuda.local.array(win, float32)
            sums = cuda.local.array(SEG, float32)
            # Horizontal pass into shared memory: SEG outputs per (row, segment) item.
            nseg = (w + SEG - 1) // SEG
            dr = threads // nseg
            ds = threads - dr * nseg
            r = tid // nseg
            s = tid - r * nseg
            while r < h:
                c0 = s * SEG
                for j in range(win):
                    cc = c0 - rad + j
                    v[j] = at(m, r, cc, w) if (cc >= 0 and cc < w) else float32(0.0)
                seg_sums(v, sums)
                for o in range(SEG):
                    if c0 + o < w:
                        hb[uint32(r * w + c0 + o)] = sums[o]
                r, s = r + dr, s + ds
                if s >= nseg:
                    r, s = r + 1, s - nseg
            cuda.syncthreads()
            # Vertical pass from shared memory: SEG outputs per (row segment, column) item.
            nrs = (h + SEG - 1) // SEG
            dq = threads // w
            dc = threads - dq * w
            q = tid // w
            c = tid - q * w
            while q < nrs:
                r0 = q * SEG
                for j in range(win):
                    rr = r0 - rad + j
                    v[j] = hb[uint32(rr * w + c)] if (rr >= 0 and rr < h) else float32(0.0)
                seg_sums(v, sums)
                for o in range(SEG):
                    if r0 + o < h:
                        mx = max(mx, sums[o])
                q, c = q + dq, c + dc
                if c >= w:
                    q, c = q + 1, c - w
        else:  # maps too large for shared memory: blur straight from global memory
            for p in range(tid, h * w, threads):
                r = p // w
                c = p % w
                acc = float32(0.0)
                for i in range(ksize):
                    acc = float32(acc + float32(g[i] * hpass(m, r + i - rad, c, h, w)))
                mx = max(mx, acc)
        return block_max(mx, tid, s_red)

    jit = cuda.jit(max_registers=max_registers) if max_registers else cuda.jit

    @jit
    def decode(hm, nk, h, w, kp, sc, centers, scales, has_boxes, smem_mode):
        b = cuda.blockIdx.x
        n = b // nk
        k = b - n * nk
        m = hm[uint32(b)] if flat else hm[uint32(n), uint32(k)]
        tid = cuda.threadIdx.x
        s_val = cuda.shared.array(red_size, float32)
        s_idx = cuda.shared.array(red_size, int32)
        s_bad = cuda.shared.array(red_size, int32)
        s_hor = cuda.shared.array(hor_size, float32)
        s_blur = cuda.shared.array(25, float32)
        s_log = cuda.shared.array(25, float32)
        s_dyn = cuda.shared.array(0, float32)
        hw = h * w
        bv = float32(-math.inf)
        bi = int32(2147483647)
        bad = int32(0)
        # Eight independent loads in flight per step (a dependent load per iteration would
        # serialize HBM latency), compared in index order to keep the first-maximum rule.
        # Strided maps: row and column advance incrementally (numba's integer // and % are
        # 64-bit and slow); contiguous ones need only the linear index.
        dr = threads // w
        dc = threads - dr * w
        r = tid // w
        c = tid - r * w
        if flat:
            for i0 in range(tid, hw, 8 * threads):
                v0, v1, v2, v3 = (
                    flat_at(m, i0, hw),
                    flat_at(m, i0 + threads, hw),
                    flat_at(m, i0 + 2 * threads, hw),
                    flat_at(m, i0 + 3 * threads, hw),
                )
                v4, v5, v6, v7 = (
                    flat_at(m, i0 + 4 * threads, hw),
                    flat_at(m, i0 + 5 * threads, hw),
                    flat_at(m, i0 + 6 * threads, hw),
                    flat_at(m, i0 + 7 * threads, hw),
                )
                bv, bi, bad = fold8(i0, v0, v1, v2, v3, v4, v5, v6, v7, hw, bv, bi, bad)
        for i0 in range(tid, 0 if flat else hw, 8 * threads):
            v0, r, c = load_next(m, r, c, i0, hw, dr, dc, w)
            v1, r, c = load_next(m, r, c, i0 + threads, hw, dr, dc, w)
            v2, r, c = load_next(m, r, c, i0 + 2 * threads, hw, dr, dc, w)
            v3, r, c = load_next(m, r, c, i0 + 3 * threads, hw, dr, dc, w)
            v4, r, c = load_next(m, r, c, i0 + 4 * threads, hw, dr, dc, w)
            v5, r, c = load_next(m, r, c, i0 + 5 * threads, hw, dr, dc, w)
            v6, r, c = load_next(m, r, c, i0 + 6 * threads, hw, dr, dc, w)
            v7, r, c = load_next(m, r, c, i0 + 7 * threads, hw, dr, dc, w)
            bv, bi, bad = fold8(i0, v0, v1, v2, v3, v4, v5, v6, v7, hw, bv, bi, bad)
        score, idx, bad = block_argmax(bv, bi, bad, tid, s_val, s_idx, s_bad)
        if idx == 2147483647:  # every value NaN
            idx = 0
            bad = 1
        y = idx // w
        x = idx - y * w
        valid = bad == 0 and score > 0
        interior = x > 1 and x < w - 2 and y > 1 and y < h - 2
        refine = valid and (algo == UDP or (algo == DARK and interior))
        if refine:
            for t in range(tid, hor_size, threads):
                rr = t // nn
                cc = t - rr * nn
                r = y - rad - reach + rr
                c = x - reach + cc
                if algo == UDP:
                    c = min(max(c, 0), w - 1)  # edge padding of the blurred map
                s_hor[t] = hpass(m, r, c, h, w)
        cuda.syncthreads()
        if refine:
            for t in range(tid, nn * nn, threads):
                a = t // nn
                bb = t - a * nn
                r0 = a
                if algo == UDP:  # neighbour row clamped to the map, then its window rows
                    r0 = min(max(y - 1 + a, 0), h - 1) - (y - 1)
                acc = float32(0.0)
                for i in range(ksize):
                    acc = float32(acc + float32(g[i] * s_hor[(r0 + i) * nn + bb]))
                s_blur[t] = acc
        cuda.syncthreads()
        rescale = float32(1.0)
        if algo == DARK and refine:
            # Exact rescale only where the 1e-10 floor could bite (docs/decoding.md). Every
            # thread reads the same samples, so the branch is uniform across the block.
            need = False
            for t in range(13):
                if s_blur[taps[t]] < guard:
                    need = True
            if need:
                rescale = float32(score / full_blur_max(m, h, w, tid, smem_mode, s_val, s_dyn))
        # The logs, one thread each (they were thread 0's longest serial stretch).
        if refine and tid < nn * nn:
            v = s_blur[tid]
            if algo == UDP:
                v = min(max(v, clip_lo), clip_hi)
            else:
                if rescale != float32(1.0):
                    v = float32(v * rescale)
                if not math.isnan(v):
                    v = max(v, floor)
            s_log[tid] = math.log(v)
        cuda.syncthreads()
        if tid != 0:
            return
        fx = float32(x) if valid else float32(-1.0)
        fy = float32(y) if valid else float32(-1.0)
        d0 = d1 = d2 = d3 = d4 = float32(0.0)
        if refine and algo == UDP:
            f = s_log
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
        elif refine and algo == DARK:
            f = s_log
            c = f[12]
            d0 = float32(0.5) * float32(f[13] - f[11])
            d1 = float32(0.5) * float32(f[17] - f[7])
            d2 = float32(0.25) * float32(float32(f[14] - float32(2.0) * c) + f[10])
            s = float32(f[18] - f[8])
            s = float32(s - f[16])
            s = float32(s + f[6])
            d3 = float32(0.25) * s
            d4 = float32(0.25) * float32(float32(f[22] - float32(2.0) * c) + f[2])
        elif valid and algo == ARGMAX and x > 1 and x < w - 1 and y > 1 and y < h - 1:
            d0 = float32(at(m, y, x + 1, w) - at(m, y, x - 1, w))
            d1 = float32(at(m, y + 1, x, w) - at(m, y - 1, x, w))
        if refine and algo == UDP:
            a2 = float64(d2) + eps
            c2 = float64(d4) + eps
            det = a2 * c2 - float64(d3) * float64(d3)
            if det != 0.0:
                ox = (c2 * float64(d0) - float64(d3) * float64(d1)) / det
                oy = (a2 * float64(d1) - float64(d3) * float64(d0)) / det
                if math.isfinite(ox) and math.isfinite(oy):
                    fx = float32(fx - float32(ox))
                    fy = float32(fy - float32(oy))
        elif refine and algo == DARK:
            det32 = float32(float32(d2 * d4) - float32(d3 * d3))
            det = float64(d2) * float64(d4) - float64(d3) * float64(d3)
            if det32 != 0 and det != 0.0:
                ox = (float64(d4) * float64(d0) - float64(d3) * float64(d1)) / det
                oy = (float64(d2) * float64(d1) - float64(d3) * float64(d0)) / det
                if math.isfinite(ox) and math.isfinite(oy):
                    fx = float32(fx - float32(ox))
                    fy = float32(fy - float32(oy))
        elif valid and algo == ARGMAX:
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
            ux = sx / (w - 1.0) if algo == UDP else sx / float64(w)
            uy = sy / (h - 1.0) if algo == UDP else sy / float64(h)
            fx = float32(float64(fx) * ux + cx - sx * 0.5)
            fy = float32(float64(fy) * uy + cy - sy * 0.5)
        kp[n, k, 0] = fx
        kp[n, k, 1] = fy
        sc[n, k] = score

    return decode
