/* Convolution forward on the packed GEMM driver: out_g = W_g . cols_g per group, the column
 * matrix never stored: the gemm's B panels are copied from stride-phase planes (phase.c).
 * Several images go side by side along N when outputs are small; the bias rides as one more
 * depth step; W_g is packed once per call (or by the gemm for one or two gemms), or ahead of
 * time for inference (forward_packed.c); ReLU optionally applied on the way out. 3x3
 * stride-1 pad-1 layers with enough tiles go to Winograd F(2x2, 3x3) instead (winograd.c).
 *
 * Threads (nt): the first floor(N/nt)*nt images are shared out whole, each thread running
 * one-thread gemms with its own scratch (ac_items_run); the rest run chunk by chunk with the
 * threads sharing each (forward_chunk). */
#include <string.h>

#include "ac_parallel.h"
#include "ac_winograd.h"
#include "geom.h"

/* ------------------------------------------------------------ packing the weights */

size_t conv_packed_floats(int M, int K)
{
    size_t f = 0;
    for (int i = 0; i < ac_gemm_nkernels; i++)
        f = AC_MAX(f, (size_t)K * ac_round_up(M, ac_gemm_kernels[i].mr));
    return ac_pad16(f);
}

size_t conv_fwd_weights_floats(const geom *g)
{
    return (size_t)g->G * conv_packed_floats(g->Og, g->Kg + AC_GEMM_MAX_BIAS_STEPS);
}

void conv_pack_wbias(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr)
{
    const wbias_src *ws = (const wbias_src *)src;
    const int kx = AC_MIN(kc, ws->Kg - k0);
    for (int q = 0; q * R < nx; q++) {
        float *d = dst + (size_t)q * kc * R;
        const int r = AC_MIN(R, nx - q * R);
        if (kx > 0) ac_gemm_pack_matrix(&ws->m, d, x0 + q * R, r, k0, kx, R, kr);
        for (int k = AC_MAX(kx, 0); k < kc; k++) /* the bias rows (ac_gemm_bias_steps) */
            for (int i = 0; i < R; i++)
                d[(size_t)k * R + i] = i < r ? ac_gemm_bias_part(kr, ws->bias[x0 + q * R + i],
                                                                 k0 + k - ws->Kg)
                                             : 0.f;
    }
}

wbias_src conv_wbias_of(const float *w, const float *bias, const geom *g, int gi)
{
    return (wbias_src){{w + (size_t)gi * g->Og * g->Kg, (size_t)g->Kg, 1},
                       bias ? bias + gi * g->Og : NULL,
                       g->Kg,
                       g->Og};
}

/* ------------------------------------------------------------------ the images */

/* Images per gemm: small outputs (3x3 layers: 169 pixels) are put side by side along N so
 * the gemm's column panels are nearly full; the phase planes of a chunk stay modest. */
#define AC_CONV_CHUNK_PIXELS 512
#define AC_CONV_CHUNK_PHASE_FLOATS (1 << 20)
static int fwd_chunk(const geom *g)
{
    int c = (int)AC_MAX((size_t)1, AC_CONV_CHUNK_PIXELS / AC_MAX(g->S, (size_t)1));
    c = (int)AC_MIN((size_t)c, AC_MAX((size_t)1, AC_CONV_CHUNK_PHASE_FLOATS / phase_floats(g)));
    return AC_MAX(1, AC_MIN(c, g->N));
}

