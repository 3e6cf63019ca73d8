/* int8 activations outside the GEMMs (ac_int8.h): the input batch quantized from float NCHW
 * to u8 NHWC, and the paper variant's LRN from a conv's float NHWC output to u8 NHWC.
 *
 * Shapes: N images, C channels, HW positions an image. Work is cut into (image, tile of
 * positions) tasks by image and channel count only, so the bits never depend on the thread
 * count. LRN has no math of its own here: each tile is transposed to channel planes, run
 * through lrn.c's forward tile (ac_lrn_forward_tile, the context's path) and quantized on the
 * way back. Its tiles start at multiples of 16 of an image's positions as ac_lrn_forward's
 * do, so every position gets the same arithmetic (the AVX2 rows' scalar tail included) and
 * the u8 equal the old NumPy path's (NCHW copy, fp32 layer, transpose, quantize).
 * One body per pass is compiled for baseline x86-64, AVX2 and AVX-512 (the context's isa
 * picks): the quantization vectorises there (nearbyintf becomes vroundps / vrndscaleps).
 */
#include <math.h>
#include <stdint.h>

#include "ac_int8.h"
#include "ac_lrn.h"
#include "ac_simd.h"

#define QUANT_TILE 1024 /* positions per input task (its u8 row is on the stack) */
#define LRN_ACT_FLOATS 16384 /* C x tile floats per LRN scratch buffer: three fit in L2 */

/* q[j] = clip(rint(v[j] * mul) + zero, 0, 255): NumPy's operations in its order (the zero
 * point added after rounding: rint(v mul + zero) can differ, the sum losing low bits). The
 * comparisons send NaN to 0 (as NumPy's cast does on x86). */
AC_INLINE void quant_row(uint8_t *restrict q, const float *restrict v, ptrdiff_t len, float mul,
                         float zero)
{
    for (ptrdiff_t j = 0; j < len; j++) {
        float y = nearbyintf(v[j] * mul) + zero;
        y = y > 0.0f ? y : 0.0f;
        y = y < 255.0f ? y : 255.0f;
        q[j] = (uint8_t)(int)y;
    }
}

/* Positions [0, len) of one image: x at (n, 0, j0) NCHW, out at pixel (n, j0) NHWC. */
AC_INLINE void quantize_tile(uint8_t *restrict out, const float *restrict x, int C,
                             ptrdiff_t HW, int len, float mul, float zero)
{
    uint8_t q[QUANT_TILE];
    for (int c = 0; c < C; c++) {
        quant_row(q, x + c * HW, len, mul, zero);
        for (int j = 0; j < len; j++) out[(ptrdiff_t)j * C + c] = q[j];
    }
}

/* len pixels of C floats (x, NHWC) -> LRN -> u8 pixels (out); xt, ot, st: C planes ld apart,
 * ld >= len. */
AC_INLINE void lrn_quant_tile(uint8_t *restrict out, const float *restrict x, int C, int len,
                              int ld, int size, float alpha, float beta, float k, float mul,
                              float *restrict xt, float *restrict ot, float *restrict st,
                              int isa)
{
    for (int j = 0; j < len; j++)
        for (int c = 0; c < C; c++) xt[(ptrdiff_t)c * ld + j] = x[(ptrdiff_t)j * C + c];
    ac_lrn_forward_tile(ot, st, xt, C, ld, len, size, alpha, beta, k, isa);
    uint8_t *q = (uint8_t *)xt; /* the input tile is spent */
    for (int c = 0; c < C; c++)
        quant_row(q + (ptrdiff_t)c * ld, ot + (ptrdiff_t)c * ld, len, mul, 0.0f);
    for (int j = 0; j < len; j++)
        for (int c = 0; c < C; c++) out[(ptrdiff_t)j * C + c] = q[(ptrdiff_t)c * ld + j];
}

#define QUANT_ARGS                                                                             \
    uint8_t *out, const float *x, int C, ptrdiff_t HW, int len, float mul, float zero
#define LRNQ_ARGS                                                                              \
    uint8_t *out, const float *x, int C, int len, int ld, int size, float alpha, float beta,   \
        float k, float mul, float *xt, float *ot, float *st
typedef void (*quant_fn)(QUANT_ARGS);
typedef void (*lrnq_fn)(LRNQ_ARGS);

static void quant_generic(QUANT_ARGS) { quantize_tile(out, x, C, HW, len, mul, zero); }
static void lrnq_generic(LRNQ_ARGS)
{
    lrn_quant_tile(out, x, C, len, ld, size, alpha, beta, k, mul, xt, ot, st, AC_ISA_GENERIC);
}
#define quant_neon quant_generic
#define lrnq_neon lrnq_generic
#ifdef AC_X86_64
AC_TARGET_AVX2 static void quant_avx2(QUANT_ARGS)
{
    quantize_tile(out, x, C, HW, len, mul, zero);
}
AC_TARGET_AVX512_WIDE static void quant_avx512(QUANT_ARGS)
{
    quantize_tile(out, x, C, HW, len, mul, zero);
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

void ac_i8_quantize(uint8_t *out, const float *x, int N, int C, ptrdiff_t HW, float mul,
                    uint8_t zero, const ac_ctx *ctx, int nthreads)
{
    const quant_fn f = AC_ISA_PICK(ctx->isa, quant);
    const ptrdiff_t ntile = (HW + QUANT_TILE - 1) / QUANT_TILE, ntask = (ptrdiff_t)N * ntile;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (ptrdiff_t t = 0; t < ntask; t++) {
        const ptrdiff_t n = t / ntile, j0 = (t % ntile) * QUANT_TILE;
        f(out + (n * HW + j0) * C, x + n * C * HW + j0, C, HW, (int)AC_MIN(QUANT_TILE, HW - j0),
          mul, (float)zero);
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
 * transposes' column walks spread over the cache sets (the power-of-two stride 64 of
 * C = 256 took 0.51 CPU ms per 27x27 image instead of 0.35, AVX-512, measured). */
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
