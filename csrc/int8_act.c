/* int8 activations outside the GEMMs (ac_int8.h): the input batch quantized from float NCHW
 * to u8 NHWC, and the paper variant's LRN from a conv's float NHWC output to u8 NHWC.
 *
 * Shapes: N images, C channels, HW positions an image. Work is cut into tasks (the input:
 * (image, row); LRN: (image, tile of positions)) by the shapes only, so the bits never
 * depend on the thread count. LRN has no math of its own here: each tile is transposed to
 * channel planes, run through lrn.c's forward tile (ac_lrn_forward_tile, the context's path)
 * and quantized on the way back. Its tiles start at multiples of 16 of an image's positions as ac_lrn_forward's
 * do, so every position gets the same arithmetic (the AVX2 rows' scalar tail included) and
 * the u8 equal the old NumPy path's (NCHW copy, fp32 layer, transpose, quantize).
 * One body per pass is compiled for baseline x86-64, AVX2 and AVX-512 (the context's isa
 * picks): the input's quantization vectorises there (nearbyintf becomes vroundps /
 * vrndscaleps); LRN's transposes on both SIMD paths are 8 x 8 blocks of AVX2 registers.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ac_int8.h"
#include "ac_lrn.h"
#include "ac_simd.h"

#define QUANT_TILE 1024 /* positions per step of a row (their u8 are on the stack) */
#define LRN_ACT_FLOATS 16384 /* C x tile floats per LRN scratch buffer: three fit in L2 */

/* clip(rint(v * mul) + zero, 0, 255): NumPy's operations in its order (the zero point added
 * after rounding: rint(v mul + zero) can differ, the sum losing low bits). The comparisons
 * send NaN to 0 (as NumPy's cast does on x86). */
AC_INLINE uint8_t quant(float v, float mul, float zero)
{
    float y = nearbyintf(v * mul) + zero;
    y = y > 0.0f ? y : 0.0f;
    y = y < 255.0f ? y : 255.0f;
    return (uint8_t)(int)y;
}

/* One image row: W positions of C planes HW apart (x) to W pixels of Cout bytes (out);
 * channels [C, Cout) hold `zero`. Four bytes a pixel are one 32-bit word, filled a plane at
 * a time (vectorises; the byte scatter of three channels took 9% of an AMX forward). */
AC_INLINE void quantize_row(uint8_t *restrict out, const float *restrict x, int C, ptrdiff_t HW,
                            int W, int Cout, float mul, float zero)
{
    if (Cout == 4) {
        uint32_t *restrict o = (uint32_t *)out;
        for (int j = 0; j < W; j++) o[j] = (uint32_t)zero * 0x01010101u;
        for (int c = 0; c < C; c++) {
            const float *xc = x + c * HW;
            const uint32_t keep = ~(0xffu << 8 * c);
            for (int j = 0; j < W; j++)
                o[j] = (o[j] & keep) | (uint32_t)quant(xc[j], mul, zero) << 8 * c;
        }
        return;
    }
    uint8_t q[QUANT_TILE];
    for (int j0 = 0; j0 < W; j0 += QUANT_TILE) {
        const int len = AC_MIN(QUANT_TILE, W - j0);
        uint8_t *o = out + (ptrdiff_t)j0 * Cout;
        for (int c = 0; c < Cout; c++) {
            const float *xc = x + c * HW + j0;
            for (int j = 0; j < len; j++)
                q[j] = c < C ? quant(xc[j], mul, zero) : (uint8_t)zero;
            for (int j = 0; j < len; j++) o[(ptrdiff_t)j * Cout + c] = q[j];
        }
    }
}

/* The LRN tile's transposes over pixels [j0, j1) and channels [c0, c1): pixels (rows of C)
 * to planes (rows of ld), and planes back to pixels, quantized. */
AC_INLINE void planes_in(float *restrict xt, const float *restrict x, int C, int ld, int j0,
                         int j1, int c0, int c1)
{
    for (int j = j0; j < j1; j++)
        for (int c = c0; c < c1; c++) xt[(ptrdiff_t)c * ld + j] = x[(ptrdiff_t)j * C + c];
}

AC_INLINE void pixels_out(uint8_t *restrict out, const float *restrict ot, int C, int ld,
                          float mul, int j0, int j1, int c0, int c1)
{
    for (int j = j0; j < j1; j++)
        for (int c = c0; c < c1; c++)
            out[(ptrdiff_t)j * C + c] = quant(ot[(ptrdiff_t)c * ld + j], mul, 0.0f);
}

