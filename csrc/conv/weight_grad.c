/* Convolution weight gradient: dW_g^T (+)= cols'_g . dY_g^T per slot of images, the depth
 * running over their pixels, the column rows reordered (kh, kw, c): A panels are copies
 * from the zero-padded input stored channel last (no phase planes, no transposing), B panels
 * dY transposed by the plain packer; the bias gradient is summed alongside.
 *
 * Threads (nt): the first floor(P/nt)*nt of the P slots are shared out whole, each thread
 * running one-thread gemms with its own scratch; the rest run one at a time with threaded
 * gemms (ac_items_run). */
#include <string.h>

#include "ac_parallel.h"
#include "geom.h"

#define AC_CONV_WGRAD_SLOTS 8 /* weight-gradient slots (see conv_weight_grad) */

/* The images [n0, n1) of a slot laid end to end along the depth: k = (n - n0)*S + s. */
typedef struct {
    const float *dy; /* dY of the group's first channel in image n0 */
    size_t ys; /* image stride of dY */
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

/* Packing the column matrix as B panels of dW = dY . cols^T means transposing it (its rows
 * (c, kh, kw) run along the pixels, the gemm wants them across); for conv1 (dW 64 x 363)
 * that cost as much as the multiply. Instead dWt' = cols' . dY^T, the rows permuted to
 * r' = (kh, kw, c): for one kh they lie side by side in the zero-padded input stored
 * channel last, xh[ih][iw][c], so each A panel (MR rows r' at each pixel) is at most a few
 * plain copies; dY^T (its o being few against the Kg rows) goes through the plain
 * transposing packer. The bias gradient is summed (in double) from the same images of the
 * slot, which also brings their dY into cache for the gemm. */
typedef struct {
    const float *xh; /* (H + 2pad) x (W + 2pad) x Cg, image after image */
    size_t xs; /* floats from one image's to the next */
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
AC_INLINE void make_hwc_body(float *restrict xh, const float *restrict x, const geom *g)
{
    const int Wq = hwc_wq(g), Cg = g->Cg, W = g->W;
    for (int ih = 0; ih < g->H; ih++) {
        float *d = xh + ((size_t)(ih + g->pad) * Wq + g->pad) * Cg;
        const float *s = x + (size_t)ih * W;
        const size_t cs = (size_t)g->H * W;
        if (Cg == 3) /* conv1: constant strides vectorise */
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
static void make_hwc_generic(float *xh, const float *x, const geom *g)
{
    make_hwc_body(xh, x, g);
}
#ifdef AC_X86_64
static AC_TARGET_AVX512 void make_hwc_avx512(float *xh, const float *x, const geom *g)
{
    make_hwc_body(xh, x, g);
}
#endif
#define make_hwc_avx2 make_hwc_generic
#define make_hwc_neon make_hwc_generic

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
#define AC_CONV_HWC_PIXELS 2048
#define AC_CONV_HWC_CHUNK_FLOATS (1 << 20)
static int hwc_chunk(const geom *g)
{
    const size_t c = AC_MIN((AC_CONV_HWC_PIXELS + g->S - 1) / g->S,
                            AC_MAX((size_t)1, AC_CONV_HWC_CHUNK_FLOATS / hwc_floats(g)));
    return (int)AC_MAX((size_t)1, AC_MIN(c, (size_t)AC_MAX(g->N, 1)));
}

/* A = cols': rows r' (x0..), depth = pixels (k0..): each panel in pieces of one kh, each
 * a plain copy per pixel. */
#define HWC_PANELS(COPY)                                                                       \
    const hwc_src *hs = (const hwc_src *)src;                                                  \
    const geom *g = hs->g;                                                                     \
    const int Cg = g->Cg, Wq = hwc_wq(g), KWC = g->KW * Cg;                                    \
    size_t off[kc];                                                                            \
    hwc_offsets(off, g, hs->xs, k0, kc);                                                       \
    for (int q = 0; q * R < nx; q++) {                                                         \
        float *d = dst + (size_t)q * kc * R;                                                   \
        const int rb = x0 + q * R, rn = AC_MIN(R, nx - q * R);                                 \
        for (int i = 0; i < rn;) {                                                             \
            const int r = rb + i, kh = r / KWC, rem = r % KWC,                                 \
                      len = AC_MIN(rn - i, KWC - rem);                                         \
            const float *base = hs->xh + (size_t)kh * Wq * Cg + rem;                           \
            COPY;                                                                              \
            i += len;                                                                          \
        }                                                                                      \
        if (rn < R)                                                                            \
            for (int k = 0; k < kc; k++) zero(d + (size_t)k * R + rn, R - rn);                 \
    }

#ifdef AC_X86_64
static AC_TARGET_AVX512 void pack_hwc_avx512(const void *src, float *dst, int x0, int nx,
                                             int k0, int kc, int R)
{
    HWC_PANELS(for (int j = 0; j < len; j += 16) {
        const __mmask16 m = (__mmask16)((1u << AC_MIN(16, len - j)) - 1);
        for (int k = 0; k < kc; k++)
            _mm512_mask_storeu_ps(d + (size_t)k * R + i + j, m,
                                  _mm512_maskz_loadu_ps(m, base + off[k] + j));
    })
}
#endif

static void pack_hwc(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr)
{
#ifdef AC_X86_64
    if (kr->isa == AC_ISA_AVX512) {
        pack_hwc_avx512(src, dst, x0, nx, k0, kc, R);
        return;
    }
#endif
    HWC_PANELS(for (int k = 0; k < kc; k++) for (int j = 0; j < len; j++)
                   d[(size_t)k * R + i + j] = base[off[k] + j])
}
#undef HWC_PANELS

/* lanes[i % 8] += s[i], in double. */
static void sum_lanes_generic(const float *s, int n, double *lanes)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += s[i + j];
    for (; i < n; i++) lanes[i & 7] += s[i];
}
#ifdef AC_X86_64
static AC_TARGET_AVX512 void sum_lanes_avx512(const float *s, int n, double *lanes)
{
    __m512d a0 = _mm512_loadu_pd(lanes), a1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) { /* two chains, one for each half */
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
#endif
#define sum_lanes_avx2 sum_lanes_generic
#define sum_lanes_neon sum_lanes_generic

/* Slot buffers of the channel-last path: dWt', then the bias-gradient lanes. */
static size_t hwc_slot_floats(const geom *g)
{
    return ac_pad16((size_t)g->O * g->Kg) + (size_t)g->O * 16;
}

static size_t hwc_thread_floats(const geom *g, int gemm_nt)
{
    return (size_t)hwc_chunk(g) * ac_pad16(hwc_floats(g)) +
           ac_pad16(ac_sgemm_work_floats(gemm_nt)) + 16;
}

/* ct = dWt' of slot s of P (per group Kg x Og, rows r', group after group); bl (when not
 * NULL) = the slot's bias-gradient lanes, O x 8 doubles. */
static void wgrad_hwc_slot(float *ct, double *bl, int s, int P, const float *dout,
                           const float *x, const geom *g, const ac_gemm_kernel *kr, float *tw,
                           int nt)
{
    const size_t HW = (size_t)g->H * g->W, xs = (size_t)g->C * HW, ys = (size_t)g->O * g->S;
    const size_t hs_ = ac_pad16(hwc_floats(g));
    const int S = (int)g->S, ch = hwc_chunk(g);
    __typeof__(make_hwc_generic) *make_hwc = AC_ISA_PICK(kr->isa, make_hwc);
    __typeof__(sum_lanes_generic) *sum_lanes = AC_ISA_PICK(kr->isa, sum_lanes);
    const ac_range imgs = ac_split(g->N, 1, s, P);
    const int n0 = (int)imgs.lo, n1 = (int)imgs.hi;
    float *xh = ac_align(tw), *gw = xh + (size_t)ch * hs_;
    for (int i = 0; i < AC_MIN(ch, n1 - n0); i++) zero_hwc_border(xh + i * hs_, g);
    if (bl) memset(bl, 0, (size_t)g->O * 8 * sizeof(double));
    for (int gi = 0; gi < g->G; gi++)
        for (int n = n0; n < n1; n += ch) {
            const int cn = AC_MIN(ch, n1 - n);
            for (int i = 0; i < cn; i++) {
                const float *xi = x + (n + i) * xs + (size_t)gi * g->Cg * HW;
                const float *dy = dout + (n + i) * ys + (size_t)gi * g->Og * S;
                make_hwc(xh + i * hs_, xi, g);
                if (bl)
                    for (int o = 0; o < g->Og; o++)
                        sum_lanes(dy + (size_t)o * S, S, bl + (size_t)(gi * g->Og + o) * 8);
            }
            const hwc_src hs = {xh, hs_, g};
            const slot_src ys_ = {dout + n * ys + (size_t)gi * g->Og * S, ys, g};
            const ac_gemm_operand A = {pack_hwc, NULL, &hs};
            const ac_gemm_operand B = {pack_dy, NULL, &ys_};
            ac_gemm_run(kr, g->Kg, g->Og, cn * S, 1.f, &A, &B, n == n0 ? 0.f : 1.f,
                        ct + (size_t)gi * g->Kg * g->Og, g->Og, gw, nt);
        }
}

/* The weight gradient is summed over images in min(N, AC_CONV_WGRAD_SLOTS) contiguous slots, each
 * into its own buffer by gemms whose depth runs over the pixels of several images; the
 * buffers are then added in slot order: the partition and the order of every sum depend on
 * N and the geometry only, never on the thread count or timing. */
static int wgrad_slots(int N) { return AC_MIN(N, AC_CONV_WGRAD_SLOTS); }

/* Work: the slot buffers, then the slots' scratch (ac_items_run). */
size_t conv_weight_grad_floats(const geom *g, int nt)
{
    return (size_t)wgrad_slots(g->N) * hwc_slot_floats(g) +
           ac_items_floats(hwc_thread_floats(g, 1), hwc_thread_floats(g, nt), nt);
}

typedef struct {
    float *parts; /* slot buffers, wstride apart: dWt', then (at bo) the bias lanes */
    size_t wstride, bo;
    int P, bias;
    const float *dout, *x;
    const geom *g;
    const ac_gemm_kernel *kr;
} wgrad_items;

static void wgrad_slots_run(void *ctx, int s0, int s1, float *tw, int nt)
{
    const wgrad_items *w = (const wgrad_items *)ctx;
    for (int s = s0; s < s1; s++) {
        float *part = w->parts + s * w->wstride;
        wgrad_hwc_slot(part, w->bias ? (double *)(part + w->bo) : NULL, s, w->P, w->dout, w->x,
                       w->g, w->kr, tw, nt);
    }
}

void conv_weight_grad(float *dweight, float *dbias, const float *dout, const float *x,
                      const geom *g, float *work, const ac_ctx *ctx, int nt)
{
    const int P = wgrad_slots(g->N);
    const size_t wstride = hwc_slot_floats(g), bo = ac_pad16((size_t)g->O * g->Kg);
    float *parts = work;
    wgrad_items w = {parts, wstride, bo, P, dbias != NULL, dout, x, g, ac_gemm_kernel_for(ctx)};
    ac_items_run(P, nt, wgrad_slots_run, &w, work + (size_t)P * wstride,
                 hwc_thread_floats(g, 1));
    const long wsz = (long)g->O * g->Kg, B = 4096;
#pragma omp parallel for num_threads(nt) schedule(static) if (P > 1)
    for (long b = 0; b < wsz; b += B) /* part_0 = the slots' sum, in slot order */
        for (int s = 1; s < P; s++) {
            const float *q = parts + s * wstride + b;
            for (long i = 0; i < AC_MIN(B, wsz - b); i++) parts[b + i] += q[i];
        }
    const int Og = g->Og, Kg = g->Kg, KK = g->KH * g->KW, OB = 16;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int go0 = 0; go0 < g->O; go0 += OB) { /* dweight[gi*Og + o][r] += part_0[gi][r'][o] */
        const int go1 = AC_MIN(go0 + OB, g->O);
        for (int r = 0; r < Kg; r++) {
            const size_t rp = (size_t)(r % KK * g->Cg + r / KK) * Og;
            for (int go = go0; go < go1; go++)
                dweight[(size_t)go * Kg + r] +=
                    parts[(size_t)(go / Og) * Og * Kg + rp + go % Og];
        }
        if (dbias)
            for (int go = go0; go < go1; go++) {
                double v = 0;
                for (int s = 0; s < P; s++) {
                    const double *l = (const double *)(parts + s * wstride + bo) +
                                      (size_t)go * 8;
                    v += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
                }
                dbias[go] += (float)v;
            }
    }
}
