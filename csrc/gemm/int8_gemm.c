/* The int8 GEMM driver (ac_int8.h); see int8_internal.h for the panel layout.
 *
 *   ic over M by MC         A rows packed (MC x K bytes, in L2), from any row source
 *    jr over N by NR        B panel (K x NR, packed once with the weights)
 *     pc over K by KC       ... a chunk of it, in L1, against each A panel's chunk:
 *      ir over MC by MR     micro-kernel into that panel's s32 tile
 *     ir over MC by MR      the store requantizes the whole sums
 * Unlike the fp32 driver, whose K blocks write partial sums into C, the chunks' sums wait in
 * s32 tiles (one per A panel of the block) until the whole depth is summed.
 * Threads split M or N in whole panels (ac_split) and run independently; every element of
 * C is the same exact sum whatever the split, so results do not depend on the thread
 * count. The plain-matrix and im2col row sources are here; max-pooling on u8 too. */
#include <string.h>

#include "ac_cpu.h"
#include "ac_parallel.h"
#include "ac_simd.h"
#include "int8_internal.h"

#define AC_I8_KC_QUADS 128 /* depth chunk: 32 x 512 bytes of B, a third of L1 */
#define AC_I8_SERIAL_MACS (1 << 19) /* as the fp32 driver: below, one thread is faster */

