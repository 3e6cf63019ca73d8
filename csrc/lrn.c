/* LRN across channels, forward and backward (formulas in ac_lrn.h).
 *
 * Shapes: N batch, C channels, HW = H*W positions of one channel plane, NCHW float32.
 * Work is cut into (n, tile of positions) tasks; the tiling depends on N and HW only, never
 * on the thread count. A whole plane per task (up to AC_LRN_TILE_MAX positions) streams
 * memory in order, which measured ~30% faster than 512-position tiles at batch 128; small
 * batches split planes further (tiles of >= LRN_TILE_MIN) so that both cores get work.
 * In a task a window sum slides along c (add the entering channel, drop the leaving one),
 * vectorised along the positions. Window sums are kept in double: squares of floats are
 * exact in double, so adding and later removing them does not drift.
 * One body is compiled for baseline x86-64, AVX2+FMA and AVX-512 (the context's isa picks);
 * the SIMD builds swap in intrinsic rows for the paper's beta = 0.75, where the portable
 * loop is bound by sqrt and divide. Other betas use a vectorisable exp(-beta ln s).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ac_lrn.h"
#include "ac_simd.h"

#define LRN_TILE_MIN 256
#define LRN_MIN_TASKS 16

/* ln x for normal x > 0 (Cephes logf: mantissa in [sqrt(1/2), sqrt 2), degree-9 poly). */
AC_INLINE float lrn_logf(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    const uint32_t mant = b & 0x007fffffu;
    const int big = mant > 0x003504f3u; /* mantissa > sqrt 2: halve it */
    const int e = (int)(b >> 23) - 127 + big;
    b = mant | (big ? 0x3f000000u : 0x3f800000u);
    float m;
    memcpy(&m, &b, 4);
    float fe = (float)e, f = m - 1.0f, z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = p * f * z - 2.12194440e-4f * fe - 0.5f * z;
    return f + y + 0.693359375f * fe;
}

/* e^y (Cephes expf: y = n ln2 + r, |r| <= ln2/2, degree-7 poly, 2^n from bits).
 * For |y| < 2^22; the exponent is clamped in the integers (a float clamp would keep gcc
 * from vectorising under -ftrapping-math), so y < -87 gives a tiny value, y > 88 a huge one. */
AC_INLINE float lrn_expf(float y)
{
    float n = (y * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = y - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float er = p * r * r + r + 1.0f;
    int ni = (int)n;
    ni = ni < -126 ? -126 : ni;
    ni = ni > 127 ? 127 : ni;
    uint32_t b = (uint32_t)(ni + 127) << 23;
    float two_n;
    memcpy(&two_n, &b, 4);
    return er * two_n;
}

#ifdef AC_X86_64
/* The paper's beta = 0.75 rows with SIMD reciprocal square roots instead of two sqrt and a
 * divide (those dominate the portable loop): r = s^-1/2, q = (s r)^-1/2 = s^-1/4,
 * s^-3/4 = r q; each rsqrt estimate gets one Newton step, y (3/2 - s y^2 / 2).
 * Forward: sc = k + alpha s, out = x sc^-3/4. Backward: dx = dout sc^-3/4 - g x a. */
AC_TARGET_AVX512_WIDE static inline __m512 rsqrt_avx512(__m512 v)
{
    const __m512 y = _mm512_rsqrt14_ps(v);
    const __m512 hv = _mm512_mul_ps(v, _mm512_set1_ps(0.5f));
    return _mm512_mul_ps(y, _mm512_fnmadd_ps(hv, _mm512_mul_ps(y, y), _mm512_set1_ps(1.5f)));
}

AC_TARGET_AVX512_WIDE static inline __m512 pow075_avx512(__m512 v)
{
    const __m512 r = rsqrt_avx512(v);
    return _mm512_mul_ps(r, rsqrt_avx512(_mm512_mul_ps(v, r)));
}

AC_TARGET_AVX512_WIDE static inline __m512 load_pd2ps_avx512(const double *p, __mmask16 m)
{
    const __m256 lo = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd((__mmask8)m, p));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd((__mmask8)(m >> 8), p + 8));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

