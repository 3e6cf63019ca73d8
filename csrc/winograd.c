/* Winograd F(2x2, 3x3) convolution, stride 1, pad 1 (API in ac_winograd.h), on the packed
 * GEMM driver (ac_gemm_run).
 *
 * The output is cut into 2x2 tiles, each computed from a 4x4 input patch (stride 2):
 *   U = G g G^T (weights, 4x4 per (o, c)),  V = B^T d B (4x4 per patch and channel),
 *   M[p] = U[p] . V[p] for each of the 16 positions p (a GEMM per group: Og x tiles x Cg),
 *   y = A^T M A (2x2 per tile) + bias, cropped at the right and bottom edges.
 * 16 multiplications per tile instead of 36. U and V are written straight into the driver's
 * packed-panel layout (U once per call as A, V per chunk of images as B), so the gemms pack
 * nothing.
 *
 * Letters: N images, C input channels, H x W input (= output), O output channels, G groups,
 * Cg = C/G, Og = O/G, TH x TW tiles per image (TH = ceil(H/2)), TI = TH*TW, T tiles of a
 * chunk of images (image-major, then tile row, then tile column), Tp = T rounded up to NR.
 *
 * Threads (nt): the first floor(N/nt)*nt images are shared out whole, each thread running
 * one-thread gemms with its own scratch; the rest run with threaded gemms. Each output
 * element's arithmetic does not depend on how images are chunked or split.
 */
#include <immintrin.h>
#include <string.h>

#include "ac_winograd.h"
#include "ac_cpu.h"
#include "ac_gemm.h"

#define NPOS 16       /* transform positions (4x4) */
#define MAX_CHUNK 8   /* images per chunk of gemms, at most */
#define CHUNK_FLOATS ((size_t)1 << 22)  /* cap of a chunk's V and M */

typedef struct {
    int N, C, H, W, O, G, Cg, Og;
    int TH, TW, TI;
} wgeom;

static wgeom make_wgeom(int N, int C, int H, int W, int O, int G)
{
    wgeom g = {N, C, H, W, O, G, C / G, O / G, (H + 1) / 2, (W + 1) / 2, 0};
    g.TI = g.TH * g.TW;
    return g;
}

/* Round up to 16 floats (64 bytes) so buffers never share a cache line. */
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }
static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* An operand in the driver's packed layout: rows padded to xpad (a multiple of R), depth K
 * in blocks of KC (ac_gemm_kc); block k0 holds its rows' panels at p + k0*xpad, panel q at
 * q*kc*R, depth k of it at (k - k0)*R. */
typedef struct {
    float *p;
    int xpad, K, KC, R;
} pview;

static pview make_pview(float *p, int rows, int K, int R, const ac_gemm_kernel *kr)
{
    return (pview){p, round_up(rows, R), K, ac_gemm_kc(kr, K), R};
}

/* Depth k of a view: where row 0 of it sits, and the stride from one panel to the next. */
static inline size_t pv_base(const pview *v, int k, size_t *pstride)
{
    const int k0 = k / v->KC * v->KC, kc = AC_MIN(v->KC, v->K - k0);
    *pstride = (size_t)kc * v->R;
    return (size_t)k0 * v->xpad + (size_t)(k - k0) * v->R;
}

static const float *pv_at(const void *src, int x0, int k0, int kc, const ac_gemm_kernel *kr)
{
    const pview *v = (const pview *)src;
    (void)kr;
    return v->p + (size_t)k0 * v->xpad + (size_t)x0 * kc;
}

/* Images per chunk: the one whose tiles fill the NR-wide column panels best (fewest images
 * on ties), V and M within CHUNK_FLOATS. Depends on the geometry and path only. */
static int chunk_images(const wgeom *g, int nr)
{
    int best = 1;
    double be = 0;
    for (int n = 1; n <= MAX_CHUNK && n <= g->N; n++) {
        const int T = n * g->TI, Tp = round_up(T, nr);
        if (n > 1 && (size_t)NPOS * ((size_t)g->Cg * Tp + (size_t)g->Og * T) > CHUNK_FLOATS) break;
        const double e = (double)T / Tp;
        if (e > be + 1e-9) {
            be = e;
            best = n;
        }
    }
    return best;
}

