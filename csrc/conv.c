/* Convolution forward and backward (API in ac_conv.h) on the packed GEMM driver
 * (ac_gemm_run), with im2col fused into its packing callbacks. Each image's input (per
 * group) is first copied into zero-padded stride-phase planes (make_phases), from which
 * every column-matrix row is a set of contiguous runs.
 *   forward      out_g = W_g . cols_g, several images side by side along N when outputs
 *                are small; B panels copied from the phase planes, the bias one more depth
 *                step; W_g packed once per call (or by the gemm for one or two gemms), or
 *                ahead of time for inference (ac_conv2d_pack_weights); ReLU optionally
 *                applied on the way out. 3x3 stride-1 pad-1 layers with enough tiles go
 *                to Winograd F(2x2, 3x3) instead (csrc/winograd.c).
 *   weight grad  dW_g^T (+)= cols'_g . dY_g^T per slot of images, the depth running over
 *                their pixels, the column rows reordered (kh, kw, c): A panels are copies
 *                from the zero-padded input stored channel last (no phase planes, no
 *                transposing), B panels dY transposed by the plain packer; the bias
 *                gradient is summed alongside.
 *   input grad   stride 1 (square kernel, pad < K): the forward of dY, padded by K-1-pad,
 *                with flipped, transposed weights; otherwise W_g^T . dY_g into column
 *                blocks, added back into phase planes, then un-phased into dx.
 *
 * Letters: N images, C input channels, H x W input, O output channels, KH x KW kernel,
 * G groups, Cg = C/G, Og = O/G, Kg = Cg*KH*KW (rows of a group's column matrix, the GEMM
 * depth), OH x OW output, S = OH*OW output pixels.
 *
 * Threads (nt): the first floor(N/nt)*nt images (forward, input gradient) or weight-gradient
 * slots are shared out whole, each thread running one-thread gemms with its own scratch;
 * the rest run one at a time with threaded gemms (batch-1), or, in the forward, chunk by
 * chunk with the threads sharing each (forward_chunk).
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ac_bf16.h"
#include "ac_conv.h"
#include "ac_eltwise.h"
#include "ac_cpu.h"
#include "ac_gemm.h"
#include "ac_winograd.h"

#define WGRAD_SLOTS 8  /* weight-gradient slots (see weight_grad) */

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


/* ------------------------------------------------------------ packing callbacks */

/* Largest kernel tile over the paths, to size packed weights for any ISA chosen later. */
static size_t packed_floats(int M, int K)
{
    size_t f = 0;
    for (int isa = AC_ISA_GENERIC; isa <= AC_ISA_AVX512; isa++) {
        const int mr = ac_gemm_kernel_for(isa)->mr;
        f = AC_MAX(f, (size_t)K * ((M + mr - 1) / mr * mr));
    }
    return pad16(f);
}

/* Pack the M x K operand (pack, src) as A (R = MR) into dst, all K blocks; returns the view. */
#define PREPACK_PANELS 8  /* row panels per packing task */
static ac_gemm_prepacked prepack_op(float *dst, ac_gemm_pack_fn pack, const void *src, int M,
                                    int K, const ac_gemm_kernel *kr, int nt)
{
    const int MR = kr->mr, KC = ac_gemm_kc(kr, K), xpad = (M + MR - 1) / MR * MR;
    const int nkb = (K + KC - 1) / KC, nrc = (xpad / MR + PREPACK_PANELS - 1) / PREPACK_PANELS;
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && nkb * nrc > 1)
    for (int t = 0; t < nkb * nrc; t++) {
        const int k0 = t / nrc * KC, x0 = t % nrc * PREPACK_PANELS * MR, kc = AC_MIN(KC, K - k0);
        pack(src, dst + (size_t)k0 * xpad + (size_t)x0 * kc, x0,
             AC_MIN(PREPACK_PANELS * MR, M - x0), k0, kc, MR, kr);
    }
    ac_gemm_convert_prepacked(kr, dst, xpad, K, MR);
    return (ac_gemm_prepacked){dst, xpad};
}

/* The M x K matrix m as A operand. */
static ac_gemm_prepacked prepack_a(float *dst, const ac_gemm_matrix *m, int M, int K,
                                   const ac_gemm_kernel *kr, int nt)
{
    return prepack_op(dst, ac_gemm_pack_matrix, m, M, K, kr, nt);
}

/* Zero-padded input of one group split into stride x stride phase planes of Hp x Wp:
 * plane (c, a, b) at (i, j) holds padded x[c][i*stride + a][j*stride + b], so column entry
 * (c, kh, kw) at pixel (oh, ow) is plane (c, kh%stride, kw%stride) at (oh + kh/stride,
 * ow + kw/stride): the forward's B panels are then plain copies of row runs, with no
 * bounds checks and no strided loads. */
static int phase_hp(const geom *g) { return (g->H + 2 * g->pad + g->stride - 1) / g->stride; }
static int phase_wp(const geom *g) { return (g->W + 2 * g->pad + g->stride - 1) / g->stride; }
static size_t phase_floats(const geom *g)
{
    return pad16((size_t)g->Cg * g->stride * g->stride * phase_hp(g) * phase_wp(g));
}

/* Input rows t in [t0, t1) of the phase planes, t = (c*stride + a)*Hp + i (each feeds
 * stride planes). */
static void make_phase_rows(float *xp, const float *x, const geom *g, int t0, int t1)
{
    const int s = g->stride, Hp = phase_hp(g), Wp = phase_wp(g);
    for (int t = t0; t < t1; t++) {  /* one input row to its s planes while in L1 */
        const int c = t / (s * Hp), a = t / Hp % s, i = t % Hp, ih = i * s + a - g->pad;
        for (int b = 0; b < s; b++) {
            float *row = xp + (((size_t)(c * s + a) * s + b) * Hp + i) * Wp;
            if (ih < 0 || ih >= g->H) {
                zero(row, Wp);
                continue;
            }
            int jlo, jhi;  /* j with 0 <= j*s + b - pad < W */
            valid_range(b, g->W, s, g->pad, Wp, &jlo, &jhi);
            zero(row, jlo);
            gather(row + jlo, x + ((size_t)c * g->H + ih) * g->W + (jlo * s + b - g->pad),
                   jhi - jlo, s);
            zero(row + jhi, Wp - jhi);
        }
    }
}

