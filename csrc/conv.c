/* Convolution forward and backward (API in ac_conv.h): im2col into scratch, then ac_sgemm
 * per image, group and block of output pixels (large column matrices are cut into column
 * blocks that stay in L2). Not here: im2col fused into GEMM packing, 1x1 / stride-1 shortcuts.
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
    int a = pad - k, b = L - 1 + pad - k, l, h;
    if (stride == 1) {          /* no divisions on the common path */
        l = a > 0 ? a : 0;
        h = b >= 0 ? b + 1 : 0;
    } else {
        l = a > 0 ? (a + stride - 1) / stride : 0;
        h = b >= 0 ? b / stride + 1 : 0;
    }
    l = AC_MIN(l, OL);
    h = AC_MAX(AC_MIN(h, OL), l);
    *lo = l;
    *hi = h;
}

/* d[i] = s[i*stride] and d[i] = 0, as inline loops: the segments are short (an output row),
 * so library calls would cost more than the copy; constant strides let them vectorise. */
static inline void gather_c(float *restrict d, const float *restrict s, int n, int stride)
{
    for (int i = 0; i < n; i++) d[i] = s[(size_t)i * stride];
}
static inline void gather(float *restrict d, const float *restrict s, int n, int stride)
{
    switch (stride) {
    case 1: gather_c(d, s, n, 1); break;
    case 2: gather_c(d, s, n, 2); break;
    case 4: gather_c(d, s, n, 4); break;
    default: gather_c(d, s, n, stride);
    }
}
static inline void zero(float *d, int n)
{
    for (int i = 0; i < n; i++) d[i] = 0.f;
}

void ac_im2col(float *cols, size_t ld, const float *x, int H, int W, int KH, int KW,
               int stride, int pad, int r0, int r1, size_t s0, size_t s1)
{
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const int oh0 = (int)(s0 / OW), a0 = (int)(s0 % OW);
    for (int r = r0; r < r1; r++) {
        const int kw = r % KW, kh = (r / KW) % KH, c = r / (KW * KH);
        const float *xc = x + (size_t)c * H * W;
        float *d = cols + (size_t)(r - r0) * ld;
        int ohlo, ohhi, owlo, owhi;
        valid_range(kh, H, stride, pad, OH, &ohlo, &ohhi);
        valid_range(kw, W, stride, pad, OW, &owlo, &owhi);
        /* One output row at a time: columns [a, b) of row oh go to dr[0, b - a). */
        int oh = oh0, a = a0;
        for (size_t s = s0; s < s1; oh++, a = 0) {
            const int b = (int)AC_MIN((size_t)OW, a + (s1 - s));
            float *dr = d + (s - s0);
            if (oh < ohlo || oh >= ohhi) {
                zero(dr, b - a);
            } else {
                const float *xr = xc + (size_t)(oh * stride - pad + kh) * W;
                const int lo = AC_MIN(AC_MAX(owlo, a), b), hi = AC_MAX(AC_MIN(owhi, b), lo);
                zero(dr, lo - a);
                gather(dr + (lo - a), xr + (lo * stride - pad + kw), hi - lo, stride);
                zero(dr + (hi - a), b - hi);
            }
            s += (size_t)(b - a);
        }
    }
}

void ac_col2im_add(float *x, const float *cols, size_t ld, int H, int W, int KH, int KW,
                   int stride, int pad, int c0, int c1, size_t s0, size_t s1)
{
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const int oh0 = (int)(s0 / OW), a0 = (int)(s0 % OW);
    for (int c = c0; c < c1; c++) {
        float *xc = x + (size_t)c * H * W;
        for (int kh = 0; kh < KH; kh++) {
            int ohlo, ohhi;
            valid_range(kh, H, stride, pad, OH, &ohlo, &ohhi);
            for (int kw = 0; kw < KW; kw++) {
                int owlo, owhi;
                valid_range(kw, W, stride, pad, OW, &owlo, &owhi);
                const float *d = cols + ((size_t)((c - c0) * KH + kh) * KW + kw) * ld;
                int oh = oh0, a = a0;
                for (size_t s = s0; s < s1; oh++, a = 0) {
                    const int b = (int)AC_MIN((size_t)OW, a + (s1 - s));
                    if (oh >= ohlo && oh < ohhi) {
                        const float *dr = d + (s - s0);
                        float *xr = xc + (size_t)(oh * stride - pad + kh) * W;
                        const int lo = AC_MIN(AC_MAX(owlo, a), b), hi = AC_MAX(AC_MIN(owhi, b), lo);
                        for (int ow = lo, iw = lo * stride - pad + kw; ow < hi; ow++, iw += stride)
                            xr[iw] += dr[ow - a];
                    }
                    s += (size_t)(b - a);
                }
            }
        }
    }
}

/* Columns per block of the column matrix: the whole S when it is small, else blocks of about
 * COLS_BLOCK_FLOATS (so the block is still in L2 when the gemm packs it), at least
 * MIN_BLOCK_COLS wide (so the gemm's B panels stay long), all of nearly equal width. */