AC_TARGET_AVX512_WIDE static inline void fwd075_avx512(float *oc, float *sc, const float *xc,
                                                       const double *s, int len, double dk,
                                                       double da)
{
    const __m512d vk = _mm512_set1_pd(dk), va = _mm512_set1_pd(da);
    for (int j = 0; j < len; j += 16) {
        const __mmask16 m = len - j >= 16 ? 0xffff : (__mmask16)((1u << (len - j)) - 1);
        const __m512d s0 = _mm512_maskz_loadu_pd((__mmask8)m, s + j);
        const __m512d s1 = _mm512_maskz_loadu_pd((__mmask8)(m >> 8), s + j + 8);
        const __m256 lo = _mm512_cvtpd_ps(_mm512_fmadd_pd(va, s0, vk));
        const __m256 hi = _mm512_cvtpd_ps(_mm512_fmadd_pd(va, s1, vk));
        const __m512 sv = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
        _mm512_mask_storeu_ps(sc + j, m, sv);
        const __m512 x = _mm512_maskz_loadu_ps(m, xc + j);
        _mm512_mask_storeu_ps(oc + j, m, _mm512_mul_ps(x, pow075_avx512(sv)));
    }
}

AC_TARGET_AVX512_WIDE static inline void bwd075_avx512(float *dxc, const float *dc,
                                                       const float *xc, const float *sc,
                                                       const double *a, int len, float g)
{
    const __m512 vg = _mm512_set1_ps(g);
    for (int j = 0; j < len; j += 16) {
        const __mmask16 m = len - j >= 16 ? 0xffff : (__mmask16)((1u << (len - j)) - 1);
        const __m512 sv = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, sc + j);
        const __m512 gx = _mm512_mul_ps(vg, _mm512_maskz_loadu_ps(m, xc + j));
        const __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dc + j), pow075_avx512(sv));
        _mm512_mask_storeu_ps(dxc + j, m, _mm512_fnmadd_ps(gx, load_pd2ps_avx512(a + j, m), d));
    }
}

AC_TARGET_AVX2 static inline __m256 rsqrt_avx2(__m256 v)
{
    const __m256 y = _mm256_rsqrt_ps(v);
    const __m256 hv = _mm256_mul_ps(v, _mm256_set1_ps(0.5f));
    return _mm256_mul_ps(y, _mm256_fnmadd_ps(hv, _mm256_mul_ps(y, y), _mm256_set1_ps(1.5f)));
}

AC_TARGET_AVX2 static inline __m256 pow075_avx2(__m256 v)
{
    const __m256 r = rsqrt_avx2(v);
    return _mm256_mul_ps(r, rsqrt_avx2(_mm256_mul_ps(v, r)));
}