static void make_phases(float *xp, const float *x, const geom *g)
{
    make_phase_rows(xp, x, g, 0, g->Cg * g->stride * phase_hp(g));
}

typedef struct {
    const float *xp;  /* phase planes of the group (make_phases), image after image */
    const geom *g;
    int ones;         /* 1: depth Kg is an extra row of ones (it meets the bias column of A) */
    int x0;           /* pixel of column 0 (a thread's share of the columns) */
} phase_src;

/* Offset in the phase planes of column-matrix row (c, kh, kw) at output pixel (0, 0). */
static inline size_t phase_offset(const geom *g, int c, int kh, int kw)
{
    const int s = g->stride;
    return ((size_t)(c * s + kh % s) * s + kw % s) * phase_hp(g) * phase_wp(g) +
           (size_t)(kh / s) * phase_wp(g) + kw / s;
}

/* The same for row r of the group's column matrix. */
static inline size_t phase_row(const geom *g, int r)
{
    const int KK = g->KH * g->KW;
    return phase_offset(g, r / KK, (r / g->KW) % g->KH, r % g->KW);
}

/* A run of pixels inside one output row and one panel: len floats from src offset so go
 * to panel offset d (panel q*kc*R plus lane). */
#define MAX_RUNS 128
typedef struct { size_t so, d; int len; } run;

#define CONV_AVX512_FN __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

static CONV_AVX512_FN void apply_runs_avx512(float *dst, const float *xp, const geom *g,
                                             int k0, int kc, int R, const run *rs, int nr)
{
    for (int k = 0; k < kc; k++) {
        const float *base = xp + phase_row(g, k0 + k);
        float *dk = dst + (size_t)k * R;
        for (int i = 0; i < nr; i++) {
            const float *sp = base + rs[i].so;
            float *dp = dk + rs[i].d;
            const int n = rs[i].len;
            int v = 0;
            for (; v + 16 <= n; v += 16) _mm512_storeu_ps(dp + v, _mm512_loadu_ps(sp + v));
            if (v < n) {
                const __mmask16 m = (__mmask16)((1u << (n - v)) - 1);
                _mm512_mask_storeu_ps(dp + v, m, _mm512_maskz_loadu_ps(m, sp + v));
            }
        }
    }
}

static void apply_runs(float *dst, const float *xp, const geom *g, int k0, int kc, int R,
                       const run *rs, int nr)
{
    for (int k = 0; k < kc; k++) {
        const float *base = xp + phase_row(g, k0 + k);
        float *dk = dst + (size_t)k * R;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < rs[i].len; j++) dk[rs[i].d + j] = base[rs[i].so + j];
    }
}

/* B panels of the forward from phase planes: runs of pixels cut at output rows and panels
 * are listed once, then copied for every depth k. Pixel x0 + j (x0 counted from ps->x0) is
 * pixel (x0 + j) % S of the chunk's image (x0 + j) / S. */
static void pack_phase(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                       const ac_gemm_kernel *kr)
{
    const phase_src *ps = (const phase_src *)src;
    const geom *g = ps->g;
    const int OW = g->OW, Wp = phase_wp(g), S = (int)g->S;
    const size_t pf = phase_floats(g);
    const int avx512 = kr->isa == AC_ISA_AVX512;
    const int kx = AC_MIN(kc, g->Kg - k0);  /* depths from x; a last one may be the ones row */
    run rs[MAX_RUNS];
    int nr = 0;
    x0 += ps->x0;
    for (int j = 0; j < nx;) {
        const int img = (x0 + j) / S, px = (x0 + j) % S, oh = px / OW, ow = px % OW;
        const int len = AC_MIN(AC_MIN(OW - ow, R - j % R), nx - j);
        rs[nr++] = (run){img * pf + (size_t)oh * Wp + ow, (size_t)(j / R) * kc * R + j % R, len};
        j += len;
        if (nr == MAX_RUNS || j == nx) {
            if (avx512)
                apply_runs_avx512(dst, ps->xp, g, k0, kx, R, rs, nr);
            else
                apply_runs(dst, ps->xp, g, k0, kx, R, rs, nr);
            nr = 0;
        }
    }
    if (ps->ones && kx < kc)
        for (int j = 0; j < nx; j++) dst[(size_t)(j / R) * kc * R + (size_t)kx * R + j % R] = 1.f;
    if (nx % R) {  /* zero the lanes past nx in the last panel */
        float *d = dst + (size_t)(nx / R) * kc * R;
        for (int k = 0; k < kc; k++) zero(d + (size_t)k * R + nx % R, R - nx % R);
    }
}

/* The images [n0, n1) of a slot laid end to end along the depth: k = (n - n0)*S + s. */
typedef struct {
    const float *dy;  /* dY of the group's first channel in image n0 */
    size_t ys;        /* image stride of dY */
    const geom *g;
} slot_src;

/* dY_g as an operand: rows o, depth (image, pixel). */
static void pack_dy(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                    const ac_gemm_kernel *kr)
{
    const slot_src *ss = (const slot_src *)src;
    const int S = (int)ss->g->S;
    for (int off = 0; off < kc;) {
        const int k = k0 + off, n = k / S, s = k % S, kp = AC_MIN(kc - off, S - s);
        const ac_gemm_matrix m = {ss->dy + n * ss->ys + s, (size_t)S, 1};
        for (int q = 0; q * R < nx; q++)
            ac_gemm_pack_matrix(&m, dst + (size_t)q * kc * R + (size_t)off * R, x0 + q * R,
                                AC_MIN(R, nx - q * R), 0, kp, R, kr);
        off += kp;
    }
}

/* ------------------------------------------------------------------ forward */

/* Packed weights of every group with a bias column (depth Kg + 1). */
static size_t fwd_weights_floats(const geom *g)
{
    return (size_t)g->G * packed_floats(g->Og, g->Kg + 1);
}

/* Weights of a group with the bias as column Kg (when bias), packed by the gemm. */
typedef struct {
    ac_gemm_matrix m;   /* Og x Kg */
    const float *bias;  /* the group's, or NULL */
    int Kg, Og;
} wbias_src;