/* Floats of one position's U (A panels) and of a chunk's V and M, per position. */
static size_t u_floats(const wgeom *g, int mr) { return pad16((size_t)g->Cg * round_up(g->Og, mr)); }
static size_t v_floats(const wgeom *g, int ch, int nr)
{
    return pad16((size_t)g->Cg * round_up(ch * g->TI, nr));
}
static size_t m_floats(const wgeom *g, int ch) { return pad16((size_t)g->Og * ch * g->TI); }

static size_t thread_floats(const wgeom *g, const ac_gemm_kernel *kr, int gemm_nt)
{
    const int ch = chunk_images(g, kr->nr);
    return NPOS * (v_floats(g, ch, kr->nr) + m_floats(g, ch)) + pad16(ac_sgemm_work_floats(gemm_nt));
}

static size_t work_floats(const wgeom *g, const ac_gemm_kernel *kr, int nt)
{
    return (size_t)g->G * NPOS * u_floats(g, kr->mr) +
           AC_MAX(thread_floats(g, kr, nt), (size_t)nt * thread_floats(g, kr, 1));
}

size_t ac_winograd3x3_work_floats(int N, int C, int H, int W, int O, int groups, int nthreads)
{
    if (groups < 1 || N <= 0) return 16;
    const wgeom g = make_wgeom(N, C, H, W, O, groups);
    size_t f = 16;
    for (int isa = AC_ISA_GENERIC; isa <= AC_ISA_AVX512; isa++)  /* any path chosen later */
        f = AC_MAX(f, work_floats(&g, ac_gemm_kernel_for(isa), AC_MAX(nthreads, 1)));
    return f;
}

/* ------------------------------------------------------------ weight transform */