AC_TARGET_AVX2 static inline __m256 load_pd2ps_avx2(const double *p)
{
    const __m128 lo = _mm256_cvtpd_ps(_mm256_loadu_pd(p));
    const __m128 hi = _mm256_cvtpd_ps(_mm256_loadu_pd(p + 4));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

/* Tails (fewer than 8 positions) go through the portable formula. */
AC_TARGET_AVX2 static inline void fwd075_avx2(float *oc, float *sc, const float *xc,
                                              const double *s, int len, double dk, double da)
{
    const __m256d vk = _mm256_set1_pd(dk), va = _mm256_set1_pd(da);
    int j = 0;
    for (; j + 8 <= len; j += 8) {
        const __m128 lo = _mm256_cvtpd_ps(_mm256_fmadd_pd(va, _mm256_loadu_pd(s + j), vk));
        const __m128 hi = _mm256_cvtpd_ps(_mm256_fmadd_pd(va, _mm256_loadu_pd(s + j + 4), vk));
        const __m256 sv = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
        _mm256_storeu_ps(sc + j, sv);
        _mm256_storeu_ps(oc + j, _mm256_mul_ps(_mm256_loadu_ps(xc + j), pow075_avx2(sv)));
    }
    for (; j < len; j++) {
        float sv = (float)(dk + da * s[j]);
        float r = sqrtf(sv);
        sc[j] = sv;
        oc[j] = xc[j] / (r * sqrtf(r));
    }
}

AC_TARGET_AVX2 static inline void bwd075_avx2(float *dxc, const float *dc, const float *xc,
                                              const float *sc, const double *a, int len,
                                              float g)
{
    const __m256 vg = _mm256_set1_ps(g);
    int j = 0;
    for (; j + 8 <= len; j += 8) {
        const __m256 gx = _mm256_mul_ps(vg, _mm256_loadu_ps(xc + j));
        const __m256 p = pow075_avx2(_mm256_loadu_ps(sc + j));
        const __m256 d = _mm256_mul_ps(_mm256_loadu_ps(dc + j), p);
        _mm256_storeu_ps(dxc + j, _mm256_fnmadd_ps(gx, load_pd2ps_avx2(a + j), d));
    }
    for (; j < len; j++) {
        float r = sqrtf(sc[j]);
        dxc[j] = dc[j] / (r * sqrtf(r)) - g * xc[j] * (float)a[j];
    }
}
#endif

/* One tile of positions [0, len) of one image; pointers start at (n, 0, j0). */
AC_INLINE void lrn_fwd_tile(float *restrict out, float *restrict scale, const float *restrict x,
                            int C, ptrdiff_t HW, int len, int size, float alpha, float beta,
                            float k, const int isa)
{
    double s[AC_LRN_TILE_MAX];
    const int lo = size / 2, hi = (size - 1) / 2;
    const double dk = k, da = alpha;
    for (int j = 0; j < len; j++) s[j] = 0.0;
    for (int c = 0; c < AC_MIN(hi, C); c++) {
        const float *xa = x + c * HW;
        for (int j = 0; j < len; j++) s[j] += (double)xa[j] * xa[j];
    }
    for (int c = 0; c < C; c++) {
        if (c + hi < C) {
            const float *xa = x + (c + hi) * HW;
            for (int j = 0; j < len; j++) s[j] += (double)xa[j] * xa[j];
        }
        const float *xc = x + c * HW;
        float *oc = out + c * HW, *sc = scale + c * HW;
#ifdef AC_X86_64
        if (beta == 0.75f && isa == AC_ISA_AVX512) {
            fwd075_avx512(oc, sc, xc, s, len, dk, da);
        } else if (beta == 0.75f && isa == AC_ISA_AVX2) {
            fwd075_avx2(oc, sc, xc, s, len, dk, da);
        } else
#endif
            if (beta == 0.75f) {
            for (int j = 0; j < len; j++) {
                float sv = (float)(dk + da * s[j]);
                float r = sqrtf(sv);
                sc[j] = sv;
                oc[j] = xc[j] / (r * sqrtf(r));
            }
        } else {
            for (int j = 0; j < len; j++) {
                float sv = (float)(dk + da * s[j]);
                sc[j] = sv;
                oc[j] = xc[j] * lrn_expf(-beta * lrn_logf(sv));
            }
        }
        if (c - lo >= 0) {
            const float *xr = x + (c - lo) * HW;
            for (int j = 0; j < len; j++) s[j] -= (double)xr[j] * xr[j];
        }
    }
}

/* t[i] = dout[i] out[i] / scale[i], summed over the mirrored window i in [c - hi, c + lo]. */
AC_INLINE void lrn_bwd_tile(float *restrict dx, const float *restrict dout,
                            const float *restrict x, const float *restrict out,
                            const float *restrict scale, int C, ptrdiff_t HW, int len, int size,
                            float alpha, float beta, const int isa)
{
    double a[AC_LRN_TILE_MAX];
    const int lo = size / 2, hi = (size - 1) / 2;
    const float g = 2.0f * alpha * beta;
    for (int j = 0; j < len; j++) a[j] = 0.0;
    for (int i = 0; i < AC_MIN(lo, C); i++) {
        const float *d = dout + i * HW, *o = out + i * HW, *s = scale + i * HW;
        for (int j = 0; j < len; j++) a[j] += (double)(d[j] * o[j] / s[j]);
    }
    for (int c = 0; c < C; c++) {
        if (c + lo < C) {
            const ptrdiff_t o_ = (c + lo) * HW;
            const float *d = dout + o_, *o = out + o_, *s = scale + o_;
            for (int j = 0; j < len; j++) a[j] += (double)(d[j] * o[j] / s[j]);
        }
        const float *dc = dout + c * HW, *xc = x + c * HW, *sc = scale + c * HW;
        float *dxc = dx + c * HW;
#ifdef AC_X86_64
        if (beta == 0.75f && isa == AC_ISA_AVX512) {
            bwd075_avx512(dxc, dc, xc, sc, a, len, g);
        } else if (beta == 0.75f && isa == AC_ISA_AVX2) {
            bwd075_avx2(dxc, dc, xc, sc, a, len, g);
        } else
#endif
            if (beta == 0.75f) {
            for (int j = 0; j < len; j++) {
                float r = sqrtf(sc[j]);
                dxc[j] = dc[j] / (r * sqrtf(r)) - g * xc[j] * (float)a[j];
            }
        } else {
            for (int j = 0; j < len; j++)
                dxc[j] = dc[j] * lrn_expf(-beta * lrn_logf(sc[j])) - g * xc[j] * (float)a[j];
        }
        if (c - hi >= 0) {
            const ptrdiff_t o_ = (c - hi) * HW;
            const float *d = dout + o_, *o = out + o_, *s = scale + o_;
            for (int j = 0; j < len; j++) a[j] -= (double)(d[j] * o[j] / s[j]);
        }
    }
}

#define LRN_FWD_ARGS                                                                           \
    float *out, float *scale, const float *x, int C, ptrdiff_t HW, int len, int size,          \
        float alpha, float beta, float k
#define LRN_BWD_ARGS                                                                           \
    float *dx, const float *dout, const float *x, const float *out, const float *scale, int C, \
        ptrdiff_t HW, int len, int size, float alpha, float beta
typedef void (*lrn_fwd_fn)(LRN_FWD_ARGS);
typedef void (*lrn_bwd_fn)(LRN_BWD_ARGS);

static void fwd_generic(LRN_FWD_ARGS)
{
    lrn_fwd_tile(out, scale, x, C, HW, len, size, alpha, beta, k, AC_ISA_GENERIC);
}
#define fwd_neon fwd_generic
#ifdef AC_X86_64
AC_TARGET_AVX2 static void fwd_avx2(LRN_FWD_ARGS)
{
    lrn_fwd_tile(out, scale, x, C, HW, len, size, alpha, beta, k, AC_ISA_AVX2);
}
AC_TARGET_AVX512_WIDE static void fwd_avx512(LRN_FWD_ARGS)
{
    lrn_fwd_tile(out, scale, x, C, HW, len, size, alpha, beta, k, AC_ISA_AVX512);
}
#endif

static void bwd_generic(LRN_BWD_ARGS)
{
    lrn_bwd_tile(dx, dout, x, out, scale, C, HW, len, size, alpha, beta, AC_ISA_GENERIC);
}
#define bwd_neon bwd_generic
#ifdef AC_X86_64
AC_TARGET_AVX2 static void bwd_avx2(LRN_BWD_ARGS)
{
    lrn_bwd_tile(dx, dout, x, out, scale, C, HW, len, size, alpha, beta, AC_ISA_AVX2);
}
AC_TARGET_AVX512_WIDE static void bwd_avx512(LRN_BWD_ARGS)
{
    lrn_bwd_tile(dx, dout, x, out, scale, C, HW, len, size, alpha, beta, AC_ISA_AVX512);
}
#endif

/* Tile length (a multiple of 16 unless it is all of HW) for N images of HW positions. */
static ptrdiff_t lrn_tile(int N, ptrdiff_t HW)
{
    ptrdiff_t ntile = (HW + AC_LRN_TILE_MAX - 1) / AC_LRN_TILE_MAX;
    if ((ptrdiff_t)N * ntile < LRN_MIN_TASKS) {
        const ptrdiff_t want = (LRN_MIN_TASKS + N - 1) / AC_MAX(N, 1);
        ntile = AC_MAX(ntile, AC_MIN(want, (HW + LRN_TILE_MIN - 1) / LRN_TILE_MIN));
    }
    const ptrdiff_t tile = ((HW + ntile - 1) / ntile + 15) / 16 * 16;
    return AC_MAX(AC_MIN(tile, HW), 1);
}

void ac_lrn_forward(float *out, float *scale, const float *x, int N, int C, ptrdiff_t HW,
                    int size, float alpha, float beta, float k, const ac_ctx *ctx, int nthreads)
{
    const lrn_fwd_fn f = AC_ISA_PICK(ctx->isa, fwd);
    const ptrdiff_t tile = lrn_tile(N, HW), ntile = (HW + tile - 1) / tile;
    const ptrdiff_t ntask = (ptrdiff_t)N * ntile;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (ptrdiff_t t = 0; t < ntask; t++) {
        const ptrdiff_t n = t / ntile, j0 = (t % ntile) * tile;
        const ptrdiff_t off = n * C * HW + j0;
        f(out + off, scale + off, x + off, C, HW, (int)AC_MIN(tile, HW - j0), size, alpha, beta,
          k);
    }
}

void ac_lrn_forward_tile(float *out, float *scale, const float *x, int C, ptrdiff_t HW, int len,
                         int size, float alpha, float beta, float k, int isa)
{
    AC_ISA_PICK(isa, fwd)(out, scale, x, C, HW, len, size, alpha, beta, k);
}

void ac_lrn_backward(float *dx, const float *dout, const float *x, const float *out,
                     const float *scale, int N, int C, ptrdiff_t HW, int size, float alpha,
                     float beta, const ac_ctx *ctx, int nthreads)
{
    const lrn_bwd_fn f = AC_ISA_PICK(ctx->isa, bwd);
    const ptrdiff_t tile = lrn_tile(N, HW), ntile = (HW + tile - 1) / tile;
    const ptrdiff_t ntask = (ptrdiff_t)N * ntile;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (ptrdiff_t t = 0; t < ntask; t++) {
        const ptrdiff_t n = t / ntile, j0 = (t % ntile) * tile;
        const ptrdiff_t off = n * C * HW + j0;
        f(dx + off, dout + off, x + off, out + off, scale + off, C, HW,
          (int)AC_MIN(tile, HW - j0), size, alpha, beta);
    }
}