#ifdef AC_X86_64
/* The same in 8 x 8 blocks transposed in registers, edges by the loops above. With the
 * scalar loops' strided accesses LRN->u8 took 0.48 CPU ms per 55x55x96 image and 0.35 per
 * 27x27x256 (AVX-512), with the blocks 0.28 and 0.18, about the fp32 NCHW layer alone. */
AC_TARGET_AVX2 static inline void tr8x8_avx2(__m256 *r)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

AC_TARGET_AVX2 static inline void planes_in_avx2(float *restrict xt, const float *restrict x,
                                                 int C, int len, int ld)
{
    const int j8 = len / 8 * 8, c8 = C / 8 * 8;
    for (int j = 0; j < j8; j += 8)
        for (int c = 0; c < c8; c += 8) {
            __m256 r[8];
            for (int p = 0; p < 8; p++) r[p] = _mm256_loadu_ps(x + (ptrdiff_t)(j + p) * C + c);
            tr8x8_avx2(r);
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(xt + (ptrdiff_t)(c + q) * ld + j, r[q]);
        }
    planes_in(xt, x, C, ld, 0, j8, c8, C);
    planes_in(xt, x, C, ld, j8, len, 0, C);
}

/* quant's operations: vroundps to nearest even is nearbyintf's, maxps/minps return their
 * second operand on NaN as the comparisons do; the values are in 0..255 before packing. */
AC_TARGET_AVX2 static inline void pixels_out_avx2(uint8_t *restrict out,
                                                  const float *restrict ot, int C, int len,
                                                  int ld, float mul)
{
    const int j8 = len / 8 * 8, c8 = C / 8 * 8;
    const __m256 vm = _mm256_set1_ps(mul), v0 = _mm256_setzero_ps();
    const __m256 v255 = _mm256_set1_ps(255.0f);
    for (int j = 0; j < j8; j += 8)
        for (int c = 0; c < c8; c += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++)
                r[q] = _mm256_loadu_ps(ot + (ptrdiff_t)(c + q) * ld + j);
            tr8x8_avx2(r);
            for (int p = 0; p < 8; p++) {
                __m256 y = _mm256_round_ps(_mm256_mul_ps(r[p], vm),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                y = _mm256_min_ps(_mm256_max_ps(y, v0), v255);
                const __m256i i = _mm256_cvttps_epi32(y);
                const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i),
                                                   _mm256_extracti128_si256(i, 1));
                _mm_storel_epi64((__m128i *)(out + (ptrdiff_t)(j + p) * C + c),
                                 _mm_packus_epi16(w, w));
            }
        }
    pixels_out(out, ot, C, ld, mul, 0, j8, c8, C);
    pixels_out(out, ot, C, ld, mul, j8, len, 0, C);
}
#endif

/* len pixels of C floats (x, NHWC) -> LRN -> u8 pixels (out); xt, ot, st: C planes ld apart,
 * ld >= len. */
AC_INLINE void lrn_quant_tile(uint8_t *restrict out, const float *restrict x, int C, int len,
                              int ld, int size, float alpha, float beta, float k, float mul,
                              float *restrict xt, float *restrict ot, float *restrict st,
                              int isa)
{
#ifdef AC_X86_64
    if (isa != AC_ISA_GENERIC) {
        planes_in_avx2(xt, x, C, len, ld);
        ac_lrn_forward_tile(ot, st, xt, C, ld, len, size, alpha, beta, k, isa);
        pixels_out_avx2(out, ot, C, len, ld, mul);
        return;
    }
#endif
    planes_in(xt, x, C, ld, 0, len, 0, C);
    ac_lrn_forward_tile(ot, st, xt, C, ld, len, size, alpha, beta, k, isa);
    pixels_out(out, ot, C, ld, mul, 0, len, 0, C);
}

#define QUANT_ARGS                                                                             \
    uint8_t *out, const float *x, int C, ptrdiff_t HW, int W, int Cout, float mul, float zero
#define LRNQ_ARGS                                                                              \
    uint8_t *out, const float *x, int C, int len, int ld, int size, float alpha, float beta,   \
        float k, float mul, float *xt, float *ot, float *st
typedef void (*quant_fn)(QUANT_ARGS);
typedef void (*lrnq_fn)(LRNQ_ARGS);