static void pack_wbias(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                       const ac_gemm_kernel *kr)
{
    const wbias_src *ws = (const wbias_src *)src;
    const int kx = AC_MIN(kc, ws->Kg - k0);
    for (int q = 0; q * R < nx; q++) {
        float *d = dst + (size_t)q * kc * R;
        const int r = AC_MIN(R, nx - q * R);
        if (kx > 0) ac_gemm_pack_matrix(&ws->m, d, x0 + q * R, r, k0, kx, R, kr);
        if (kx < kc)  /* the bias row */
            for (int i = 0; i < R; i++) d[(size_t)kx * R + i] = i < r ? ws->bias[x0 + q * R + i] : 0.f;
    }
}

/* Images per gemm: small outputs (3x3 layers: 169 pixels) are put side by side along N so
 * the gemm's column panels are nearly full; the phase planes of a chunk stay modest. */
#define CHUNK_PIXELS 512
#define CHUNK_PHASE_FLOATS (1 << 20)
static int fwd_chunk(const geom *g)
{
    int c = (int)AC_MAX((size_t)1, CHUNK_PIXELS / AC_MAX(g->S, (size_t)1));
    c = (int)AC_MIN((size_t)c, AC_MAX((size_t)1, CHUNK_PHASE_FLOATS / phase_floats(g)));
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
            store_out(out + i * ys + (size_t)(gi * g->Og + o) * S + p, y + o * ld + c, len, relu);
        c += len;
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
                          int has_bias, int relu, const geom *g, const ac_gemm_kernel *kr,
                          float *xp, int nt)
{
    const size_t S = g->S, pf = phase_floats(g), HW = (size_t)g->H * g->W;
    const size_t xs = (size_t)g->C * HW, ld = (size_t)nimg * S;
    const int ch = fwd_chunk(g), rows = g->Cg * g->stride * phase_hp(g), Kd = g->Kg + has_bias;
    const int by_n = (size_t)g->Og <= ld;
    const int pn = (int)((ld + kr->nr - 1) / kr->nr), pm = (g->Og + kr->mr - 1) / kr->mr;
    float *ybuf = xp + (size_t)ch * pf;
    float *gw = ybuf + (ch > 1 ? pad16((size_t)g->Og * ch * S) : 0);
    for (int gi = 0; gi < g->G; gi++) {
        float *y = nimg > 1 ? ybuf : out + (size_t)gi * g->Og * S;
        const float *xg = x + (size_t)gi * g->Cg * HW;
        if (nt == 1) {  /* no region (entering one costs even with one thread) */
            for (int i = 0; i < nimg; i++)
                make_phases(xp + i * pf, xg + i * xs, g);
            const phase_src ps = {xp, g, has_bias, 0};
            const ac_gemm_operand B = {pack_phase, NULL, &ps};
            ac_gemm_run(kr, g->Og, (int)ld, Kd, 1.f, &wa[gi], &B, 0.f, y, (int)ld, gw, 1);
            write_out(out, y, nimg, 0, g->Og, 0, ld, relu, g, gi);
            continue;
        }
        #pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            for (int i = 0; i < nimg; i++)
                make_phase_rows(xp + i * pf, xg + i * xs, g, (int)((long)rows * t / T),
                                (int)((long)rows * (t + 1) / T));
            #pragma omp barrier
            size_t n0 = 0, n1 = ld;
            int m0 = 0, m1 = g->Og;
            if (by_n) {
                n0 = AC_MIN(ld, (size_t)(pn * t / T) * kr->nr);
                n1 = AC_MIN(ld, (size_t)(pn * (t + 1) / T) * kr->nr);
            } else {
                m0 = AC_MIN(g->Og, pm * t / T * kr->mr);
                m1 = AC_MIN(g->Og, pm * (t + 1) / T * kr->mr);
            }
            const phase_src ps = {xp, g, has_bias, (int)n0};
            const ac_gemm_rows rs = {&wa[gi], m0};
            const ac_gemm_operand A = ac_gemm_rows_of(&rs);
            const ac_gemm_operand B = {pack_phase, NULL, &ps};
            if (n1 > n0 && m1 > m0) {
                ac_gemm_run(kr, m1 - m0, (int)(n1 - n0), Kd, 1.f, &A, &B, 0.f,
                            y + (size_t)m0 * ld + n0, (int)ld,
                            gw + (size_t)t * pad16(ac_sgemm_work_floats(1)), 1);
                write_out(out, y, nimg, m0, m1, n0, n1, relu, g, gi);
            }
        }
    }
}

/* Images [n0, n1) in chunks. */
static void forward_images(float *out, const float *x, int n0, int n1, const ac_gemm_operand *wa,
                           int has_bias, int relu, const geom *g, const ac_gemm_kernel *kr,
                           float *tw, int nt)
{
    const size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->S;
    const int ch = fwd_chunk(g);
    for (int n = n0; n < n1; n += ch)
        forward_chunk(out + n * ys, x + n * xs, AC_MIN(ch, n1 - n), wa, has_bias, relu, g, kr, tw,
                      nt);
}

/* Work: packed weights of every group, then per thread: phase planes and output staging of
 * a chunk, gemm scratch. */
static size_t fwd_thread_floats(const geom *g, int gemm_nt)
{
    const int ch = fwd_chunk(g);
    return (size_t)ch * phase_floats(g) + (ch > 1 ? pad16((size_t)g->Og * ch * g->S) : 0) +
           (size_t)gemm_nt * pad16(ac_sgemm_work_floats(1));  /* a one-thread gemm each */
}
/* 3x3 stride 1 pad 1 goes to Winograd F(2x2, 3x3) (csrc/winograd.c) where it measured faster
 * (AlexNet's 13x13 layers: 1.6-1.8x at batch 32-128, 1.1-1.2x at 2 images; at 1 image the
 * weight transform eats the gain unless it was done ahead (pretransformed: packed weights),
 * then 1.2-1.35x); AC_CONV_WINOGRAD=0 (never) or 1 (always) overrides. */