int ac_i8_vnni_supported(void)
{
#ifdef AC_X86_64
    __builtin_cpu_init();
    return ac_isa_supported(AC_ISA_AVX512) && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int ac_i8_isa_supported(int isa)
{
    return isa == AC_ISA_AVX512 ? ac_i8_vnni_supported() : ac_isa_supported(isa);
}

/* The path's AMX row if ctx->amx asks for it and there is one, else its plain row. */
const ac_i8_kernel *ac_i8_kernel_for(const ac_ctx *ctx)
{
    const ac_i8_kernel *plain = &ac_i8_kernels[0];
    for (int i = 0; i < ac_i8_nkernels; i++) {
        const ac_i8_kernel *k = &ac_i8_kernels[i];
        if (k->isa != ctx->isa) continue;
        if (k->amx && ctx->amx) return k;
        if (!k->amx) plain = k;
    }
    return plain;
}

size_t ac_i8_kpad(const ac_i8_kernel *kr, int K)
{
    return ac_round_up((size_t)K, 4 * (size_t)kr->kq_step);
}

size_t ac_i8_packed_b_bytes_for(const ac_i8_kernel *kr, int N, int K)
{
    return ac_round_up((size_t)N, (size_t)kr->nr) * ac_i8_kpad(kr, K);
}

void ac_i8_pack_b_for(const ac_i8_kernel *kr, int8_t *dst, const int8_t *B, int N, int K,
                      size_t ldb)
{
    const int NR = kr->nr, kq = (int)(ac_i8_kpad(kr, K) / 4);
    for (int j0 = 0; j0 < N; j0 += NR)
        for (int q = 0; q < kq; q++)
            for (int j = 0; j < NR; j++)
                for (int u = 0; u < 4; u++) {
                    const int col = j0 + j, k = 4 * q + u;
                    *dst++ = col < N && k < K ? B[(size_t)col * ldb + k] : 0;
                }
}

/* Bytes from one packed A row to the next: plain rows at a multiple of 1 KiB would share
 * few cache sets, so those move a line on. */
static size_t a_stride(const ac_i8_kernel *kr, int K)
{
    const size_t kp = ac_i8_kpad(kr, K);
    return kr->a_rows && kp % 1024 == 0 ? kp + 64 : kp;
}

/* Rows of A per packed block: the row's a_bytes of them, in whole panels. */
static int mc_for(const ac_i8_kernel *kr, int K)
{
    return AC_MAX(kr->mr, (int)((size_t)kr->a_bytes / a_stride(kr, K)) / kr->mr * kr->mr);
}

/* s32 tiles a block needs: one per A panel when the depth comes in several chunks. */
static int tiles_for(const ac_i8_kernel *kr, int K)
{
    return ac_i8_kpad(kr, K) / 4 > AC_I8_KC_QUADS ? mc_for(kr, K) / kr->mr : 1;
}

/* One thread's scratch: the A block, one row, the s32 tiles; cache-line multiples. */
static size_t thread_bytes(const ac_i8_kernel *kr, int K)
{
    return ac_round_up((size_t)mc_for(kr, K) * a_stride(kr, K), AC_ALIGN) +
           ac_round_up(ac_i8_kpad(kr, K), AC_ALIGN) +
           ac_round_up((size_t)tiles_for(kr, K) * kr->mr * kr->nr * sizeof(int32_t), AC_ALIGN);
}

size_t ac_i8_work_bytes_for(const ac_i8_kernel *kr, int K, int nthreads)
{
    return (size_t)AC_MAX(nthreads, 1) * thread_bytes(kr, K) + AC_ALIGN;
}

typedef struct {
    const ac_i8_kernel *kr;
    int M, N, K, by_m;
    ac_i8_row_fn rows;
    const void *src;
    const int8_t *Bp;
    const ac_i8_out *out;
} i8_team;

/* Rows [m0, m1) x columns [n0, n1) (n0 a multiple of NR) on the caller's thread. */
static void gemm_part(const i8_team *p, int m0, int m1, int n0, int n1, uint8_t *w)
{
    const ac_i8_kernel *kr = p->kr;
    const int MR = kr->mr, NR = kr->nr, MC = mc_for(kr, p->K), K = p->K;
    const size_t kp = ac_i8_kpad(kr, K), lda = a_stride(kr, K);
    const int kq = (int)(kp / 4), many = tiles_for(kr, K) > 1;
    uint8_t *Abuf = w, *row = Abuf + ac_round_up((size_t)MC * lda, AC_ALIGN);
    int32_t *tiles = (int32_t *)(row + ac_round_up(kp, AC_ALIGN));
    if (kr->prepare) kr->prepare();
    for (int ic = m0; ic < m1; ic += MC) {
        const int mc = AC_MIN(MC, m1 - ic);
        /* Plain-row panels past row mc stay as they are: their sums land in tile rows the
         * store skips (zeroing 31 rows of a 1-row fc block: owt batch 1 on AMX 1.77 ->
         * 1.70 ms without, medians of 3). */
        const int filled = kr->a_rows ? mc : (int)ac_round_up((size_t)mc, (size_t)MR);
        for (int r = 0; r < filled; r++) {
            uint8_t *d = kr->a_rows ? Abuf + (size_t)r * lda : row; /* rows: in place */
            if (r < mc) {
                p->rows(p->src, ic + r, K, d);
                memset(d + K, 0, kp - (size_t)K);
            } else {
                memset(d, 0, kp);
            }
            if (kr->a_rows) continue;
            d = Abuf + (size_t)(r / MR) * MR * kp + (size_t)(r % MR) * 4;
            for (size_t q = 0; q < kp / 4; q++) memcpy(d + q * 4 * MR, row + 4 * q, 4);
        }
        for (int jr = n0; jr < n1; jr += NR) {
            const int8_t *Bpp = p->Bp + (size_t)(jr / NR) * NR * kp;
            for (int pc = 0; pc < AC_MAX(kq, 1); pc += AC_I8_KC_QUADS) /* K = 0: sums 0 */
                for (int ir = 0; ir < mc; ir += MR) {
                    int32_t *tile = tiles + (many ? (size_t)ir * NR : 0);
                    const uint8_t *Ap = Abuf + (size_t)ir * lda +
                                        (size_t)pc * 4 * (kr->a_rows ? 1 : MR);
                    kr->ukernel(AC_MIN(AC_I8_KC_QUADS, kq - pc), Ap, lda,
                                Bpp + (size_t)pc * 4 * NR, tile, pc > 0);
                    if (pc + AC_I8_KC_QUADS >= kq)
                        kr->store(tile, NR, AC_MIN(MR, mc - ir), AC_MIN(NR, n1 - jr), p->out,
                                  ic + ir, jr);
                }
        }
    }
}

static void gemm_share(void *ctx, int t, int T, float *scratch)
{
    const i8_team *p = (const i8_team *)ctx;
    const ac_range r = ac_split(p->by_m ? p->M : p->N, p->by_m ? p->kr->mr : p->kr->nr, t, T);
    uint8_t *w = (uint8_t *)scratch;
    if (r.hi <= r.lo) return;
    if (p->by_m)
        gemm_part(p, (int)r.lo, (int)r.hi, 0, p->N, w);
    else
        gemm_part(p, 0, p->M, (int)r.lo, (int)r.hi, w);
}

void ac_i8_gemm_rows(const ac_i8_kernel *kr, int M, int N, int K, ac_i8_row_fn rows,
                     const void *src, const int8_t *Bp, const ac_i8_out *out, void *work,
                     int nthreads)
{
    if (M <= 0 || N <= 0) return;
    const int pm = ac_ceil_div(M, kr->mr), pn = ac_ceil_div(N, kr->nr);
    int nt = (double)M * N * K < AC_I8_SERIAL_MACS ? 1 : AC_MIN(nthreads, AC_MAX(pm, pn));
    /* Convolutions (many rows) split rows; linear layers (few rows) split the weights. */
    const int by_m = pn < nt || (pm >= nt && M >= N);
    i8_team p = {kr, M, N, K, by_m, rows, src, Bp, out};
    uint8_t *w = (uint8_t *)ac_align((float *)work);
    if (nt <= 1) {
        gemm_part(&p, 0, M, 0, N, w);
        return;
    }
    ac_team_run(nt, gemm_share, &p, (float *)w, thread_bytes(kr, K) / sizeof(float));
}

/* ---- row sources ---- */

typedef struct {
    const uint8_t *A;
    size_t lda;
} i8_matrix;

static void matrix_row(const void *src, int m, int K, uint8_t *dst)
{
    const i8_matrix *a = (const i8_matrix *)src;
    memcpy(dst, a->A + (size_t)m * a->lda, (size_t)K);
}

static void conv_row(const void *src, int m, int K, uint8_t *dst)
{
    const ac_i8_conv *g = (const ac_i8_conv *)src;
    const int P = g->OH * g->OW, n = m / P, oy = m % P / g->OW, ox = m % P % g->OW;
    const int iy0 = oy * g->stride - g->pad, ix0 = ox * g->stride - g->pad, ks = g->ks;
    const size_t cg = (size_t)g->cg;
    const uint8_t *img = g->x + (size_t)n * g->H * g->W * g->C + g->c0;
    uint8_t *d = dst;
    for (int ky = 0; ky < ks; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= g->H) {
            memset(d, g->zero, ks * cg);
            d += ks * cg;
        } else if (g->cg == g->C && ix0 >= 0 && ix0 + ks <= g->W) { /* one run of pixels */
            memcpy(d, img + ((size_t)iy * g->W + ix0) * g->C, ks * cg);
            d += ks * cg;
        } else {
            for (int kx = 0; kx < ks; kx++, d += cg) {
                const int ix = ix0 + kx;
                if (ix < 0 || ix >= g->W)
                    memset(d, g->zero, cg);
                else
                    memcpy(d, img + ((size_t)iy * g->W + ix) * g->C, cg);
            }
        }
    }
}

