/* Convolution forward and backward (API in ac_conv.h): im2col into scratch, then ac_sgemm
 * per image and group. Not here: im2col fused into GEMM packing, 1x1 / stride-1 shortcuts.
 *
 * Letters: N images, C input channels, H x W input, O output channels, KH x KW kernel,
 * G groups, Cg = C/G, Og = O/G, Kg = Cg*KH*KW (rows of a group's column matrix, the GEMM
 * depth), OH x OW output, S = OH*OW output pixels.
 *
 * Threads (nt): the first floor(N/nt)*nt images (forward) or weight-gradient slots
 * (backward) are shared out whole, each thread with its own column buffer and a
 * one-thread gemm; the rest run one at a time with threaded im2col and gemm (batch-1).
 */
#include <string.h>

#include "ac_conv.h"
#include "ac_gemm.h"

/* The weight gradient is summed over images in min(N, WGRAD_SLOTS) contiguous slots, each
 * in its own buffer, then added in slot order: the partition and the order of every sum
 * depend on N only, never on the thread count or timing. */
#define WGRAD_SLOTS 8

typedef struct {
    int N, C, H, W, O, KH, KW, stride, pad, G;
    int OH, OW, Cg, Og, Kg;
    size_t S;
} geom;

static geom make_geom(int N, int C, int H, int W, int O, int KH, int KW, int stride,
                      int pad, int groups)
{
    geom g = {N, C, H, W, O, KH, KW, stride, pad, groups};
    g.OH = (H + 2 * pad - KH) / stride + 1;
    g.OW = (W + 2 * pad - KW) / stride + 1;
    g.Cg = C / groups;
    g.Og = O / groups;
    g.Kg = g.Cg * KH * KW;
    g.S = (size_t)g.OH * g.OW;
    return g;
}

/* Round up to 16 floats (64 bytes) so per-thread buffers never share a cache line. */
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Outputs o in [*lo, *hi) whose input o*stride - pad + k lies in [0, L). */
static void valid_range(int k, int L, int stride, int pad, int OL, int *lo, int *hi)
{
    int a = pad - k, b = L - 1 + pad - k;
    int l = a > 0 ? (a + stride - 1) / stride : 0;
    int h = b >= 0 ? b / stride + 1 : 0;
    l = AC_MIN(l, OL);
    h = AC_MAX(AC_MIN(h, OL), l);
    *lo = l;
    *hi = h;
}

void ac_im2col(float *cols, const float *x, int C, int H, int W, int KH, int KW,
               int stride, int pad, int r0, int r1)
{
    (void)C;
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const size_t S = (size_t)OH * OW;
    for (int r = r0; r < r1; r++) {
        const int kw = r % KW, kh = (r / KW) % KH, c = r / (KW * KH);
        const float *xc = x + (size_t)c * H * W;
        float *d = cols + (size_t)r * S;
        int ohlo, ohhi, owlo, owhi;
        valid_range(kh, H, stride, pad, OH, &ohlo, &ohhi);
        valid_range(kw, W, stride, pad, OW, &owlo, &owhi);
        memset(d, 0, (size_t)ohlo * OW * sizeof(float));
        for (int oh = ohlo; oh < ohhi; oh++) {
            float *dr = d + (size_t)oh * OW;
            const float *xr = xc + (size_t)(oh * stride - pad + kh) * W;
            const int iw0 = owlo * stride - pad + kw;
            for (int ow = 0; ow < owlo; ow++) dr[ow] = 0.f;
            if (stride == 1) {
                memcpy(dr + owlo, xr + iw0, (size_t)(owhi - owlo) * sizeof(float));
            } else {
                for (int ow = owlo, iw = iw0; ow < owhi; ow++, iw += stride) dr[ow] = xr[iw];
            }
            for (int ow = owhi; ow < OW; ow++) dr[ow] = 0.f;
        }
        memset(d + (size_t)ohhi * OW, 0, (size_t)(OH - ohhi) * OW * sizeof(float));
    }
}