static int use_winograd(const geom *g, int pretransformed)
{
    if (g->KH != 3 || g->KW != 3 || g->stride != 1 || g->pad != 1) return 0;
    const char *e = getenv("AC_CONV_WINOGRAD");
    if (e && *e) return *e != '0';
    return g->Cg >= 16 && g->Og >= 16 &&
           (pretransformed || (long)g->N * ((g->H + 1) / 2) * ((g->W + 1) / 2) >= 96);
}
static size_t forward_floats(const geom *g, int nt)
{
    const size_t f = fwd_weights_floats(g) + AC_MAX(fwd_thread_floats(g, nt),
                                                    (size_t)nt * fwd_thread_floats(g, 1));
    return use_winograd(g, 0) ? AC_MAX(f, ac_winograd3x3_work_floats(g->N, g->C, g->H, g->W, g->O,
                                                                  g->G, nt)) : f;
}

/* Every image, with the weights of group gi as operand wa[gi] (depth Kg + has_bias), then
 * the ReLU when relu; tw is the per-thread part of the work (fwd_thread_floats each). */
static void forward_run(float *out, const float *x, const ac_gemm_operand *wa, int has_bias,
                        int relu, const geom *g, const ac_gemm_kernel *kr, float *tw, int nt)
{
    const int nfull = nt > 1 ? g->N / nt * nt : 0;
    if (nfull > 0) {
        const size_t per = fwd_thread_floats(g, 1);
        #pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            forward_images(out, x, (int)((long)nfull * t / T), (int)((long)nfull * (t + 1) / T),
                           wa, has_bias, relu, g, kr, tw + (size_t)t * per, 1);
        }
    }
    forward_images(out, x, nfull, g->N, wa, has_bias, relu, g, kr, tw, nt);
}

static wbias_src wbias_of(const float *w, const float *bias, const geom *g, int gi)
{
    return (wbias_src){{w + (size_t)gi * g->Og * g->Kg, (size_t)g->Kg, 1},
                       bias ? bias + gi * g->Og : NULL, g->Kg, g->Og};
}

/* The forward with weights w (O, Cg, KH, KW), on geometry g. */
static void forward(float *out, const float *x, const float *w, const float *bias,
                    const geom *g, float *work, int nt)
{
    if (use_winograd(g, 0)) {
        ac_winograd3x3(out, x, w, bias, g->N, g->C, g->H, g->W, g->O, g->G, work, nt);
        return;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ac_get_isa());
    const int G1 = g->G > 0 ? g->G : 1;
    ac_gemm_prepacked wp[G1];
    wbias_src ws[G1];
    ac_gemm_operand wa[G1];
    /* The bias rides as one more depth step: weights get a bias column, B a row of ones, so
     * the output is written once (no fill, no beta = 1 pass). Weights are packed once here
     * when several gemms use them, else by the gemm itself (each thread its own rows). */
    const int Kd = g->Kg + (bias != NULL), ch = fwd_chunk(g);
    const int direct = (g->N + ch - 1) / ch <= 2;
    const size_t wpf = packed_floats(g->Og, g->Kg + 1);
    for (int gi = 0; gi < g->G; gi++) {
        ws[gi] = wbias_of(w, bias, g, gi);
        if (direct) {
            wa[gi] = (ac_gemm_operand){pack_wbias, NULL, &ws[gi]};
            continue;
        }
        wp[gi] = prepack_op(work + gi * wpf, pack_wbias, &ws[gi], g->Og, Kd, kr, nt);
        wa[gi] = (ac_gemm_operand){NULL, ac_gemm_prepacked_at, &wp[gi]};
    }
    forward_run(out, x, wa, bias != NULL, 0, g, kr, work + fwd_weights_floats(g), nt);
}

size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                     int stride, int pad, int groups, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    return forward_floats(&g, AC_MAX(nthreads, 1));
}

void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                       int N, int C, int H, int W, int O, int KH, int KW,
                       int stride, int pad, int groups, float *work, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    if (N <= 0) return;
    forward(out, x, weight, bias, &g, work, AC_MAX(nthreads, 1));
}

/* Pre-packed weights: a header of PACKED_HEADER floats holding what they were packed for
 * (ints: magic, ISA path, O, Cg, KH, KW, groups, has_bias), then each group's weights with
 * the bias column packed as the A operand of that path (prepack_op layout, depth Kd); 3x3
 * weights also Winograd-transformed for that path, then the bias, for the forwards that take
 * Winograd. */
#define PACKED_HEADER 16
#define PACKED_MAGIC 0x41435057  /* "ACPW" */
enum { PH_MAGIC, PH_ISA, PH_O, PH_CG, PH_KH, PH_KW, PH_G, PH_BIAS, PH_PREC, PH_N };

static size_t wino_floats(const geom *g)
{
    return g->KH == 3 && g->KW == 3 ?
        pad16(ac_winograd3x3_weights_floats(g->C, g->O, g->G)) + pad16((size_t)g->O) : 0;
}

size_t ac_conv2d_packed_weights_floats(int C, int O, int KH, int KW, int groups)
{
    const geom g = make_geom(1, C, KH, KW, O, KH, KW, 1, 0, groups);
    return PACKED_HEADER + fwd_weights_floats(&g) + wino_floats(&g);
}

void ac_conv2d_pack_weights(float *packed, const float *weight, const float *bias,
                            int C, int O, int KH, int KW, int groups, int nthreads)
{
    const geom g = make_geom(1, C, KH, KW, O, KH, KW, 1, 0, groups);
    const int isa = ac_get_isa(), has_bias = bias != NULL;
    const int h[PH_N] = {PACKED_MAGIC, isa, O, g.Cg, KH, KW, groups, has_bias,
                         ac_get_precision()};
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(isa);
    const size_t wpf = packed_floats(g.Og, g.Kg + 1);
    memset(packed, 0, PACKED_HEADER * sizeof(float));
    memcpy(packed, h, sizeof h);
    for (int gi = 0; gi < groups; gi++) {
        const wbias_src ws = wbias_of(weight, bias, &g, gi);
        prepack_op(packed + PACKED_HEADER + gi * wpf, pack_wbias, &ws, g.Og, g.Kg + has_bias, kr,
                   AC_MAX(nthreads, 1));
    }
    if (wino_floats(&g)) {
        float *u = packed + PACKED_HEADER + fwd_weights_floats(&g);
        ac_winograd3x3_transform_weights(u, weight, C, O, groups, AC_MAX(nthreads, 1));
        if (bias)
            memcpy(u + pad16(ac_winograd3x3_weights_floats(C, O, groups)), bias,
                   (size_t)O * sizeof(float));
    }
}

