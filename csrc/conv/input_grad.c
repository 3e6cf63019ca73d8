/* Convolution input gradient, dx = dL/dx given dY = dL/dout.
 *   stride 1 (square kernel, pad < K): the forward of dY, padded by K-1-pad, with flipped,
 *   transposed weights (forward.c does the work);
 *   otherwise: W_g^T . dY_g into column blocks, added back into phase planes, then un-phased
 *   into dx (phase.c).
 * Threads (nt): the first floor(N/nt)*nt images are shared out whole, each thread running
 * one-thread gemms with its own scratch; the rest run one at a time with threaded gemms
 * (ac_items_run). */
#include <string.h>

#include "ac_parallel.h"
#include "geom.h"

/* Input gradient of a stride-1 convolution as a forward convolution: dx = conv(dY, Wf) with
 * Wf (C, Og, KH, KW) the flipped, per-group transposed weights and padding K-1-pad. */
static int dx_as_forward(const geom *g)
{
    return g->stride == 1 && g->KH == g->KW && g->pad <= g->KH - 1;
}

static geom dx_geom(const geom *g)
{
    return make_geom(g->N, g->O, g->OH, g->OW, g->C, g->KH, g->KW, 1, g->KH - 1 - g->pad, g->G);
}

/* Columns per block of the column matrix (strided input gradient only): the whole S when
 * small, else blocks of about AC_CONV_COLS_BLOCK_FLOATS (in L2 for col2im), at least
 * AC_CONV_MIN_BLOCK_COLS. */
#define AC_CONV_COLS_BLOCK_FLOATS (1 << 18)
#define AC_CONV_MIN_BLOCK_COLS 256

static size_t col_block(const geom *g)
{
    if ((size_t)g->Kg * g->S <= AC_CONV_COLS_BLOCK_FLOATS) return g->S;
    const size_t w = AC_MAX(AC_CONV_COLS_BLOCK_FLOATS / (size_t)g->Kg,
                            (size_t)AC_CONV_MIN_BLOCK_COLS);
    const size_t nb = (g->S + w - 1) / w;
    return AC_MIN(ac_pad16((g->S + nb - 1) / nb), g->S);
}

/* Per-thread scratch of the strided input gradient: phase planes, a column block, the
 * gemm's scratch. */
static size_t dxcol_thread_floats(const geom *g, int gemm_nt)
{
    return phase_floats(g) + ac_pad16((size_t)g->Kg * col_block(g)) +
           ac_pad16(ac_sgemm_work_floats(gemm_nt));
}

typedef struct {
    float *dx;
    const float *dout;
    const ac_gemm_prepacked *wt; /* W_g^T packed once, per group */
    const geom *g;
    const ac_gemm_kernel *kr;
} dx_items;

/* dx of images [n0, n1), each = col2im(W^T . dY). */
static void dx_images(void *ctx, int n0, int n1, float *xp, int nt)
{
    const dx_items *d = (const dx_items *)ctx;
    const geom *g = d->g;
    const size_t S = g->S, sb = col_block(g), pf = phase_floats(g);
    const size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * S;
    float *cols = xp + pf, *gw = cols + ac_pad16((size_t)g->Kg * sb);
    for (int n = n0; n < n1; n++)
        for (int gi = 0; gi < g->G; gi++) {
            const float *dy = d->dout + n * ys + (size_t)gi * g->Og * S;
            memset(xp, 0, pf * sizeof(float));
            for (size_t s0 = 0; s0 < S; s0 += sb) {
                const size_t s1 = AC_MIN(s0 + sb, S);
                const int w = (int)(s1 - s0);
                const ac_gemm_matrix bm = {dy + s0, 1, S};
                const ac_gemm_operand A = {NULL, ac_gemm_prepacked_at, &d->wt[gi]};
                const ac_gemm_operand B = {ac_gemm_pack_matrix, NULL, &bm};
                ac_gemm_run(d->kr, g->Kg, w, g->Og, 1.f, &A, &B, 0.f, cols, w, gw, nt);
                conv_col2phase_group(xp, cols, g, s0, s1, nt);
            }
            conv_unphase_group(d->dx + n * xs + (size_t)gi * g->Cg * g->H * g->W, xp, g, nt);
        }
}

size_t conv_input_grad_floats(const geom *g, const ac_ctx *ctx, int nt)
{
    if (dx_as_forward(g)) {
        const geom d = dx_geom(g);
        return ac_pad16((size_t)g->O * g->Kg) + conv_forward_floats(&d, ctx, nt);
    }
    return (size_t)g->G * conv_packed_floats(g->Kg, g->Og) +
           ac_items_floats(dxcol_thread_floats(g, 1), dxcol_thread_floats(g, nt), nt);
}

void conv_input_grad(float *dx, const float *dout, const float *weight, const geom *g,
                     float *work, const ac_ctx *ctx, int nt)
{
    const int KK = g->KH * g->KW;
    if (dx_as_forward(g)) {
        const geom d = dx_geom(g);
        float *wf = work; /* wf[gi*Cg + c][o][kh][kw] = w[gi*Og + o][c][KH-1-kh][KW-1-kw] */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int gc = 0; gc < g->C; gc++) {
            const int gi = gc / g->Cg, c = gc % g->Cg;
            for (int o = 0; o < g->Og; o++) {
                const float *s = weight + ((size_t)(gi * g->Og + o) * g->Cg + c) * KK;
                float *t = wf + ((size_t)gc * g->Og + o) * KK;
                for (int i = 0; i < KK; i++) t[i] = s[KK - 1 - i];
            }
        }
        conv_forward(dx, dout, wf, NULL, &d, work + ac_pad16((size_t)g->O * g->Kg), ctx, nt);
        return;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    ac_gemm_prepacked wt[g->G > 0 ? g->G : 1];
    const size_t wpf = conv_packed_floats(g->Kg, g->Og);
    for (int gi = 0; gi < g->G; gi++) { /* A = W_g^T: rows (c, kh, kw), depth o */
        const ac_gemm_matrix m = {weight + (size_t)gi * g->Og * g->Kg, 1, (size_t)g->Kg};
        wt[gi] = ac_gemm_prepack(work + gi * wpf, ac_gemm_pack_matrix, &m, g->Kg, g->Og, kr->mr,
                                 kr, nt);
    }
    dx_items d = {dx, dout, wt, g, kr};
    ac_items_run(g->N, nt, dx_images, &d, work + (size_t)g->G * wpf, dxcol_thread_floats(g, 1));
}