void ac_col2im(float *x, const float *cols, int C, int H, int W, int KH, int KW,
               int stride, int pad, int c0, int c1)
{
    (void)C;
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const size_t S = (size_t)OH * OW;
    for (int c = c0; c < c1; c++) {
        float *xc = x + (size_t)c * H * W;
        memset(xc, 0, (size_t)H * W * sizeof(float));
        for (int kh = 0; kh < KH; kh++) {
            int ohlo, ohhi;
            valid_range(kh, H, stride, pad, OH, &ohlo, &ohhi);
            for (int kw = 0; kw < KW; kw++) {
                int owlo, owhi;
                valid_range(kw, W, stride, pad, OW, &owlo, &owhi);
                const float *s = cols + ((size_t)(c * KH + kh) * KW + kw) * S;
                for (int oh = ohlo; oh < ohhi; oh++) {
                    float *xr = xc + (size_t)(oh * stride - pad + kh) * W;
                    const float *sr = s + (size_t)oh * OW;
                    for (int ow = owlo, iw = owlo * stride - pad + kw; ow < owhi;
                         ow++, iw += stride)
                        xr[iw] += sr[ow];
                }
            }
        }
    }
}

/* im2col of one group of one image, rows shared among nt threads. */
static void im2col_group(float *cols, const float *xg, const geom *g, int nt)
{
    if (nt <= 1) {
        ac_im2col(cols, xg, g->Cg, g->H, g->W, g->KH, g->KW, g->stride, g->pad, 0, g->Kg);
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int r0 = (int)((long)g->Kg * t / T), r1 = (int)((long)g->Kg * (t + 1) / T);
        ac_im2col(cols, xg, g->Cg, g->H, g->W, g->KH, g->KW, g->stride, g->pad, r0, r1);
    }
}

/* col2im of one group of one image, channel planes shared among nt threads. */
static void col2im_group(float *dxg, const float *cols, const geom *g, int nt)
{
    if (nt <= 1) {
        ac_col2im(dxg, cols, g->Cg, g->H, g->W, g->KH, g->KW, g->stride, g->pad, 0, g->Cg);
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int c0 = (int)((long)g->Cg * t / T), c1 = (int)((long)g->Cg * (t + 1) / T);
        ac_col2im(dxg, cols, g->Cg, g->H, g->W, g->KH, g->KW, g->stride, g->pad, c0, c1);
    }
}

/* Per-thread scratch: a column buffer then the gemm's own scratch. */
static size_t thread_floats(const geom *g, int gemm_nt)
{
    return pad16((size_t)g->Kg * g->S) + pad16(ac_sgemm_work_floats(gemm_nt));
}

/* ------------------------------------------------------------------ forward */

static void forward_image(float *out, const float *x, const float *weight, const float *bias,
                          const geom *g, float *cols, int nt)
{
    float *gw = cols + pad16((size_t)g->Kg * g->S);
    for (int gi = 0; gi < g->G; gi++) {
        float *y = out + (size_t)gi * g->Og * g->S;
        im2col_group(cols, x + (size_t)gi * g->Cg * g->H * g->W, g, nt);
        if (bias) {
            /* Bias written first, gemm accumulates onto it (beta = 1). */
            for (int o = 0; o < g->Og; o++) {
                const float b = bias[gi * g->Og + o];
                float *yo = y + (size_t)o * g->S;
                for (size_t s = 0; s < g->S; s++) yo[s] = b;
            }
        }
        ac_sgemm(0, 0, g->Og, (int)g->S, g->Kg, 1.f, weight + (size_t)gi * g->Og * g->Kg, g->Kg,
                 cols, (int)g->S, bias ? 1.f : 0.f, y, (int)g->S, gw, nt);
    }
}

size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                     int stride, int pad, int groups, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    size_t f = thread_floats(&g, nt);
    if (nt > 1 && N >= nt) f = AC_MAX(f, (size_t)nt * thread_floats(&g, 1));
    return f;
}

void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                       int N, int C, int H, int W, int O, int KH, int KW,
                       int stride, int pad, int groups, float *work, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    const size_t xs = (size_t)C * H * W, ys = (size_t)O * g.S;
    const int nfull = nt > 1 ? N / nt * nt : 0;
    if (nfull > 0) {
        const size_t per = thread_floats(&g, 1);
        #pragma omp parallel num_threads(nt)
        {
            float *cols = work + (size_t)omp_get_thread_num() * per;
            #pragma omp for schedule(static)
            for (int n = 0; n < nfull; n++)
                forward_image(out + n * ys, x + n * xs, weight, bias, &g, cols, 1);
        }
    }
    for (int n = nfull; n < N; n++)
        forward_image(out + n * ys, x + n * xs, weight, bias, &g, work, nt);
}

/* ----------------------------------------------------------------- backward */