/* d[i] = s[i], or max(s[i], 0) as ac_relu_forward has it (NaN -> 0) when relu; d may be s. */
static void store_out(float *d, const float *s, size_t n, int relu)
{
    if (!relu) {
        if (d != s) memcpy(d, s, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) d[i] = s[i] > 0.f ? s[i] : 0.f;
}

/* Rows [o0, o1) x columns [n0, n1) of a chunk's gemm output y (Og x nimg*S) to out, one
 * image after another (in place when nimg == 1: y is then out), rectified when relu. */
static void write_out(float *out, const float *y, int nimg, int o0, int o1, size_t n0,
                      size_t n1, int relu, const geom *g, int gi)
{
    const size_t S = g->S, ld = (size_t)nimg * S, ys = (size_t)g->O * S;
    if (nimg == 1 && !relu) return;
    for (size_t c = n0; c < n1;) {
        const size_t i = c / S, p = c % S, len = AC_MIN(S - p, n1 - c);
        for (int o = o0; o < o1; o++)
            store_out(out + i * ys + (size_t)(gi * g->Og + o) * S + p, y + o * ld + c, len,
                      relu);
        c += len;
    }
}

/* One group of a chunk shared by a team (forward_chunk with nt > 1). */
typedef struct {
    float *out, *y, *xp;
    const float *xg;
    const ac_gemm_operand *wa;
    const geom *g;
    const ac_gemm_kernel *kr;
    int nimg, nbias, relu, gi, by_n;
} chunk_team;

static void chunk_share(void *ctx, int t, int T, float *gw)
{
    const chunk_team *c = (const chunk_team *)ctx;
    const geom *g = c->g;
    const size_t pf = phase_floats(g), xs = (size_t)g->C * g->H * g->W;
    const size_t ld = (size_t)c->nimg * g->S;
    const ac_range rows = ac_split(g->Cg * g->stride * phase_hp(g), 1, t, T);
    for (int i = 0; i < c->nimg; i++)
        conv_make_phase_rows(c->xp + i * pf, c->xg + i * xs, g, (int)rows.lo, (int)rows.hi);
#pragma omp barrier
    const ac_range n = c->by_n ? ac_split((long)ld, c->kr->nr, t, T) : (ac_range){0, (long)ld};
    const ac_range m = c->by_n ? (ac_range){0, g->Og} : ac_split(g->Og, c->kr->mr, t, T);
    const phase_src ps = {c->xp, g, c->nbias, (int)n.lo};
    const ac_gemm_rows rs = {&c->wa[c->gi], (int)m.lo};
    const ac_gemm_operand A = ac_gemm_rows_of(&rs);
    const ac_gemm_operand B = {conv_pack_phase, NULL, &ps};
    if (n.hi > n.lo && m.hi > m.lo) {
        ac_gemm_run(c->kr, (int)(m.hi - m.lo), (int)(n.hi - n.lo), g->Kg + c->nbias, 1.f, &A,
                    &B, 0.f, c->y + (size_t)m.lo * ld + n.lo, (int)ld, gw, 1);
        write_out(c->out, c->y, c->nimg, (int)m.lo, (int)m.hi, n.lo, n.hi, c->relu, g, c->gi);
    }
}

/* Images [0, nimg) of out/x, nimg <= fwd_chunk(g): one gemm per group over all their pixels
 * (output staged in ybuf when nimg > 1), then the ReLU when relu.
 * With nt > 1 (batch 1) all of it runs in one parallel region: the threads build the phase
 * planes together, then each runs a one-thread gemm on its share and writes it out. The
 * share is of the smaller operand's dimension, so the larger is not handled twice: pixels
 * when the weights are smaller (conv1, conv2: each thread reads all weights, packs its B),
 * else weight rows (3x3 layers: each packs all of B; splitting pixels measured slower). */
static void forward_chunk(float *out, const float *x, int nimg, const ac_gemm_operand *wa,
                          int nbias, int relu, const geom *g, const ac_gemm_kernel *kr,
                          float *xp, int nt)
{
    const size_t S = g->S, pf = phase_floats(g), HW = (size_t)g->H * g->W;
    const size_t xs = (size_t)g->C * HW, ld = (size_t)nimg * S;
    const int ch = fwd_chunk(g), Kd = g->Kg + nbias;
    float *ybuf = xp + (size_t)ch * pf;
    float *gw = ybuf + (ch > 1 ? ac_pad16((size_t)g->Og * ch * S) : 0);
    for (int gi = 0; gi < g->G; gi++) {
        float *y = nimg > 1 ? ybuf : out + (size_t)gi * g->Og * S;
        const float *xg = x + (size_t)gi * g->Cg * HW;
        if (nt == 1) { /* no region (entering one costs even with one thread) */
            for (int i = 0; i < nimg; i++) conv_make_phases(xp + i * pf, xg + i * xs, g);
            const phase_src ps = {xp, g, nbias, 0};
            const ac_gemm_operand B = {conv_pack_phase, NULL, &ps};
            ac_gemm_run(kr, g->Og, (int)ld, Kd, 1.f, &wa[gi], &B, 0.f, y, (int)ld, gw, 1);
            write_out(out, y, nimg, 0, g->Og, 0, ld, relu, g, gi);
            continue;
        }
        chunk_team c = {out, y, xp, xg, wa, g, kr, nimg, nbias, relu, gi, (size_t)g->Og <= ld};
        ac_team_run(nt, chunk_share, &c, gw, ac_pad16(ac_sgemm_work_floats(1)));
    }
}

/* Work of one thread at a time: phase planes and output staging of a chunk, gemm scratch. */
static size_t fwd_thread_floats(const geom *g, int gemm_nt)
{
    const int ch = fwd_chunk(g);
    return (size_t)ch * phase_floats(g) + (ch > 1 ? ac_pad16((size_t)g->Og * ch * g->S) : 0) +
           (size_t)gemm_nt * ac_pad16(ac_sgemm_work_floats(1)); /* a one-thread gemm each */
}

size_t conv_forward_run_floats(const geom *g, int nt)
{
    return ac_items_floats(fwd_thread_floats(g, 1), fwd_thread_floats(g, nt), nt);
}

typedef struct {
    float *out;
    const float *x;
    const ac_gemm_operand *wa;
    int nbias, relu;
    const geom *g;
    const ac_gemm_kernel *kr;
} fwd_items;

/* Images [n0, n1) in chunks. */
static void forward_images(void *ctx, int n0, int n1, float *tw, int nt)
{
    const fwd_items *f = (const fwd_items *)ctx;
    const geom *g = f->g;
    const size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->S;
    const int ch = fwd_chunk(g);
    for (int n = n0; n < n1; n += ch)
        forward_chunk(f->out + n * ys, f->x + n * xs, AC_MIN(ch, n1 - n), f->wa, f->nbias,
                      f->relu, g, f->kr, tw, nt);
}

void conv_forward_run(float *out, const float *x, const ac_gemm_operand *wa, int nbias,
                      int relu, const geom *g, const ac_gemm_kernel *kr, float *tw, int nt)
{
    fwd_items f = {out, x, wa, nbias, relu, g, kr};
    ac_items_run(g->N, nt, forward_images, &f, tw, fwd_thread_floats(g, 1));
}

/* ------------------------------------------------------------------- the forward */

/* 3x3 stride 1 pad 1 goes to Winograd F(2x2, 3x3) (winograd.c) where it measured faster
 * (AlexNet's 13x13 layers: 1.6-1.8x at batch 32-128, 1.1-1.2x at 2 images; at 1 image the
 * weight transform eats the gain unless it was done ahead (pretransformed: packed weights),
 * then 1.2-1.35x); the context may force it off or on. */
int conv_use_winograd(const geom *g, int pretransformed, int winograd)
{
    if (g->KH != 3 || g->KW != 3 || g->stride != 1 || g->pad != 1) return 0;
    if (winograd != AC_WINOGRAD_AUTO) return winograd == AC_WINOGRAD_ON;
    return g->Cg >= 16 && g->Og >= 16 &&
           (pretransformed || (long)g->N * ((g->H + 1) / 2) * ((g->W + 1) / 2) >= 96);
}

/* Work: packed weights of every group, then the images' (conv_forward_run_floats). */
size_t conv_forward_floats(const geom *g, const ac_ctx *ctx, int nt)
{
    const size_t f = conv_fwd_weights_floats(g) + conv_forward_run_floats(g, nt);
    return conv_use_winograd(g, 0, ctx->winograd)
               ? AC_MAX(f, ac_winograd3x3_work_floats(g->N, g->C, g->H, g->W, g->O, g->G, nt))
               : f;
}

void conv_forward(float *out, const float *x, const float *w, const float *bias, const geom *g,
                  float *work, const ac_ctx *ctx, int nt)
{
    if (conv_use_winograd(g, 0, ctx->winograd)) {
        ac_winograd3x3(out, x, w, bias, g->N, g->C, g->H, g->W, g->O, g->G, work, ctx, nt);
        return;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    const int G1 = g->G > 0 ? g->G : 1;
    ac_gemm_prepacked wp[G1];
    wbias_src ws[G1];
    ac_gemm_operand wa[G1];
    /* The bias rides as more depth steps (ac_gemm_bias_steps): weights get bias columns, B
     * rows of ones, so the output is written once (no fill, no beta = 1 pass). Weights are
     * packed once here when several gemms use them, else by the gemm itself (each thread its
     * own rows). */
    const int nbias = bias ? ac_gemm_bias_steps(kr) : 0, Kd = g->Kg + nbias, ch = fwd_chunk(g);
    const int direct = (g->N + ch - 1) / ch <= 2;
    const size_t wpf = conv_packed_floats(g->Og, g->Kg + AC_GEMM_MAX_BIAS_STEPS);
    for (int gi = 0; gi < g->G; gi++) {
        ws[gi] = conv_wbias_of(w, bias, g, gi);
        if (direct) {
            wa[gi] = (ac_gemm_operand){conv_pack_wbias, NULL, &ws[gi]};
            continue;
        }
        wp[gi] = ac_gemm_prepack(work + gi * wpf, conv_pack_wbias, &ws[gi], g->Og, Kd, kr->mr,
                                 kr, nt);
        wa[gi] = (ac_gemm_operand){NULL, ac_gemm_prepacked_at, &wp[gi]};
    }
    conv_forward_run(out, x, wa, nbias, 0, g, kr, work + conv_fwd_weights_floats(g), nt);
}

size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                     int stride, int pad, int groups, const ac_ctx *ctx,
                                     int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    return conv_forward_floats(&g, ctx, AC_MAX(nthreads, 1));
}

void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                       int N, int C, int H, int W, int O, int KH, int KW, int stride, int pad,
                       int groups, float *work, const ac_ctx *ctx, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    if (N <= 0) return;
    conv_forward(out, x, weight, bias, &g, work, ctx, AC_MAX(nthreads, 1));
}