static void quant_generic(QUANT_ARGS) { quantize_row(out, x, C, HW, W, Cout, mul, zero); }
static void lrnq_generic(LRNQ_ARGS)
{
    lrn_quant_tile(out, x, C, len, ld, size, alpha, beta, k, mul, xt, ot, st, AC_ISA_GENERIC);
}
#define quant_neon quant_generic
#define lrnq_neon lrnq_generic
#ifdef AC_X86_64
AC_TARGET_AVX2 static void quant_avx2(QUANT_ARGS)
{
    quantize_row(out, x, C, HW, W, Cout, mul, zero);
}
AC_TARGET_AVX512_WIDE static void quant_avx512(QUANT_ARGS)
{
    quantize_row(out, x, C, HW, W, Cout, mul, zero);
}
AC_TARGET_AVX2 static void lrnq_avx2(LRNQ_ARGS)
{
    lrn_quant_tile(out, x, C, len, ld, size, alpha, beta, k, mul, xt, ot, st, AC_ISA_AVX2);
}
AC_TARGET_AVX512_WIDE static void lrnq_avx512(LRNQ_ARGS)
{
    lrn_quant_tile(out, x, C, len, ld, size, alpha, beta, k, mul, xt, ot, st, AC_ISA_AVX512);
}
#endif

void ac_i8_quantize(uint8_t *out, const float *x, int N, int C, int H, int W, int pad, int Cout,
                    float mul, uint8_t zero, const ac_ctx *ctx, int nthreads)
{
    const quant_fn f = AC_ISA_PICK(ctx->isa, quant);
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    const size_t row = (size_t)Wp * Cout, side = (size_t)pad * Cout;
    const ptrdiff_t HW = (ptrdiff_t)H * W, ntask = (ptrdiff_t)N * Hp;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (ptrdiff_t t = 0; t < ntask; t++) { /* a row of the padded image */
        const ptrdiff_t n = t / Hp, y = t % Hp - pad;
        uint8_t *o = out + (size_t)t * row;
        if (y < 0 || y >= H) {
            memset(o, zero, row);
            continue;
        }
        memset(o, zero, side);
        memset(o + row - side, zero, side);
        f(o + side, x + n * C * HW + y * W, C, HW, W, Cout, mul, (float)zero);
    }
}

/* Positions an LRN tile: a multiple of 16 (see the file comment), C x tile about
 * LRN_ACT_FLOATS. */
static ptrdiff_t lrn_act_tile(int C)
{
    const ptrdiff_t t = LRN_ACT_FLOATS / AC_MAX(C, 1) / 16 * 16;
    return AC_MAX(16, AC_MIN(t, AC_LRN_TILE_MAX));
}

/* The planes' stride in a tile's scratch: an odd number of 64-byte lines, so that the
 * transposes' column walks spread over the cache sets (with the power-of-two stride 64 of
 * C = 256, a 27x27 image took 0.23 CPU ms instead of 0.18-0.21, AVX-512). */
static ptrdiff_t lrn_act_ld(ptrdiff_t tile) { return tile / 16 % 2 ? tile : tile + 16; }

/* A thread's scratch: three C x ld buffers (input planes, LRN output, its scale). */
static size_t lrn_buf_floats(int C)
{
    return ac_pad16((size_t)C * lrn_act_ld(lrn_act_tile(C)));
}

size_t ac_i8_lrn_work_floats(int C, int nthreads)
{
    return (size_t)AC_MAX(nthreads, 1) * 3 * lrn_buf_floats(C);
}

void ac_i8_lrn(uint8_t *out, const float *x, int N, int C, ptrdiff_t HW, int size, float alpha,
               float beta, float k, float mul, float *work, const ac_ctx *ctx, int nthreads)
{
    const lrnq_fn f = AC_ISA_PICK(ctx->isa, lrnq);
    const ptrdiff_t tile = lrn_act_tile(C), ld = lrn_act_ld(tile);
    const ptrdiff_t ntile = (HW + tile - 1) / tile, ntask = (ptrdiff_t)N * ntile;
    const size_t buf = lrn_buf_floats(C);
#pragma omp parallel num_threads(nthreads)
    {
        float *xt = work + (size_t)omp_get_thread_num() * 3 * buf;
#pragma omp for schedule(static)
        for (ptrdiff_t t = 0; t < ntask; t++) {
            const ptrdiff_t n = t / ntile, j0 = (t % ntile) * tile;
            const ptrdiff_t pix = (n * HW + j0) * C;
            f(out + pix, x + pix, C, (int)AC_MIN(tile, HW - j0), (int)ld, size, alpha, beta, k,
              mul, xt, xt + buf, xt + 2 * buf);
        }
    }
}
