"""CUDA C++ source of the fused DARK decoder (one block per heatmap), shared by the CuPy plugins.

One kernel reads each heatmap exactly once (argmax by block reduction, numpy's first-maximum
tie rule, non-finite detection), then one warp blurs only the window the Taylor step reads and
takes its logs (a lane each), and thread 0 solves and transforms. Classic DARK's rare exact
rescale blurs the whole map inside the block (see ``smem_blur_mode``). Float32 window sums use
__fmul_rn/__fadd_rn in numpy-cpu's order so the blurred samples are bit-identical to the
reference; the 2x2 solve is double like numpy.

mode 0 ("full") writes keypoints (N*K, 2) and scores (N*K); mode 1 ("partial") writes per
keypoint [score, x, y, code, dx, dy, dxx, dxy, dyy] for the host to finish.
"""

from __future__ import annotations

import functools

from posefw.dark import DARK_FLOOR, DARK_RESCALE_GUARD, EPS32, UDP_CLIP, gaussian_kernel1d

ALGORITHM_CODES = {"dark-udp": 0, "dark": 1, "argmax": 2}
#: Per-keypoint codes of the partial output.
CODE_SKIP, CODE_REFINE, CODE_KEEP, CODE_NONFINITE = 0, 1, 2, 3
PARTIAL_WIDTH = 9
THREADS = 128
#: Block size when every heatmap's block gets an SM to itself (small batches): there the time is
#: one block's latency, which more threads shorten (docs/results/benchmarks-history.md, numba_tuning).
SMALL_GRID_THREADS = 512


def block_threads(blocks: int, sm_count: int) -> int:
    """Threads per heatmap block: 128 for full grids (occupancy), 512 for grids of <= one block per SM."""
    return SMALL_GRID_THREADS if blocks <= sm_count else THREADS


#: Shared memory the classic-DARK full blur may take per block (the default dynamic limit).
SMEM_BLUR_BYTES = 48 * 1024


def smem_blur_mode(algorithm: str, h: int, w: int) -> int:
    """Where the rare classic-DARK full blur runs: 1 = its horizontal pass in shared memory
    (4*h*w bytes at launch), 0 = all from global memory (maps too large, or not classic DARK).

    Staging the whole map in shared memory as well was measured and gained nothing
    (``python experiments/dark_rescale_modes.py``, docs/results/benchmarks-history.md).
    """
    return int(algorithm == "dark" and 4 * h * w <= SMEM_BLUR_BYTES)