size_t ac_conv2d_forward_packed_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                            int stride, int pad, int groups, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    nthreads = AC_MAX(nthreads, 1);
    const size_t f = AC_MAX(fwd_thread_floats(&g, nthreads),
                            (size_t)nthreads * fwd_thread_floats(&g, 1));
    return use_winograd(&g, 1) ? AC_MAX(f, ac_winograd3x3_work_floats(N, C, H, W, O, groups,
                                                                   nthreads)) : f;
}

int ac_conv2d_forward_packed(float *out, const float *x, const float *packed,
                             int N, int C, int H, int W, int O, int KH, int KW,
                             int stride, int pad, int groups, int relu, float *work,
                             int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    int h[PH_N];
    memcpy(h, packed, sizeof h);
    if (h[PH_MAGIC] != PACKED_MAGIC || h[PH_ISA] != ac_get_isa() ||
        h[PH_PREC] != ac_get_precision() || h[PH_O] != O ||
        h[PH_CG] != g.Cg || h[PH_KH] != KH || h[PH_KW] != KW || h[PH_G] != groups)
        return -1;
    if (N <= 0) return 0;
    const int has_bias = h[PH_BIAS] != 0;
    if (use_winograd(&g, 1)) {  /* U transformed at packing, then the ReLU */
        const float *u = packed + PACKED_HEADER + fwd_weights_floats(&g);
        const float *b = u + pad16(ac_winograd3x3_weights_floats(C, O, groups));
        ac_winograd3x3_pretransformed(out, x, u, has_bias ? b : NULL, N, C, H, W, O, groups,
                                      work, AC_MAX(nthreads, 1));
        if (relu) ac_relu_forward(out, out, (ptrdiff_t)N * O * (ptrdiff_t)g.S, AC_MAX(nthreads, 1));
        return 0;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(h[PH_ISA]);
    const size_t wpf = packed_floats(g.Og, g.Kg + 1);
    const int G1 = groups > 0 ? groups : 1;
    ac_gemm_prepacked wp[G1];
    ac_gemm_operand wa[G1];
    for (int gi = 0; gi < groups; gi++) {
        wp[gi] = (ac_gemm_prepacked){packed + PACKED_HEADER + gi * wpf,
                                     (g.Og + kr->mr - 1) / kr->mr * kr->mr};
        wa[gi] = (ac_gemm_operand){NULL, ac_gemm_prepacked_at, &wp[gi]};
    }
    forward_run(out, x, wa, has_bias, relu, &g, kr, work, AC_MAX(nthreads, 1));
    return 0;
}

/* ----------------------------------------------------------------- backward */

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
 * small, else blocks of about COLS_BLOCK_FLOATS (in L2 for col2im), at least MIN_BLOCK_COLS. */
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

/* col2im of columns [s0, s1) of one group of one image into its phase planes xp (the
 * adjoint of reading B panels from them: contiguous adds, no bounds checks), whole channels
 * per thread. */
static void col2phase_group(float *xp, const float *cols, const geom *g, size_t s0, size_t s1,
                            int nt)
{
    const size_t ld = s1 - s0;
    const int Wp = phase_wp(g), OW = g->OW;
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < g->Cg; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                const float *d = cols + ((size_t)(c * g->KH + kh) * g->KW + kw) * ld;
                float *base = xp + phase_offset(g, c, kh, kw);
                for (size_t p = s0; p < s1;) {
                    const int oh = (int)(p / OW), ow = (int)(p % OW);
                    const int len = (int)AC_MIN((size_t)(OW - ow), s1 - p);
                    float *t = base + (size_t)oh * Wp + ow;
                    const float *u = d + (p - s0);
                    for (int i = 0; i < len; i++) t[i] += u[i];
                    p += (size_t)len;
                }
            }
}

/* dx of a group = the phase planes without the padding (the adjoint of make_phases). */
static void unphase_group(float *dxg, const float *xp, const geom *g, int nt)
{
    const int s = g->stride, Hp = phase_hp(g), Wp = phase_wp(g);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < g->Cg; c++)
        for (int ih = 0; ih < g->H; ih++) {
            const int a = (ih + g->pad) % s, i = (ih + g->pad) / s;
            float *row = dxg + ((size_t)c * g->H + ih) * g->W;
            for (int b = 0; b < s; b++) {  /* columns iw = j*s + b - pad */
                const float *pr = xp + (((size_t)(c * s + a) * s + b) * Hp + i) * Wp;
                int jlo, jhi;
                valid_range(b, g->W, s, g->pad, Wp, &jlo, &jhi);
                for (int j = jlo; j < jhi; j++) row[(size_t)j * s + b - g->pad] = pr[j];
            }
        }
}

/* Per-thread scratch of the strided input gradient: phase planes, a column block, the
 * gemm's scratch. */
static size_t dxcol_thread_floats(const geom *g, int gemm_nt)
{
    return phase_floats(g) + pad16((size_t)g->Kg * col_block(g)) +
           pad16(ac_sgemm_work_floats(gemm_nt));
}

/* dx of one image = col2im(W^T . dY), W_g^T packed once (wt). */
static void dx_image_cols(float *dx, const float *dout, const ac_gemm_prepacked *wt,
                          const geom *g, const ac_gemm_kernel *kr, float *xp, int nt)
{
    const size_t S = g->S, sb = col_block(g), pf = phase_floats(g);
    float *cols = xp + pf, *gw = cols + pad16((size_t)g->Kg * sb);
    for (int gi = 0; gi < g->G; gi++) {
        const float *dy = dout + (size_t)gi * g->Og * S;
        memset(xp, 0, pf * sizeof(float));
        for (size_t s0 = 0; s0 < S; s0 += sb) {
            const size_t s1 = AC_MIN(s0 + sb, S);
            const int w = (int)(s1 - s0);
            const ac_gemm_matrix bm = {dy + s0, 1, S};
            const ac_gemm_operand A = {NULL, ac_gemm_prepacked_at, &wt[gi]};
            const ac_gemm_operand B = {ac_gemm_pack_matrix, NULL, &bm};
            ac_gemm_run(kr, g->Kg, w, g->Og, 1.f, &A, &B, 0.f, cols, w, gw, nt);
            col2phase_group(xp, cols, g, s0, s1, nt);
        }
        unphase_group(dx + (size_t)gi * g->Cg * g->H * g->W, xp, g, nt);
    }
}

