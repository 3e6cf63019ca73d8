/* Stride-phase planes (layout in geom.h): built from the input (the forward's im2col, fused
 * into the gemm's B packing by conv_pack_phase) and, for the strided input gradient, the
 * adjoints (column blocks added into planes, planes back to dx). */

#include "geom.h"

/* Outputs o in [*lo, *hi) whose input o*stride - pad + k lies in [0, L). */
static void valid_range(int k, int L, int stride, int pad, int OL, int *lo, int *hi)
{
    int a = pad - k, b = L - 1 + pad - k, l, h;
    if (stride == 1) { /* no divisions on the common path */
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

/* d[i] = s[i*stride] as inline loops: the segments are short (an output row), so library
 * calls would cost more than the copy; constant strides let them vectorise. */
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

void conv_make_phase_rows(float *xp, const float *x, const geom *g, int t0, int t1)
{
    const int s = g->stride, Hp = phase_hp(g), Wp = phase_wp(g);
    for (int t = t0; t < t1; t++) { /* one input row to its s planes while in L1 */
        const int c = t / (s * Hp), a = t / Hp % s, i = t % Hp, ih = i * s + a - g->pad;
        for (int b = 0; b < s; b++) {
            float *row = xp + (((size_t)(c * s + a) * s + b) * Hp + i) * Wp;
            if (ih < 0 || ih >= g->H) {
                zero(row, Wp);
                continue;
            }
            int jlo, jhi; /* j with 0 <= j*s + b - pad < W */
            valid_range(b, g->W, s, g->pad, Wp, &jlo, &jhi);
            zero(row, jlo);
            gather(row + jlo, x + ((size_t)c * g->H + ih) * g->W + (jlo * s + b - g->pad),
                   jhi - jlo, s);
            zero(row + jhi, Wp - jhi);
        }
    }
}

void conv_make_phases(float *xp, const float *x, const geom *g)
{
    conv_make_phase_rows(xp, x, g, 0, g->Cg * g->stride * phase_hp(g));
}

/* A run of pixels inside one output row and one panel: len floats from src offset so go
 * to panel offset d (panel q*kc*R plus lane). */
#define AC_CONV_MAX_RUNS 128
typedef struct {
    size_t so, d;
    int len;
} run;

/* The runs rs copied for depths k0 .. k0+kc-1. */
#ifdef AC_X86_64
static AC_TARGET_AVX512 void apply_runs_avx512(float *dst, const float *xp, const geom *g,
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
#endif

static void apply_runs_generic(float *dst, const float *xp, const geom *g, int k0, int kc,
                               int R, const run *rs, int nr)
{
    for (int k = 0; k < kc; k++) {
        const float *base = xp + phase_row(g, k0 + k);
        float *dk = dst + (size_t)k * R;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < rs[i].len; j++) dk[rs[i].d + j] = base[rs[i].so + j];
    }
}
#define apply_runs_avx2 apply_runs_generic
#define apply_runs_neon apply_runs_generic

/* B panels of the forward from phase planes: runs of pixels cut at output rows and panels
 * are listed once, then copied for every depth k. Pixel x0 + j (x0 counted from ps->x0) is
 * pixel (x0 + j) % S of the chunk's image (x0 + j) / S. */
void conv_pack_phase(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr)
{
    const phase_src *ps = (const phase_src *)src;
    const geom *g = ps->g;
    const int OW = g->OW, Wp = phase_wp(g), S = (int)g->S;
    const size_t pf = phase_floats(g);
    const int kx = AC_MIN(kc, g->Kg - k0); /* depths from x; the last ones may be ones rows */
    run rs[AC_CONV_MAX_RUNS];
    int nr = 0;
    x0 += ps->x0;
    for (int j = 0; j < nx;) {
        const int img = (x0 + j) / S, px = (x0 + j) % S, oh = px / OW, ow = px % OW;
        const int len = AC_MIN(AC_MIN(OW - ow, R - j % R), nx - j);
        rs[nr++] = (run){img * pf + (size_t)oh * Wp + ow, (size_t)(j / R) * kc * R + j % R,
                         len};
        j += len;
        if (nr == AC_CONV_MAX_RUNS || j == nx) {
            AC_ISA_PICK(kr->isa, apply_runs)(dst, ps->xp, g, k0, AC_MAX(kx, 0), R, rs, nr);
            nr = 0;
        }
    }
    if (ps->ones)
        for (int k = AC_MAX(kx, 0); k < kc; k++)
            for (int j = 0; j < nx; j++)
                dst[(size_t)(j / R) * kc * R + (size_t)k * R + j % R] = 1.f;
    if (nx % R) { /* zero the lanes past nx in the last panel */
        float *d = dst + (size_t)(nx / R) * kc * R;
        for (int k = 0; k < kc; k++) zero(d + (size_t)k * R + nx % R, R - nx % R);
    }
}

/* col2im of columns [s0, s1) into the phase planes (the adjoint of reading B panels from
 * them: contiguous adds, no bounds checks), whole channels per thread. */
void conv_col2phase_group(float *xp, const float *cols, const geom *g, size_t s0, size_t s1,
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

/* dx of a group = the phase planes without the padding (the adjoint of conv_make_phases). */
void conv_unphase_group(float *dxg, const float *xp, const geom *g, int nt)
{
    const int s = g->stride, Hp = phase_hp(g), Wp = phase_wp(g);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < g->Cg; c++)
        for (int ih = 0; ih < g->H; ih++) {
            const int a = (ih + g->pad) % s, i = (ih + g->pad) / s;
            float *row = dxg + ((size_t)c * g->H + ih) * g->W;
            for (int b = 0; b < s; b++) { /* columns iw = j*s + b - pad */
                const float *pr = xp + (((size_t)(c * s + a) * s + b) * Hp + i) * Wp;
                int jlo, jhi;
                valid_range(b, g->W, s, g->pad, Wp, &jlo, &jhi);
                for (int j = jlo; j < jhi; j++) row[(size_t)j * s + b - g->pad] = pr[j];
            }
        }
}