/* ---- the public entry points: the context's row ---- */

size_t ac_i8_packed_b_bytes(int N, int K, const ac_ctx *ctx)
{
    return ac_i8_packed_b_bytes_for(ac_i8_kernel_for(ctx), N, K);
}

void ac_i8_pack_b(int8_t *dst, const int8_t *B, int N, int K, size_t ldb, const ac_ctx *ctx)
{
    ac_i8_pack_b_for(ac_i8_kernel_for(ctx), dst, B, N, K, ldb);
}

size_t ac_i8_work_bytes(int K, const ac_ctx *ctx, int nthreads)
{
    return ac_i8_work_bytes_for(ac_i8_kernel_for(ctx), K, nthreads);
}

void ac_i8_gemm(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Bp,
                const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads)
{
    const i8_matrix a = {A, lda};
    ac_i8_gemm_rows(ac_i8_kernel_for(ctx), M, N, K, matrix_row, &a, Bp, out, work, nthreads);
}

void ac_i8_conv2d(const ac_i8_conv *geom, int nimg, int groups, int N, const int8_t *Bp,
                  const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads)
{
    const ac_i8_kernel *kr = ac_i8_kernel_for(ctx);
    const int ng = N / groups, K = geom->ks * geom->ks * geom->cg;
    const size_t esize = out->f32 ? sizeof(float) : 1;
    for (int g = 0; g < groups; g++) {
        ac_i8_conv src = *geom;
        ac_i8_out o = *out;
        src.c0 = geom->c0 + g * geom->cg;
        o.C = (char *)out->C + (size_t)g * ng * esize;
        o.comp = out->comp ? out->comp + g * ng : NULL;
        o.mul = out->mul + g * ng;
        o.add = out->add + g * ng;
        const int8_t *Bg = Bp + g * ac_i8_packed_b_bytes_for(kr, ng, K);
        if (!kr->conv || !kr->conv(kr, &src, nimg, ng, Bg, &o, nthreads))
            ac_i8_gemm_rows(kr, nimg * geom->OH * geom->OW, ng, K, conv_row, &src, Bg, &o, work,
                            nthreads);
    }
}

void ac_i8_maxpool(uint8_t *out, const uint8_t *x, int nimg, int H, int W, int C, int k,
                   int stride, int OH, int OW, int nthreads)
{
    const long rows = (long)nimg * OH;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
    for (long r = 0; r < rows; r++) {
        const uint8_t *img = x + (size_t)(r / OH) * H * W * C;
        const int y0 = (int)(r % OH) * stride, y1 = AC_MIN(y0 + k, H);
        for (int ox = 0; ox < OW; ox++) {
            const int x0 = ox * stride, x1 = AC_MIN(x0 + k, W);
            /* restrict (out and x never overlap: the binding checks): the channel loop
             * then vectorises (pmaxub), 7x faster than the byte loop at batch 1 */
            uint8_t *restrict o = out + ((size_t)r * OW + ox) * C;
            memcpy(o, img + ((size_t)y0 * W + x0) * C, (size_t)C);
            for (int y = y0; y < y1; y++)
                for (int xx = x0; xx < x1; xx++) {
                    const uint8_t *restrict p = img + ((size_t)y * W + xx) * C;
                    for (int c = 0; c < C; c++) o[c] = o[c] > p[c] ? o[c] : p[c];
                }
        }
    }
}