static size_t dx_floats(const geom *g, int nt)
{
    if (dx_as_forward(g)) {
        const geom d = dx_geom(g);
        return pad16((size_t)g->O * g->Kg) + forward_floats(&d, nt);
    }
    return (size_t)g->G * packed_floats(g->Kg, g->Og) +
           AC_MAX(dxcol_thread_floats(g, nt), (size_t)nt * dxcol_thread_floats(g, 1));
}

static void input_grad(float *dx, const float *dout, const float *weight, const geom *g,
                       float *work, int nt)
{
    const int KK = g->KH * g->KW;
    if (dx_as_forward(g)) {
        const geom d = dx_geom(g);
        float *wf = work;  /* wf[gi*Cg + c][o][kh][kw] = w[gi*Og + o][c][KH-1-kh][KW-1-kw] */
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int gc = 0; gc < g->C; gc++) {
            const int gi = gc / g->Cg, c = gc % g->Cg;
            for (int o = 0; o < g->Og; o++) {
                const float *s = weight + ((size_t)(gi * g->Og + o) * g->Cg + c) * KK;
                float *t = wf + ((size_t)gc * g->Og + o) * KK;
                for (int i = 0; i < KK; i++) t[i] = s[KK - 1 - i];
            }
        }
        forward(dx, dout, wf, NULL, &d, work + pad16((size_t)g->O * g->Kg), nt);
        return;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ac_get_isa());
    ac_gemm_prepacked wt[g->G > 0 ? g->G : 1];
    const size_t wpf = packed_floats(g->Kg, g->Og);
    for (int gi = 0; gi < g->G; gi++) {  /* A = W_g^T: rows (c, kh, kw), depth o */
        const ac_gemm_matrix m = {weight + (size_t)gi * g->Og * g->Kg, 1, (size_t)g->Kg};
        wt[gi] = prepack_a(work + gi * wpf, &m, g->Kg, g->Og, kr, nt);
    }
    float *tw = work + (size_t)g->G * wpf;
    const size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->S;
    const int nfull = nt > 1 ? g->N / nt * nt : 0;
    if (nfull > 0) {
        const size_t per = dxcol_thread_floats(g, 1);
        #pragma omp parallel num_threads(nt)
        {
            float *cols = tw + (size_t)omp_get_thread_num() * per;
            #pragma omp for schedule(static)
            for (int n = 0; n < nfull; n++)
                dx_image_cols(dx + n * xs, dout + n * ys, wt, g, kr, cols, 1);
        }
    }
    for (int n = nfull; n < g->N; n++)
        dx_image_cols(dx + n * xs, dout + n * ys, wt, g, kr, tw, nt);
}

/* ----------------------------------------------------------- weight gradient */

/* Packing the column matrix as B panels of dW = dY . cols^T means transposing it (its rows
 * (c, kh, kw) run along the pixels, the gemm wants them across); for conv1 (dW 64 x 363)
 * that cost as much as the multiply. Instead dWt' = cols' . dY^T, the rows permuted to
 * r' = (kh, kw, c): for one kh they lie side by side in the zero-padded input stored
 * channel last, xh[ih][iw][c], so each A panel (MR rows r' at each pixel) is at most a few
 * plain copies; dY^T (its o being few against the Kg rows) goes through the plain
 * transposing packer. The bias gradient is summed (in double) from the same images of the
 * slot, which also brings their dY into cache for the gemm. */
static float *align64(float *p) { return (float *)(((size_t)p + 63) & ~(size_t)63); }

typedef struct {
    const float *xh;  /* (H + 2pad) x (W + 2pad) x Cg, image after image */
    size_t xs;        /* floats from one image's to the next */
    const geom *g;
} hwc_src;


static int hwc_wq(const geom *g) { return g->W + 2 * g->pad; }
static size_t hwc_floats(const geom *g)
{
    return (size_t)(g->H + 2 * g->pad) * hwc_wq(g) * g->Cg;
}

/* The zero border of xh (make_hwc writes the interior). */
static void zero_hwc_border(float *xh, const geom *g)
{
    const int Wq = hwc_wq(g), Cg = g->Cg, p = g->pad;
    zero(xh, p * Wq * Cg);
    zero(xh + (size_t)(p + g->H) * Wq * Cg, p * Wq * Cg);
    for (int ih = p; ih < p + g->H; ih++) {
        zero(xh + (size_t)ih * Wq * Cg, p * Cg);
        zero(xh + ((size_t)ih * Wq + p + g->W) * Cg, p * Cg);
    }
}

/* The interior of xh from x of one image and group. */
static inline __attribute__((always_inline)) void
make_hwc_body(float *restrict xh, const float *restrict x, const geom *g)
{
    const int Wq = hwc_wq(g), Cg = g->Cg, W = g->W;
    for (int ih = 0; ih < g->H; ih++) {
        float *d = xh + ((size_t)(ih + g->pad) * Wq + g->pad) * Cg;
        const float *s = x + (size_t)ih * W;
        const size_t cs = (size_t)g->H * W;
        if (Cg == 3)  /* conv1: constant strides vectorise */
            for (int iw = 0; iw < W; iw++) {
                d[3 * iw] = s[iw];
                d[3 * iw + 1] = s[cs + iw];
                d[3 * iw + 2] = s[2 * cs + iw];
            }
        else
            for (int c = 0; c < Cg; c++)
                for (int iw = 0; iw < W; iw++) d[(size_t)iw * Cg + c] = s[c * cs + iw];
    }
}
static void make_hwc(float *xh, const float *x, const geom *g) { make_hwc_body(xh, x, g); }
static CONV_AVX512_FN void make_hwc_avx512(float *xh, const float *x, const geom *g)
{
    make_hwc_body(xh, x, g);
}