_SOURCE = r"""
#define KSIZE __KSIZE__
#define RAD ((KSIZE - 1) / 2)
#define THREADS __THREADS__
#define NWARPS (THREADS / 32)
#define SEG 8
__device__ const float GW[KSIZE] = {__WEIGHTS__};

__device__ __forceinline__ float load_val(const float* p, long long o) { return p[o]; }
__device__ __forceinline__ float load_val(const unsigned short* p, long long o) {
    float f; unsigned short h = p[o];
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ int refl(int p, int n) {
    if (p >= 0 && p < n) return p;
    if (n == 1) return 0;
    int period = 2 * n - 2;
    p %= period; if (p < 0) p += period;
    return p >= n ? period - p : p;
}
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi);
}

template <typename T>
struct Map {
    const T* p; long long base, sh, sw; int H, W; bool flat;
    __device__ __forceinline__ float at(int r, int c) const { return load_val(p, base + r * sh + c * sw); }
};

// Blurred value of row r at column c (horizontal pass), reflect-101 or zero border.
template <typename T>
__device__ float hpass(const Map<T>& m, int r, int c, bool zero) {
    float acc = 0.f;
    for (int j = 0; j < KSIZE; ++j) {
        int cc = c + j - RAD; float v;
        if (zero) v = (r >= 0 && r < m.H && cc >= 0 && cc < m.W) ? m.at(r, cc) : 0.f;
        else v = m.at(refl(r, m.H), refl(cc, m.W));
        acc = __fadd_rn(acc, __fmul_rn(GW[j], v));
    }
    return acc;
}

template <typename T>
__device__ void decode_one(const Map<T>& m, int algo, int mode, long long out_i,
                           float* kp, float* sc, float* parts,
                           const float* centers, const float* scales, int K, int smem_blur) {
    __shared__ float s_val[NWARPS];
    __shared__ int s_idx[NWARPS];
    __shared__ int s_bad[NWARPS];
    __shared__ float s_hor[(2 * RAD + 5) * 5];
    __shared__ int s_need;
    __shared__ float s_blur[25];
    __shared__ float s_red[NWARPS];
    __shared__ float s_log[25];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int HW = m.H * m.W;

    // 1. one pass over the map: first maximum and non-finite flag.
    float bv = __int_as_float(0xff800000); int bi = 0x7fffffff; int bad = 0;
    for (int i0 = tid; i0 < HW; i0 += THREADS * 8) {
        float v[8];
        #pragma unroll
        for (int u = 0; u < 8; ++u) {
            int i = i0 + u * THREADS;
            if (i < HW) v[u] = m.flat ? load_val(m.p, m.base + i) : m.at(i / m.W, i % m.W);
        }
        #pragma unroll
        for (int u = 0; u < 8; ++u) {
            int i = i0 + u * THREADS;
            if (i < HW) {
                bad |= !isfinite(v[u]);
                if (v[u] > bv) { bv = v[u]; bi = i; }
            }
        }
    }
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(0xffffffff, bv, off);
        int oi = __shfl_down_sync(0xffffffff, bi, off);
        bad |= __shfl_down_sync(0xffffffff, bad, off);
        if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) { s_val[warp] = bv; s_idx[warp] = bi; s_bad[warp] = bad; }
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < NWARPS; ++w) {
            if (better(s_val[w], s_idx[w], bv, bi)) { bv = s_val[w]; bi = s_idx[w]; }
            bad |= s_bad[w];
        }
        if (bi == 0x7fffffff) { bi = 0; bad = 1; }  // every value NaN
        s_val[0] = bv; s_idx[0] = bi; s_bad[0] = bad;
    }
    __syncthreads();
    const float score = s_val[0]; const int idx = s_idx[0]; bad = s_bad[0];
    const int x = idx % m.W, y = idx / m.W;
    const bool valid = !bad && score > 0.f;
    const bool interior = x > 1 && x < m.W - 2 && y > 1 && y < m.H - 2;
    const bool refine = valid && (algo == 0 || (algo == 1 && interior));

    // 2. the blurred window the Taylor step reads (warp 0).
    const int reach = algo == 0 ? 1 : 2, n = 2 * reach + 1, rows = 2 * (RAD + reach) + 1;
    if (refine && warp == 0) {
        for (int t = lane; t < rows * n; t += 32) {
            int rr = t / n, cc = t % n;
            int r = y - RAD - reach + rr, c = x - reach + cc;
            if (algo == 0) c = min(max(c, 0), m.W - 1);  // edge padding of the blurred map
            s_hor[t] = hpass(m, r, c, algo == 1);
        }
        __syncwarp();
        for (int t = lane; t < n * n; t += 32) {
            int a = t / n, b = t % n;
            int r0 = a;
            if (algo == 0) {  // neighbour row clamped to the map, then its window rows
                int ny = min(max(y - 1 + a, 0), m.H - 1);
                r0 = ny - (y - 1);
            }
            float acc = 0.f;
            for (int i = 0; i < KSIZE; ++i) acc = __fadd_rn(acc, __fmul_rn(GW[i], s_hor[(r0 + i) * n + b]));
            s_blur[t] = acc;
        }
    }
    __syncthreads();

    // 3. classic DARK: exact rescale only where the 1e-10 floor could bite.
    float rescale = 1.f;
    if (algo == 1) {
        if (tid == 0) {
            int need = 0;
            if (refine) {
                const int taps[13] = {2, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 22};
                for (int t = 0; t < 13; ++t) need |= s_blur[taps[t]] < __GUARD__f;
            }
            s_need = need;
        }
        __syncthreads();
        if (s_need) {
            float mx = __int_as_float(0xff800000);
            if (smem_blur) {
                // Horizontal pass into shared memory, then the vertical pass and its maximum.
                // Each thread blurs SEG neighbours from one register window (SEG + KSIZE - 1
                // loads for SEG outputs, SEG independent sum chains). Only the maximum leaves
                // this path, as the rescale factor, so fused multiply-adds are fine here.
                extern __shared__ float hb[];  // H*W floats, given at launch
                const int nseg = (m.W + SEG - 1) / SEG;
                for (int it = tid; it < m.H * nseg; it += THREADS) {
                    const int r = it / nseg, c0 = (it - r * nseg) * SEG;
                    float v[SEG + KSIZE - 1];
                    #pragma unroll
                    for (int j = 0; j < SEG + KSIZE - 1; ++j) {
                        const int cc = c0 - RAD + j;
                        v[j] = (cc >= 0 && cc < m.W) ? m.at(r, cc) : 0.f;
                    }
                    #pragma unroll
                    for (int o = 0; o < SEG; ++o) {
                        float acc = 0.f;
                        #pragma unroll
                        for (int j = 0; j < KSIZE; ++j) acc = __fmaf_rn(GW[j], v[o + j], acc);
                        if (c0 + o < m.W) hb[r * m.W + c0 + o] = acc;
                    }
                }
                __syncthreads();
                const int nrs = (m.H + SEG - 1) / SEG;
                for (int it = tid; it < m.W * nrs; it += THREADS) {
                    const int rs = it / m.W, c = it - rs * m.W, r0 = rs * SEG;
                    float v[SEG + KSIZE - 1];
                    #pragma unroll
                    for (int j = 0; j < SEG + KSIZE - 1; ++j) {
                        const int rr = r0 - RAD + j;
                        v[j] = (rr >= 0 && rr < m.H) ? hb[rr * m.W + c] : 0.f;
                    }
                    #pragma unroll
                    for (int o = 0; o < SEG; ++o) {
                        float acc = 0.f;
                        #pragma unroll
                        for (int j = 0; j < KSIZE; ++j) acc = __fmaf_rn(GW[j], v[o + j], acc);
                        if (r0 + o < m.H) mx = fmaxf(mx, acc);
                    }
                }
            } else {
                for (int p = tid; p < HW; p += THREADS) {
                    int r = p / m.W, c = p % m.W; float acc = 0.f;
                    for (int i = 0; i < KSIZE; ++i) acc = __fadd_rn(acc, __fmul_rn(GW[i], hpass(m, r + i - RAD, c, true)));
                    mx = fmaxf(mx, acc);
                }
            }
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_down_sync(0xffffffff, mx, off));
            if (lane == 0) s_red[warp] = mx;
            __syncthreads();
            if (tid == 0) {
                for (int w = 1; w < NWARPS; ++w) mx = fmaxf(mx, s_red[w]);
                s_red[0] = __fdiv_rn(score, mx);
            }
            __syncthreads();
            rescale = s_red[0];
        }
    }
    // 4. the logs, one lane each (they were thread 0's longest serial stretch).
    if (warp != 0) return;
    if (refine && lane < n * n) {
        float v = s_blur[lane];
        if (algo == 0) v = fminf(fmaxf(v, __CLIPLO__f), __CLIPHI__f);
        else {
            if (rescale != 1.f) v = __fmul_rn(v, rescale);
            if (!isnan(v)) v = fmaxf(v, __FLOOR__f);
        }
        s_log[lane] = logf(v);
    }
    __syncwarp();
    if (lane != 0) return;

    // 5. derivatives, step, transform (thread 0).
    float fx = valid ? (float)x : -1.f, fy = valid ? (float)y : -1.f;
    float d[5] = {0.f, 0.f, 0.f, 0.f, 0.f};
    int code = bad ? __NONFINITE__ : (valid ? (refine || algo == 2 ? __REFINE__ : __KEEP__) : __SKIP__);
    if (refine && algo == 0) {
        const float* f = s_log;
        float i_ = f[4], ix1 = f[5], ix1_ = f[3], iy1 = f[7], iy1_ = f[1], ix1y1 = f[8], ix1_y1_ = f[0];
        d[0] = __fmul_rn(0.5f, __fsub_rn(ix1, ix1_));
        d[1] = __fmul_rn(0.5f, __fsub_rn(iy1, iy1_));
        d[2] = __fadd_rn(__fsub_rn(ix1, __fmul_rn(2.f, i_)), ix1_);
        d[4] = __fadd_rn(__fsub_rn(iy1, __fmul_rn(2.f, i_)), iy1_);
        float s = __fsub_rn(ix1y1, ix1); s = __fsub_rn(s, iy1); s = __fadd_rn(s, i_); s = __fadd_rn(s, i_);
        s = __fsub_rn(s, ix1_); s = __fsub_rn(s, iy1_); s = __fadd_rn(s, ix1_y1_);
        d[3] = __fmul_rn(0.5f, s);
    } else if (refine && algo == 1) {
        const float* f = s_log;
        float c = f[12];
        d[0] = __fmul_rn(0.5f, __fsub_rn(f[13], f[11]));
        d[1] = __fmul_rn(0.5f, __fsub_rn(f[17], f[7]));
        d[2] = __fmul_rn(0.25f, __fadd_rn(__fsub_rn(f[14], __fmul_rn(2.f, c)), f[10]));
        float s = __fsub_rn(f[18], f[8]); s = __fsub_rn(s, f[16]); s = __fadd_rn(s, f[6]);
        d[3] = __fmul_rn(0.25f, s);
        d[4] = __fmul_rn(0.25f, __fadd_rn(__fsub_rn(f[22], __fmul_rn(2.f, c)), f[2]));
    } else if (valid && algo == 2 && x > 1 && x < m.W - 1 && y > 1 && y < m.H - 1) {
        d[0] = __fsub_rn(m.at(y, x + 1), m.at(y, x - 1));
        d[1] = __fsub_rn(m.at(y + 1, x), m.at(y - 1, x));
    }
    if (mode == 1) {
        float* o = parts + out_i * __PW__;
        o[0] = score; o[1] = (float)x; o[2] = (float)y; o[3] = (float)code;
        for (int t = 0; t < 5; ++t) o[4 + t] = d[t];
        return;
    }
    if (refine && algo == 0) {
        double dx = d[0], dy = d[1], dxy = d[3];
        double a = (double)d[2] + __EPS__, c = (double)d[4] + __EPS__;
        double det = a * c - dxy * dxy;
        double ox = (c * dx - dxy * dy) / det, oy = (a * dy - dxy * dx) / det;
        if (det != 0.0 && isfinite(ox) && isfinite(oy)) { fx = __fsub_rn(fx, (float)ox); fy = __fsub_rn(fy, (float)oy); }
    } else if (refine && algo == 1) {
        float det32 = __fsub_rn(__fmul_rn(d[2], d[4]), __fmul_rn(d[3], d[3]));
        double dx = d[0], dy = d[1], dxx = d[2], dxy = d[3], dyy = d[4];
        double det = dxx * dyy - dxy * dxy;
        double ox = (dyy * dx - dxy * dy) / det, oy = (dxx * dy - dxy * dx) / det;
        if (det32 != 0.f && isfinite(ox) && isfinite(oy)) { fx = __fsub_rn(fx, (float)ox); fy = __fsub_rn(fy, (float)oy); }
    } else if (valid && algo == 2) {
        float ddx = d[0], ddy = d[1];
        fx = __fadd_rn(fx, (float)((ddx > 0.f) - (ddx < 0.f)) * 0.25f);
        fy = __fadd_rn(fy, (float)((ddy > 0.f) - (ddy < 0.f)) * 0.25f);
    }
    float ox = fx, oy = fy, os = score;
    if (bad) { ox = oy = os = __int_as_float(0x7fc00000); }
    else if (centers != nullptr) {
        long long n_i = out_i / K;
        double cx = centers[2 * n_i], cy = centers[2 * n_i + 1];
        double sx = scales[2 * n_i], sy = scales[2 * n_i + 1];
        double ux = algo == 0 ? sx / (m.W - 1.0) : sx / (double)m.W;
        double uy = algo == 0 ? sy / (m.H - 1.0) : sy / (double)m.H;
        ox = (float)((double)fx * ux + cx - sx * 0.5);
        oy = (float)((double)fy * uy + cy - sy * 0.5);
    }
    kp[2 * out_i] = ox; kp[2 * out_i + 1] = oy; sc[out_i] = os;
}

template <typename T>
__device__ void run(unsigned long long hm, long long sn, long long sk, long long sh, long long sw,
                    int N, int K, int H, int W, int algo, int mode,
                    unsigned long long kp, unsigned long long sc, unsigned long long parts,
                    unsigned long long centers, unsigned long long scales, int smem_blur) {
    long long b = blockIdx.x;
    int n = (int)(b / K), k = (int)(b % K);
    Map<T> m;
    m.p = (const T*)hm; m.base = (long long)n * sn + (long long)k * sk; m.sh = sh; m.sw = sw;
    m.H = H; m.W = W; m.flat = (sw == 1 && sh == W);
    decode_one<T>(m, algo, mode, b, (float*)kp, (float*)sc, (float*)parts,
                  (const float*)centers, (const float*)scales, K, smem_blur);
}

extern "C" __global__ void __launch_bounds__(THREADS) dark_f32(
        unsigned long long hm, long long sn, long long sk, long long sh, long long sw,
        int N, int K, int H, int W, int algo, int mode,
        unsigned long long kp, unsigned long long sc, unsigned long long parts,
        unsigned long long centers, unsigned long long scales, int smem_blur) {
    run<float>(hm, sn, sk, sh, sw, N, K, H, W, algo, mode, kp, sc, parts, centers, scales, smem_blur);
}
extern "C" __global__ void __launch_bounds__(THREADS) dark_f16(
        unsigned long long hm, long long sn, long long sk, long long sh, long long sw,
        int N, int K, int H, int W, int algo, int mode,
        unsigned long long kp, unsigned long long sc, unsigned long long parts,
        unsigned long long centers, unsigned long long scales, int smem_blur) {
    run<unsigned short>(hm, sn, sk, sh, sw, N, K, H, W, algo, mode, kp, sc, parts, centers, scales, smem_blur);
}
"""


@functools.lru_cache(maxsize=16)
def source(kernel: int, threads: int = THREADS) -> str:
    """The kernel source specialised for one Gaussian kernel size (weights as constants) and block size."""
    weights = ", ".join(f"{float(w)!r}f" for w in gaussian_kernel1d(kernel))
    subs = {
        "__KSIZE__": str(kernel),
        "__THREADS__": str(threads),
        "__WEIGHTS__": weights,
        "__GUARD__": repr(DARK_RESCALE_GUARD),
        "__FLOOR__": repr(DARK_FLOOR),
        "__CLIPLO__": repr(UDP_CLIP[0]),
        "__CLIPHI__": repr(UDP_CLIP[1]),
        "__EPS__": repr(EPS32),
        "__PW__": str(PARTIAL_WIDTH),
        "__NONFINITE__": str(CODE_NONFINITE),
        "__REFINE__": str(CODE_REFINE),
        "__KEEP__": str(CODE_KEEP),
        "__SKIP__": str(CODE_SKIP),
    }
    src = _SOURCE
    for key, val in subs.items():
        src = src.replace(key, val)
    return src