/* One image: dw (+)= dY . cols^T (beta_w 0 starts a slot buffer), dx = col2im(W^T . dY). */
static void backward_image(float *dx, float *dw, float beta_w, const float *dout,
                           const float *x, const float *weight, const geom *g, float *cols,
                           int nt)
{
    float *gw = cols + pad16((size_t)g->Kg * g->S);
    const size_t xg = (size_t)g->Cg * g->H * g->W, wg = (size_t)g->Og * g->Kg;
    for (int gi = 0; gi < g->G; gi++) {
        const float *dy = dout + (size_t)gi * g->Og * g->S;
        if (dw) {
            im2col_group(cols, x + gi * xg, g, nt);
            ac_sgemm(0, 1, g->Og, g->Kg, (int)g->S, 1.f, dy, (int)g->S, cols, (int)g->S,
                     beta_w, dw + gi * wg, g->Kg, gw, nt);
        }
        if (dx) {
            /* cols now holds dcols = W_g^T . dY_g. */
            ac_sgemm(1, 0, g->Kg, (int)g->S, g->Og, 1.f, weight + gi * wg, g->Kg, dy,
                     (int)g->S, 0.f, cols, (int)g->S, gw, nt);
            col2im_group(dx + gi * xg, cols, g, nt);
        }
    }
}

/* All images of slot s: [s*N/P, (s+1)*N/P). */
static void backward_slot(float *dx, float *dw, int first_overwrites, int s, int P,
                          const float *dout, const float *x, const float *weight,
                          const geom *g, float *cols, int nt)
{
    const size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->S;
    const int n0 = (int)((long)g->N * s / P), n1 = (int)((long)g->N * (s + 1) / P);
    for (int n = n0; n < n1; n++)
        backward_image(dx ? dx + n * xs : NULL, dw, (first_overwrites && n == n0) ? 0.f : 1.f,
                       dout + n * ys, x + n * xs, weight, g, cols, nt);
}

static int wgrad_slots(int N) { return AC_MIN(N, WGRAD_SLOTS); }

size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                      int stride, int pad, int groups, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1), P = wgrad_slots(N);
    size_t f = thread_floats(&g, nt);
    if (nt > 1 && P >= nt) f = AC_MAX(f, (size_t)nt * thread_floats(&g, 1));
    if (P > 1) f += (size_t)P * pad16((size_t)O * g.Kg);
    return f;
}

void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                        const float *x, const float *weight,
                        int N, int C, int H, int W, int O, int KH, int KW,
                        int stride, int pad, int groups, float *work, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1), P = wgrad_slots(N);
    const size_t S = g.S;

    if (dbias) {
        /* One thread per channel, eight fixed lanes: the sum order depends on nothing else. */
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int o = 0; o < O; o++) {
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int n = 0; n < N; n++) {
                const float *p = dout + ((size_t)n * O + o) * S;
                size_t i = 0;
                for (; i + 8 <= S; i += 8)
                    for (int j = 0; j < 8; j++) acc[j] += p[i + j];
                for (; i < S; i++) acc[i & 7] += p[i];
            }
            dbias[o] += (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                                ((acc[4] + acc[5]) + (acc[6] + acc[7])));
        }
    }
    if ((!dx && !dweight) || N == 0) return;

    /* Slot buffers first (only when several slots), then per-thread scratch. */
    const size_t wstride = pad16((size_t)O * g.Kg);
    float *parts = P > 1 ? work : NULL;
    float *tw = P > 1 ? work + (size_t)P * wstride : work;
    const int dw_split = dweight && P > 1;
    const int pfull = nt > 1 ? P / nt * nt : 0;

    if (pfull > 0) {
        const size_t per = thread_floats(&g, 1);
        #pragma omp parallel num_threads(nt)
        {
            float *cols = tw + (size_t)omp_get_thread_num() * per;
            #pragma omp for schedule(static)
            for (int s = 0; s < pfull; s++)
                backward_slot(dx, dw_split ? parts + s * wstride : dweight, dw_split, s, P,
                              dout, x, weight, &g, cols, 1);
        }
    }
    for (int s = pfull; s < P; s++)
        backward_slot(dx, dw_split ? parts + s * wstride : dweight, dw_split, s, P,
                      dout, x, weight, &g, tw, nt);

    if (dw_split) {
        const long wsz = (long)O * g.Kg, B = 4096;
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long b = 0; b < wsz; b += B) {
            const long e = AC_MIN(b + B, wsz);
            float *p0 = parts + b;
            for (int s = 1; s < P; s++) {
                const float *q = parts + s * wstride + b;
                for (long i = 0; i < e - b; i++) p0[i] += q[i];
            }
            for (long i = 0; i < e - b; i++) dweight[b + i] += p0[i];
        }
    }
}