/* Pixel k0 + k's window corner in xh, k < kc. */
static void hwc_offsets(size_t *off, const geom *g, size_t xs, int k0, int kc)
{
    const int OW = g->OW, OH = g->OH, S = (int)g->S, sc = g->stride * g->Cg, Wq = hwc_wq(g);
    int n = k0 / S, oh = k0 % S / OW, ow = k0 % OW;
    for (int k = 0; k < kc; k++) {
        off[k] = n * xs + ((size_t)oh * Wq + ow) * sc;
        if (++ow == OW) {
            ow = 0;
            if (++oh == OH) oh = 0, n++;
        }
    }
}

/* Images per gemm: enough pixels for several depth blocks, their xh in about 4 MB. */
#define HWC_PIXELS 2048
static int hwc_chunk(const geom *g)
{
    const size_t c = AC_MIN((HWC_PIXELS + g->S - 1) / g->S,
                            AC_MAX((size_t)1, CHUNK_PHASE_FLOATS / hwc_floats(g)));
    return (int)AC_MAX((size_t)1, AC_MIN(c, (size_t)AC_MAX(g->N, 1)));
}

/* A = cols': rows r' (x0..), depth = pixels (k0..): each panel in pieces of one kh, each
 * a plain copy per pixel. */
#define HWC_PANELS(COPY)                                                                   \
    const hwc_src *hs = (const hwc_src *)src;                                              \
    const geom *g = hs->g;                                                                 \
    const int Cg = g->Cg, Wq = hwc_wq(g), KWC = g->KW * Cg;                                \
    size_t off[kc];                                                                        \
    hwc_offsets(off, g, hs->xs, k0, kc);                                                   \
    for (int q = 0; q * R < nx; q++) {                                                     \
        float *d = dst + (size_t)q * kc * R;                                               \
        const int rb = x0 + q * R, rn = AC_MIN(R, nx - q * R);                             \
        for (int i = 0; i < rn;) {                                                         \
            const int r = rb + i, kh = r / KWC, rem = r % KWC, len = AC_MIN(rn - i, KWC - rem); \
            const float *base = hs->xh + (size_t)kh * Wq * Cg + rem;                       \
            COPY;                                                                          \
            i += len;                                                                      \
        }                                                                                  \
        if (rn < R)                                                                        \
            for (int k = 0; k < kc; k++) zero(d + (size_t)k * R + rn, R - rn);             \
    }

static CONV_AVX512_FN void pack_hwc_avx512(const void *src, float *dst, int x0, int nx,
                                           int k0, int kc, int R)
{
    HWC_PANELS(
        for (int j = 0; j < len; j += 16) {
            const __mmask16 m = (__mmask16)((1u << AC_MIN(16, len - j)) - 1);
            for (int k = 0; k < kc; k++)
                _mm512_mask_storeu_ps(d + (size_t)k * R + i + j, m,
                                      _mm512_maskz_loadu_ps(m, base + off[k] + j));
        })
}

static void pack_hwc(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr)
{
    if (kr->isa == AC_ISA_AVX512) {
        pack_hwc_avx512(src, dst, x0, nx, k0, kc, R);
        return;
    }
    HWC_PANELS(
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < len; j++) d[(size_t)k * R + i + j] = base[off[k] + j])
}
#undef HWC_PANELS

/* lanes[i % 8] += s[i], in double. */
static void sum_lanes(const float *s, int n, double *lanes)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += s[i + j];
    for (; i < n; i++) lanes[i & 7] += s[i];
}
static CONV_AVX512_FN void sum_lanes_avx512(const float *s, int n, double *lanes)
{
    __m512d a0 = _mm512_loadu_pd(lanes), a1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) {  /* two chains, one for each half */
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(s + i)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(s + i + 8)));
    }
    a0 = _mm512_add_pd(a0, a1);
    for (; i + 8 <= n; i += 8) a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(s + i)));
    if (i < n) {
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        a0 = _mm512_mask_add_pd(a0, m, a0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, s + i)));
    }
    _mm512_storeu_pd(lanes, a0);
}

/* Slot buffers of the channel-last path: dWt', then the bias-gradient lanes. */
static size_t hwc_slot_floats(const geom *g)
{
    return pad16((size_t)g->O * g->Kg) + (size_t)g->O * 16;
}

static size_t hwc_thread_floats(const geom *g, int gemm_nt)
{
    return (size_t)hwc_chunk(g) * pad16(hwc_floats(g)) + pad16(ac_sgemm_work_floats(gemm_nt)) +
           16;
}

/* ct = dWt' of slot s of P (per group Kg x Og, rows r', group after group); bl (when not
 * NULL) = the slot's bias-gradient lanes, O x 8 doubles. */
static void wgrad_hwc_slot(float *ct, double *bl, int s, int P, const float *dout,
                           const float *x, const geom *g, float *tw, int nt)
{
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ac_get_isa());
    const size_t HW = (size_t)g->H * g->W, xs = (size_t)g->C * HW, ys = (size_t)g->O * g->S;
    const size_t hs_ = pad16(hwc_floats(g));
    const int S = (int)g->S, avx512 = kr->isa == AC_ISA_AVX512, ch = hwc_chunk(g);
    const int n0 = (int)((long)g->N * s / P), n1 = (int)((long)g->N * (s + 1) / P);
    float *xh = align64(tw), *gw = xh + (size_t)ch * hs_;
    for (int i = 0; i < AC_MIN(ch, n1 - n0); i++) zero_hwc_border(xh + i * hs_, g);
    if (bl) memset(bl, 0, (size_t)g->O * 8 * sizeof(double));
    for (int gi = 0; gi < g->G; gi++)
        for (int n = n0; n < n1; n += ch) {
            const int cn = AC_MIN(ch, n1 - n);
            for (int i = 0; i < cn; i++) {
                const float *xi = x + (n + i) * xs + (size_t)gi * g->Cg * HW;
                const float *dy = dout + (n + i) * ys + (size_t)gi * g->Og * S;
                if (avx512)
                    make_hwc_avx512(xh + i * hs_, xi, g);
                else
                    make_hwc(xh + i * hs_, xi, g);
                if (bl)
                    for (int o = 0; o < g->Og; o++) {
                        double *l = bl + (size_t)(gi * g->Og + o) * 8;
                        if (avx512)
                            sum_lanes_avx512(dy + (size_t)o * S, S, l);
                        else
                            sum_lanes(dy + (size_t)o * S, S, l);
                    }
            }
            const hwc_src hs = {xh, hs_, g};
            const slot_src ys_ = {dout + n * ys + (size_t)gi * g->Og * S, ys, g};
            const ac_gemm_operand A = {pack_hwc, NULL, &hs};
            const ac_gemm_operand B = {pack_dy, NULL, &ys_};
            ac_gemm_run(kr, g->Kg, g->Og, cn * S, 1.f, &A, &B, n == n0 ? 0.f : 1.f,
                        ct + (size_t)gi * g->Kg * g->Og, g->Og, gw, nt);
        }
}