/* U[gi][p] (A operand: rows o, depth c) = G g G^T, rows o >= Og zero. */
static void weight_transform(float *U, const float *w, const wgeom *g, const ac_gemm_kernel *kr,
                             int nt)
{
    const int MR = kr->mr, Opad = round_up(g->Og, MR), np = Opad / MR;
    const size_t ups = u_floats(g, MR);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int task = 0; task < g->G * np; task++) {
        const int gi = task / np, q = task % np;
        float *Ug = U + (size_t)gi * NPOS * ups;
        const pview v = make_pview(Ug, g->Og, g->Cg, MR, kr);
        for (int c = 0; c < g->Cg; c++) {
            size_t ps;
            const size_t base = pv_base(&v, c, &ps) + (size_t)q * ps;
            for (int r = 0; r < MR; r++) {
                const int o = q * MR + r;
                float u[NPOS];
                if (o < g->Og) {
                    const float *k = w + ((size_t)(gi * g->Og + o) * g->Cg + c) * 9;
                    float t[4][3];  /* G g */
                    for (int j = 0; j < 3; j++) {
                        t[0][j] = k[j];
                        t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                        t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
                        t[3][j] = k[6 + j];
                    }
                    for (int i = 0; i < 4; i++) {  /* (G g) G^T */
                        u[i * 4 + 0] = t[i][0];
                        u[i * 4 + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                        u[i * 4 + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                        u[i * 4 + 3] = t[i][2];
                    }
                } else {
                    for (int p = 0; p < NPOS; p++) u[p] = 0.f;
                }
                for (int p = 0; p < NPOS; p++) Ug[p * ups + base + r] = u[p];
            }
        }
    }
}

/* ------------------------------------------------------------- input transform */

/* V = B^T d B of the 4x4 patch d (rows i, columns j): rows first, then columns. */
static inline void in_tile(float v[NPOS], const float d[4][4])
{
    float t[4][4];
    for (int j = 0; j < 4; j++) {
        t[0][j] = d[0][j] - d[2][j];
        t[1][j] = d[1][j] + d[2][j];
        t[2][j] = d[2][j] - d[1][j];
        t[3][j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; i++) {
        v[i * 4 + 0] = t[i][0] - t[i][2];
        v[i * 4 + 1] = t[i][1] + t[i][2];
        v[i * 4 + 2] = t[i][2] - t[i][1];
        v[i * 4 + 3] = t[i][1] - t[i][3];
    }
}

/* Channel c of the chunk's images: V (B operand: rows = tiles, depth c) of every position,
 * and zeros in the lanes past T. xc: channel c of the chunk's first image. */
static void in_channel(float *V, size_t vps, const pview *v, int c, const float *xc, size_t xs,
                       int nimg, const wgeom *g)
{
    const int H = g->H, W = g->W, R = v->R, T = nimg * g->TI;
    size_t ps;
    const size_t base = pv_base(v, c, &ps);
    for (int img = 0; img < nimg; img++) {
        const float *xi = xc + img * xs;
        for (int ty = 0; ty < g->TH; ty++)
            for (int tx = 0; tx < g->TW; tx++) {
                float d[4][4], u[NPOS];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        const int ih = 2 * ty - 1 + i, iw = 2 * tx - 1 + j;
                        d[i][j] = ih >= 0 && ih < H && iw >= 0 && iw < W ? xi[(size_t)ih * W + iw] : 0.f;
                    }
                in_tile(u, d);
                const int t = img * g->TI + ty * g->TW + tx;
                const size_t off = base + (size_t)(t / R) * ps + t % R;
                for (int p = 0; p < NPOS; p++) V[p * vps + off] = u[p];
            }
    }
    if (T % R)
        for (int p = 0; p < NPOS; p++) {
            float *z = V + p * vps + base + (size_t)(T / R) * ps;
            for (int l = T % R; l < R; l++) z[l] = 0.f;
        }
}

#define WINO_AVX512_FN __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

/* Lanes [0, n) of u to tile lanes t.. of a depth's panels (splitting at a panel's end). */
static WINO_AVX512_FN inline void store_tiles(float *Vc, size_t ps, int R, int t, int n, __m512 u)
{
    const int lane = t % R;
    float *d = Vc + (size_t)(t / R) * ps + lane;
    if (lane + n <= R) {
        _mm512_mask_storeu_ps(d, (__mmask16)((1u << n) - 1), u);
    } else {
        const int a = R - lane;
        _mm512_mask_storeu_ps(d, (__mmask16)((1u << a) - 1), u);
        _mm512_mask_compressstoreu_ps(Vc + (size_t)(t / R + 1) * ps,
                                      (__mmask16)(((1u << n) - 1) & ~((1u << a) - 1)), u);
    }
}

/* in_channel, vectorised over 7 tiles of a tile row (their 16 input columns one vector). */
static WINO_AVX512_FN void in_channel_avx512(float *V, size_t vps, const pview *v, int c,
                                              const float *xc, size_t xs, int nimg, const wgeom *g)
{
    const int H = g->H, W = g->W, R = v->R, T = nimg * g->TI;
    size_t ps;
    const size_t base = pv_base(v, c, &ps);
    float *Vc = V + base;
    /* Column j of the patch of tile l of the vector: lane 2l + j. */
    const __m512i i0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i i1 = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i i2 = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i i3 = _mm512_setr_epi32(3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int img = 0; img < nimg; img++) {
        const float *xi = xc + img * xs;
        for (int ty = 0; ty < g->TH; ty++)
            for (int tx0 = 0; tx0 < g->TW; tx0 += 7) {
                const int n = AC_MIN(7, g->TW - tx0), c0 = 2 * tx0 - 1;
                const int lo = AC_MAX(0, -c0), hi = AC_MIN(16, W - c0);
                const __mmask16 m = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
                __m512 r[4];
                for (int i = 0; i < 4; i++) {
                    const int ih = 2 * ty - 1 + i;
                    /* lane 0 may sit before the row (column -1): masked off, never read */
                    r[i] = ih >= 0 && ih < H
                               ? _mm512_maskz_loadu_ps(m, xi + (size_t)ih * W + c0)
                               : _mm512_setzero_ps();
                }
                __m512 t[4];
                t[0] = _mm512_sub_ps(r[0], r[2]);
                t[1] = _mm512_add_ps(r[1], r[2]);
                t[2] = _mm512_sub_ps(r[2], r[1]);
                t[3] = _mm512_sub_ps(r[1], r[3]);
                const int tt = img * g->TI + ty * g->TW + tx0;
                for (int i = 0; i < 4; i++) {
                    const __m512 d0 = _mm512_permutexvar_ps(i0, t[i]);
                    const __m512 d1 = _mm512_permutexvar_ps(i1, t[i]);
                    const __m512 d2 = _mm512_permutexvar_ps(i2, t[i]);
                    const __m512 d3 = _mm512_permutexvar_ps(i3, t[i]);
                    store_tiles(Vc + (i * 4 + 0) * vps, ps, R, tt, n, _mm512_sub_ps(d0, d2));
                    store_tiles(Vc + (i * 4 + 1) * vps, ps, R, tt, n, _mm512_add_ps(d1, d2));
                    store_tiles(Vc + (i * 4 + 2) * vps, ps, R, tt, n, _mm512_sub_ps(d2, d1));
                    store_tiles(Vc + (i * 4 + 3) * vps, ps, R, tt, n, _mm512_sub_ps(d1, d3));
                }
            }
    }
    if (T % R)
        for (int p = 0; p < NPOS; p++) {
            float *z = Vc + p * vps + (size_t)(T / R) * ps;
            for (int l = T % R; l < R; l++) z[l] = 0.f;
        }
}

/* ------------------------------------------------------------ output transform */

/* y = A^T m A (2x2, row-major) of one tile: rows first, then columns. */
static inline void out_tile(float y[4], const float m[NPOS])
{
    float s0[4], s1[4];
    for (int j = 0; j < 4; j++) {
        s0[j] = (m[j] + m[4 + j]) + m[8 + j];
        s1[j] = (m[4 + j] - m[8 + j]) - m[12 + j];
    }
    y[0] = (s0[0] + s0[1]) + s0[2];
    y[1] = (s0[1] - s0[2]) - s0[3];
    y[2] = (s1[0] + s1[1]) + s1[2];
    y[3] = (s1[1] - s1[2]) - s1[3];
}

/* Output channel o of the chunk (M rows o, ld T) into out (channel o of the first image). */
static void out_channel(float *out, size_t ys, const float *M, size_t mps, int o, int nimg,
                        float b, const wgeom *g)
{
    const int H = g->H, W = g->W, T = nimg * g->TI;
    const float *Mo = M + (size_t)o * T;
    for (int img = 0; img < nimg; img++) {
        float *yi = out + img * ys;
        for (int ty = 0; ty < g->TH; ty++)
            for (int tx = 0; tx < g->TW; tx++) {
                const int t = img * g->TI + ty * g->TW + tx;
                float m[NPOS], y[4];
                for (int p = 0; p < NPOS; p++) m[p] = Mo[p * mps + t];
                out_tile(y, m);
                for (int a = 0; a < 2; a++)
                    for (int e = 0; e < 2; e++) {
                        const int oh = 2 * ty + a, ow = 2 * tx + e;
                        if (oh < H && ow < W) yi[(size_t)oh * W + ow] = y[a * 2 + e] + b;
                    }
            }
    }
}

/* out_channel, vectorised over 8 tiles of a tile row (16 output columns). */
static WINO_AVX512_FN void out_channel_avx512(float *out, size_t ys, const float *M, size_t mps,
                                               int o, int nimg, float b, const wgeom *g)
{
    const int H = g->H, W = g->W, T = nimg * g->TI;
    const float *Mo = M + (size_t)o * T;
    const __m512 vb = _mm512_set1_ps(b);
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    for (int img = 0; img < nimg; img++) {
        float *yi = out + img * ys;
        for (int ty = 0; ty < g->TH; ty++)
            for (int tx0 = 0; tx0 < g->TW; tx0 += 8) {
                const int n = AC_MIN(8, g->TW - tx0), t = img * g->TI + ty * g->TW + tx0;
                const __mmask16 mk = (__mmask16)((1u << n) - 1);
                __m512 m[NPOS], s0[4], s1[4];
                for (int p = 0; p < NPOS; p++) m[p] = _mm512_maskz_loadu_ps(mk, Mo + p * mps + t);
                for (int j = 0; j < 4; j++) {
                    s0[j] = _mm512_add_ps(_mm512_add_ps(m[j], m[4 + j]), m[8 + j]);
                    s1[j] = _mm512_sub_ps(_mm512_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
                }
                const __m512 y0 = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
                const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
                const __m512 y2 = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
                const __m512 y3 = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
                const int ncol = AC_MIN(16, W - 2 * tx0);
                const __mmask16 ms = (__mmask16)((1u << ncol) - 1);
                float *row = yi + (size_t)(2 * ty) * W + 2 * tx0;
                _mm512_mask_storeu_ps(row, ms, _mm512_add_ps(_mm512_permutex2var_ps(y0, il, y1), vb));
                if (2 * ty + 1 < H)
                    _mm512_mask_storeu_ps(row + W, ms,
                                          _mm512_add_ps(_mm512_permutex2var_ps(y2, il, y3), vb));
            }
    }
}

/* ------------------------------------------------------------------- driver */

typedef struct {
    const wgeom *g;
    const ac_gemm_kernel *kr;
    const float *U;  /* every group's packed U */
    const float *bias;
    int ch;          /* images per chunk */
} wctx;

/* Images [0, nimg) of out/x (nimg <= ch): per group, V, 16 gemms into M, then out.
 * s: scratch of thread_floats(g, kr, nt). */
static void wino_chunk(float *out, const float *x, int nimg, const wctx *cx, float *s, int nt)
{
    const wgeom *g = cx->g;
    const ac_gemm_kernel *kr = cx->kr;
    const int avx512 = kr->isa == AC_ISA_AVX512 && kr->nr >= 8;
    const int T = nimg * g->TI;
    const size_t HW = (size_t)g->H * g->W, xs = (size_t)g->C * HW, ys = (size_t)g->O * HW;
    const size_t ups = u_floats(g, kr->mr), vps = v_floats(g, cx->ch, kr->nr);
    const size_t mps = m_floats(g, cx->ch);
    float *V = s, *M = V + NPOS * vps, *gw = M + NPOS * mps;
    for (int gi = 0; gi < g->G; gi++) {
        const pview vb = make_pview(V, T, g->Cg, kr->nr, kr);
        const float *xg = x + (size_t)gi * g->Cg * HW;
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int c = 0; c < g->Cg; c++) {
            if (avx512)
                in_channel_avx512(V, vps, &vb, c, xg + c * HW, xs, nimg, g);
            else
                in_channel(V, vps, &vb, c, xg + c * HW, xs, nimg, g);
        }
        for (int p = 0; p < NPOS; p++) {
            pview ua = make_pview((float *)cx->U + ((size_t)gi * NPOS + p) * ups, g->Og, g->Cg,
                                  kr->mr, kr);
            pview vp = vb;
            vp.p = V + p * vps;
            const ac_gemm_operand A = {NULL, pv_at, &ua}, B = {NULL, pv_at, &vp};
            ac_gemm_run(kr, g->Og, T, g->Cg, 1.f, &A, &B, 0.f, M + p * mps, T, gw, nt);
        }
        float *yg = out + (size_t)gi * g->Og * HW;
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int o = 0; o < g->Og; o++) {
            const float b = cx->bias ? cx->bias[gi * g->Og + o] : 0.f;
            if (avx512)
                out_channel_avx512(yg + o * HW, ys, M, mps, o, nimg, b, g);
            else
                out_channel(yg + o * HW, ys, M, mps, o, nimg, b, g);
        }
    }
}

