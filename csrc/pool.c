/* Max and adaptive-average pooling, forward and backward (API and shapes in ac_pool.h).
 * Letters: N images, C channels, H x W input plane, OH x OW output plane, k window,
 * P = N*C planes (the unit of parallel work). */
#include <math.h>
#include <string.h>

#include "ac_pool.h"
#include "ac_simd.h"

/* One plane. Window positions outer, output columns inner, so the select vectorises over ow;
 * the running maxima live in local rows (no aliasing with x); AlexNet's 3/2 is specialised. */
static inline void maxpool_plane(float *restrict op, int32_t *restrict ap,
                                 const float *restrict xp, int W, int OH, int OW, const int k,
                                 const int stride)
{
    float best[OW];
    int32_t idx[OW];
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            best[ow] = -INFINITY;
            idx[ow] = oh * stride * W + ow * stride;
        }
        for (int i = 0; i < k; i++) {
            const int ih = oh * stride + i;
            const float *xr = xp + (size_t)ih * W;
            for (int j = 0; j < k; j++) {
                const int base = ih * W + j;
                for (int ow = 0; ow < OW; ow++) {
                    const float v = xr[ow * stride + j];
                    const int take = (v > best[ow]) | (v != v); /* a NaN wins, as in torch */
                    best[ow] = take ? v : best[ow];
                    idx[ow] = take ? base + ow * stride : idx[ow];
                }
            }
        }
        memcpy(op + (size_t)oh * OW, best, (size_t)OW * sizeof(float));
        if (ap) memcpy(ap + (size_t)oh * OW, idx, (size_t)OW * sizeof(int32_t));
    }
}

/* AlexNet's 3/2 window with AVX-512, 16 output columns per step: the stride-2 taps of a row
 * are the even/odd lanes of two loads, de-interleaved by one permute each (the scalar loop
 * cannot vectorise them). Same visiting order, tie and NaN rules as maxpool_plane. */
/* AlexNet's 3/2: the portable plane specialised (AVX2 has no body of its own), or AVX-512. */
static void maxpool3s2_plane_generic(float *restrict op, int32_t *restrict ap,
                                     const float *restrict xp, int W, int OH, int OW)
{
    maxpool_plane(op, ap, xp, W, OH, OW, 3, 2);
}
#define maxpool3s2_plane_avx2 maxpool3s2_plane_generic
#define maxpool3s2_plane_neon maxpool3s2_plane_generic

#ifdef AC_X86_64
static inline __mmask16 first_lanes(int n)
{
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

static AC_TARGET_AVX512 void maxpool3s2_plane_avx512(float *restrict op, int32_t *restrict ap,
                                                     const float *restrict xp, int W, int OH,
                                                     int OW)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int oh = 0; oh < OH; oh++) {
        for (int ow0 = 0; ow0 < OW; ow0 += 16) {
            const int n = AC_MIN(16, OW - ow0), need = 2 * n + 1; /* row taps used */
            const __mmask16 ma = first_lanes(need), mb = first_lanes(need - 16);
            const __mmask16 mc = first_lanes(need - 2), md = first_lanes(need - 18);
            __m512 best = _mm512_set1_ps(-INFINITY);
            __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow0), even);
            for (int i = 0; i < 3; i++) {
                const int ih = 2 * oh + i;
                const float *row = xp + (size_t)ih * W + 2 * ow0;
                const __m512 a = _mm512_maskz_loadu_ps(ma, row);
                const __m512 b = _mm512_maskz_loadu_ps(mb, row + 16);
                const __m512 c = _mm512_maskz_loadu_ps(mc, row + 2);
                const __m512 d = _mm512_maskz_loadu_ps(md, row + 18);
                const __m512 taps[3] = {_mm512_permutex2var_ps(a, even, b),
                                        _mm512_permutex2var_ps(a, odd, b),
                                        _mm512_permutex2var_ps(c, even, d)};
                for (int j = 0; j < 3; j++) {
                    const __m512 v = taps[j];
                    const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
                                           _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                    best = _mm512_mask_mov_ps(best, take, v);
                    idx = _mm512_mask_mov_epi32(
                        idx, take,
                        _mm512_add_epi32(_mm512_set1_epi32(ih * W + j + 2 * ow0), even));
                }
            }
            const __mmask16 mn = first_lanes(n);
            _mm512_mask_storeu_ps(op + (size_t)oh * OW + ow0, mn, best);
            if (ap) _mm512_mask_storeu_epi32(ap + (size_t)oh * OW + ow0, mn, idx);
        }
    }
}
#endif

void ac_maxpool2d_forward(float *out, int32_t *argmax, const float *x, int N, int C, int H,
                          int W, int k, int stride, const ac_ctx *ctx, int nthreads)
{
    const int OH = (H - k) / stride + 1, OW = (W - k) / stride + 1;
    const long P = (long)N * C;
    __typeof__(maxpool3s2_plane_generic) *plane3s2 = AC_ISA_PICK(ctx->isa, maxpool3s2_plane);
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *op = out + (size_t)p * OH * OW;
        int32_t *ap = argmax ? argmax + (size_t)p * OH * OW : NULL;
        if (k == 3 && stride == 2)
            plane3s2(op, ap, xp, W, OH, OW);
        else
            maxpool_plane(op, ap, xp, W, OH, OW, k, stride);
    }
}

long ac_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax, int N, int C,
                           int H, int W, int OH, int OW, int nthreads)
{
    const long P = (long)N * C, HW = (long)H * W, S = (long)OH * OW;
    long bad = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : bad)
    for (long p = 0; p < P; p++) {
        float *dp = dx + (size_t)p * HW;
        const float *gp = dout + (size_t)p * S;
        const int32_t *ap = argmax + (size_t)p * S;
        memset(dp, 0, (size_t)HW * sizeof(float));
        for (long s = 0; s < S; s++) {
            const int32_t a = ap[s];
            if (a < 0 || a >= HW) {
                bad++;
                continue;
            }
            dp[a] += gp[s];
        }
    }
    return bad;
}

/* Bin i of n over length L: [floor(i*L/n), ceil((i+1)*L/n)). */
static inline int bin_start(int i, int L, int n) { return (int)((long)i * L / n); }
static inline int bin_end(int i, int L, int n)
{
    return (int)(((long)(i + 1) * L + n - 1) / n);
}

void ac_adaptive_avgpool2d_forward(float *out, const float *x, int N, int C, int H, int W,
                                   int OH, int OW, int nthreads)
{
    const long P = (long)N * C;
    if (OH == H && OW == W) {
        memcpy(out, x, (size_t)P * H * W * sizeof(float));
        return;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *op = out + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
            for (int ow = 0; ow < OW; ow++) {
                const int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
                float s = 0.f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) s += xp[(size_t)ih * W + iw];
                op[(size_t)oh * OW + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

void ac_adaptive_avgpool2d_backward(float *dx, const float *dout, int N, int C, int H, int W,
                                    int OH, int OW, int nthreads)
{
    const long P = (long)N * C;
    if (OH == H && OW == W) {
        memcpy(dx, dout, (size_t)P * H * W * sizeof(float));
        return;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        float *dp = dx + (size_t)p * H * W;
        const float *gp = dout + (size_t)p * OH * OW;
        memset(dp, 0, (size_t)H * W * sizeof(float));
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
            for (int ow = 0; ow < OW; ow++) {
                const int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
                const float g = gp[(size_t)oh * OW + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dp[(size_t)ih * W + iw] += g;
            }
        }
    }
}