#ifndef AC_CONV_COLS_BLOCK_FLOATS
#define AC_CONV_COLS_BLOCK_FLOATS (1 << 18)
#endif
#define MIN_BLOCK_COLS 256

static size_t col_block(const geom *g)
{
    if ((size_t)g->Kg * g->S <= AC_CONV_COLS_BLOCK_FLOATS) return g->S;
    const size_t w = AC_MAX(AC_CONV_COLS_BLOCK_FLOATS / (size_t)g->Kg, (size_t)MIN_BLOCK_COLS);
    const size_t nb = (g->S + w - 1) / w;
    return AC_MIN(pad16((g->S + nb - 1) / nb), g->S);
}

/* im2col of columns [s0, s1) of one group of one image, rows shared among nt threads. */
static void im2col_group(float *cols, const float *xg, const geom *g, size_t s0, size_t s1,
                         int nt)
{
    const size_t ld = s1 - s0;
    if (nt <= 1) {
        ac_im2col(cols, ld, xg, g->H, g->W, g->KH, g->KW, g->stride, g->pad, 0, g->Kg, s0, s1);
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int r0 = (int)((long)g->Kg * t / T), r1 = (int)((long)g->Kg * (t + 1) / T);
        ac_im2col(cols + (size_t)r0 * ld, ld, xg, g->H, g->W, g->KH, g->KW, g->stride, g->pad,
                  r0, r1, s0, s1);
    }
}

/* col2im of columns [s0, s1) of one group of one image, whole channel planes per thread;
 * the planes are zeroed first when s0 == 0. */
static void col2im_group(float *dxg, const float *cols, const geom *g, size_t s0, size_t s1,
                         int nt)
{
    const size_t ld = s1 - s0, HW = (size_t)g->H * g->W, kk = (size_t)g->KH * g->KW;
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int c0 = (int)((long)g->Cg * t / T), c1 = (int)((long)g->Cg * (t + 1) / T);
        if (s0 == 0) memset(dxg + c0 * HW, 0, (size_t)(c1 - c0) * HW * sizeof(float));
        ac_col2im_add(dxg, cols + c0 * kk * ld, ld, g->H, g->W, g->KH, g->KW, g->stride,
                      g->pad, c0, c1, s0, s1);
    }
}

/* Per-thread scratch: a column block buffer then the gemm's own scratch. */
static size_t thread_floats(const geom *g, int gemm_nt)
{
    return pad16((size_t)g->Kg * col_block(g)) + pad16(ac_sgemm_work_floats(gemm_nt));
}

/* ------------------------------------------------------------------ forward */

static void forward_image(float *out, const float *x, const float *weight, const float *bias,
                          const geom *g, float *cols, int nt)
{
    const size_t S = g->S, sb = col_block(g);
    float *gw = cols + pad16((size_t)g->Kg * sb);
    for (int gi = 0; gi < g->G; gi++) {
        float *y = out + (size_t)gi * g->Og * S;
        const float *xg = x + (size_t)gi * g->Cg * g->H * g->W;
        const float *wg = weight + (size_t)gi * g->Og * g->Kg;
        for (size_t s0 = 0; s0 < S; s0 += sb) {
            const size_t s1 = AC_MIN(s0 + sb, S);
            im2col_group(cols, xg, g, s0, s1, nt);
            if (bias) {
                /* Bias written first, the gemm accumulates onto it (beta = 1). */
                for (int o = 0; o < g->Og; o++) {
                    const float b = bias[gi * g->Og + o];
                    float *yo = y + (size_t)o * S;
                    for (size_t s = s0; s < s1; s++) yo[s] = b;
                }
            }
            ac_sgemm(0, 0, g->Og, (int)(s1 - s0), g->Kg, 1.f, wg, g->Kg, cols, (int)(s1 - s0),
                     bias ? 1.f : 0.f, y + s0, (int)S, gw, nt);
        }
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
    const size_t S = g->S, sb = col_block(g);
    float *gw = cols + pad16((size_t)g->Kg * sb);
    const size_t xg = (size_t)g->Cg * g->H * g->W, wg = (size_t)g->Og * g->Kg;
    for (int gi = 0; gi < g->G; gi++) {
        const float *dy = dout + (size_t)gi * g->Og * S;
        for (size_t s0 = 0; s0 < S; s0 += sb) {
            const size_t s1 = AC_MIN(s0 + sb, S);
            const int w = (int)(s1 - s0);
            if (dw) {
                im2col_group(cols, x + gi * xg, g, s0, s1, nt);
                ac_sgemm(0, 1, g->Og, g->Kg, w, 1.f, dy + s0, (int)S, cols, w,
                         s0 == 0 ? beta_w : 1.f, dw + gi * wg, g->Kg, gw, nt);
            }
            if (dx) {
                /* cols now holds the block of dcols = W_g^T . dY_g. */
                ac_sgemm(1, 0, g->Kg, w, g->Og, 1.f, weight + gi * wg, g->Kg, dy + s0, (int)S,
                         0.f, cols, w, gw, nt);
                col2im_group(dx + gi * xg, cols, g, s0, s1, nt);
            }
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