static void wino_images(float *out, const float *x, int n0, int n1, const wctx *cx, float *s,
                        int nt)
{
    const size_t HW = (size_t)cx->g->H * cx->g->W;
    for (int n = n0; n < n1; n += cx->ch)
        wino_chunk(out + n * cx->g->O * HW, x + n * cx->g->C * HW, AC_MIN(cx->ch, n1 - n), cx, s, nt);
}

void ac_winograd3x3(float *out, const float *x, const float *weight, const float *bias,
                    int N, int C, int H, int W, int O, int groups, float *work, int nthreads)
{
    if (N <= 0 || O <= 0 || groups < 1) return;
    const wgeom g = make_wgeom(N, C, H, W, O, groups);
    const int nt = AC_MAX(nthreads, 1);
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ac_get_isa());
    weight_transform(work, weight, &g, kr, nt);
    float *tw = work + (size_t)g.G * NPOS * u_floats(&g, kr->mr);
    const wctx cx = {&g, kr, work, bias, chunk_images(&g, kr->nr)};
    const int nfull = nt > 1 ? N / nt * nt : 0;
    if (nfull > 0) {
        const size_t per = thread_floats(&g, kr, 1);
        #pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), P = omp_get_num_threads();
            wino_images(out, x, (int)((long)nfull * t / P), (int)((long)nfull * (t + 1) / P), &cx,
                        tw + (size_t)t * per, 1);
        }
    }
    wino_images(out, x, nfull, N, &cx, tw, nt);
}