/* The weight gradient is summed over images in min(N, WGRAD_SLOTS) contiguous slots, each
 * into its own buffer by gemms whose depth runs over the pixels of several images; the
 * buffers are then added in slot order: the partition and the order of every sum depend on
 * N and the geometry only, never on the thread count or timing. */
static int wgrad_slots(int N) { return AC_MIN(N, WGRAD_SLOTS); }

/* Work: the slot buffers, then per thread its scratch. */
static size_t wgrad_floats(const geom *g, int nt)
{
    return (size_t)wgrad_slots(g->N) * hwc_slot_floats(g) +
           AC_MAX((size_t)nt * hwc_thread_floats(g, 1), hwc_thread_floats(g, nt));
}

/* dweight (and dbias when not NULL) += the sum of the slots' gradients (transposed). */
static void weight_grad(float *dweight, float *dbias, const float *dout, const float *x,
                        const geom *g, float *work, int nt)
{
    const int P = wgrad_slots(g->N), pfull = nt > 1 ? P / nt * nt : 0;
    const size_t wstride = hwc_slot_floats(g), bo = pad16((size_t)g->O * g->Kg);
    const size_t per = hwc_thread_floats(g, 1);
    float *parts = work, *tw = work + (size_t)P * wstride;
#define SLOT(s) parts + (s) * wstride, dbias ? (double *)(parts + (s) * wstride + bo) : NULL, s
    if (pfull > 0) {
        #pragma omp parallel num_threads(nt)
        {
            float *xh = tw + (size_t)omp_get_thread_num() * per;
            #pragma omp for schedule(static)
            for (int s = 0; s < pfull; s++)
                wgrad_hwc_slot(SLOT(s), P, dout, x, g, xh, 1);
        }
    }
    for (int s = pfull; s < P; s++)  /* threaded gemms */
        wgrad_hwc_slot(SLOT(s), P, dout, x, g, tw, nt);
#undef SLOT
    const long wsz = (long)g->O * g->Kg, B = 4096;
    #pragma omp parallel for num_threads(nt) schedule(static) if (P > 1)
    for (long b = 0; b < wsz; b += B)  /* part_0 = the slots' sum, in slot order */
        for (int s = 1; s < P; s++) {
            const float *q = parts + s * wstride + b;
            for (long i = 0; i < AC_MIN(B, wsz - b); i++) parts[b + i] += q[i];
        }
    const int Og = g->Og, Kg = g->Kg, KK = g->KH * g->KW, OB = 16;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int go0 = 0; go0 < g->O; go0 += OB) {  /* dweight[gi*Og + o][r] += part_0[gi][r'][o] */
        const int go1 = AC_MIN(go0 + OB, g->O);
        for (int r = 0; r < Kg; r++) {
            const size_t rp = (size_t)(r % KK * g->Cg + r / KK) * Og;
            for (int go = go0; go < go1; go++)
                dweight[(size_t)go * Kg + r] += parts[(size_t)(go / Og) * Og * Kg + rp + go % Og];
        }
        if (dbias)
            for (int go = go0; go < go1; go++) {
                double v = 0;
                for (int s = 0; s < P; s++) {
                    const double *l = (const double *)(parts + s * wstride + bo) + (size_t)go * 8;
                    v += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
                }
                dbias[go] += (float)v;
            }
    }
}

/* acc[j] += p[i + j] over whole groups of 8 (the bias-gradient lanes, same order as the
 * scalar loop); returns how many floats it took. */
static CONV_AVX512_FN size_t sum8_avx512(double acc[8], const float *p, size_t S)
{
    __m512d a = _mm512_loadu_pd(acc);
    size_t i = 0;
    for (; i + 8 <= S; i += 8) a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm256_loadu_ps(p + i)));
    _mm512_storeu_pd(acc, a);
    return i;
}

size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                      int stride, int pad, int groups, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    return AC_MAX(wgrad_floats(&g, nt), dx_floats(&g, nt));
}

void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                        const float *x, const float *weight,
                        int N, int C, int H, int W, int O, int KH, int KW,
                        int stride, int pad, int groups, float *work, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    const size_t S = g.S;

    if (dweight && N > 0) {  /* the bias gradient comes with the weight gradient */
        weight_grad(dweight, dbias, dout, x, &g, work, nt);
        dbias = NULL;
    }
    if (dbias) {  /* alone (no dweight) */
        /* One thread per channel, eight fixed lanes: the sum order depends on nothing else. */
        const int avx512 = ac_get_isa() == AC_ISA_AVX512;
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int o = 0; o < O; o++) {
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int n = 0; n < N; n++) {
                const float *p = dout + ((size_t)n * O + o) * S;
                size_t i = avx512 ? sum8_avx512(acc, p, S) : 0;
                for (; i + 8 <= S; i += 8)
                    for (int j = 0; j < 8; j++) acc[j] += p[i + j];
                for (; i < S; i++) acc[i & 7] += p[i];
            }
            dbias[o] += (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                                ((acc[4] + acc[5]) + (acc[6] + acc[7])));
        }
    }
    if (N <= 0) return;
    if (dx) input_grad(dx, dout, weight, &g, work, nt);
}
