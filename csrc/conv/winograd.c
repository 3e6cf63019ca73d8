/* Winograd F(2x2, 3x3) convolution, stride 1, pad 1 (API in ac_winograd.h), on the packed
 * GEMM driver (ac_gemm_run).
 *
 * The output is cut into 2x2 tiles, each computed from a 4x4 input patch (stride 2):
 *   U = G g G^T (weights, 4x4 per (o, c)),  V = B^T d B (4x4 per patch and channel),
 *   M[p] = U[p] . V[p] for each of the 16 positions p (a GEMM per group: Og x tiles x Cg),
 *   y = A^T M A (2x2 per tile) + bias, cropped at the right and bottom edges.
 * 16 multiplications per tile instead of 36. U is written once per call straight into the
 * driver's packed A layout, V (four positions at a time) straight into packed B panels, so
 * the gemms pack nothing.
 * Tiles are processed in chunks of whole B panels (AC_WINO_CHUNK_TILES, across image
 * boundaries), small enough that a chunk's V and M stay in L2 through its 16 gemms. Per-position
 * planes are skewed off 4 KiB multiples (plane_floats): the 16 side-by-side streams aliased
 * in the caches otherwise.
 *
 * Letters: N images, C input channels, H x W input (= output), O output channels, G groups,
 * Cg = C/G, Og = O/G, TH x TW tiles per image (TH = ceil(H/2)), TI = TH*TW; tiles are
 * numbered image-major, then tile row, then tile column (TT = N*TI in all).
 *
 * Threads (nt): the tiles are shared out in contiguous ranges of whole B panels, each thread
 * running one-thread gemms with its own scratch; with fewer chunks than threads, chunks run
 * one after another with threaded gemms. Each output element's arithmetic does not depend on
 * the chunking, so results are the same for every thread count.
 */
#include <string.h>

#include "ac_gemm.h"
#include "ac_parallel.h"
#include "ac_simd.h"
#include "ac_winograd.h"

#define NPOS 16 /* transform positions (4x4) */
#ifndef AC_WINO_CHUNK_TILES
#define AC_WINO_CHUNK_TILES 64 /* tiles per chunk, in whole B panels (64..384 measured alike) */
#endif

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

static int round_up(int x, int m) { return (int)ac_round_up((size_t)x, (size_t)m); }

/* Stride of the per-position planes of U, V and M: 64 bytes past a multiple of 4 KiB, so the
 * 16 planes read or written side by side fall in different cache sets. */
static size_t plane_floats(size_t n) { return (n + 1023) / 1024 * 1024 + 16; }

/* Where to write an operand in the driver's packed layout (ac_gemm_prepacked reads it): rows
 * padded to xpad (a multiple of R), depth K in blocks of KC (ac_gemm_kc); block k0 holds its
 * rows' panels at p + k0*xpad, panel q at q*kc*R, depth k of it at (k - k0)*R. */
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

/* Tiles per chunk: whole B panels (NR tiles), no more than there are. */
static int chunk_tiles(const wgeom *g, int nr)
{
    const long TT = (long)g->N * g->TI;
    const int c = round_up(AC_MAX(AC_WINO_CHUNK_TILES / nr, 1) * nr, nr);
    return (int)AC_MIN((long)c, TT);
}

/* Floats of one position's U (A panels) and of a chunk's M, per position. */
static size_t u_floats(const wgeom *g, int mr)
{
    return plane_floats((size_t)g->Cg * round_up(g->Og, mr));
}
static size_t m_floats(const wgeom *g, int nr)
{
    return plane_floats((size_t)g->Og * chunk_tiles(g, nr));
}

static size_t v_floats(const wgeom *g, int nr)
{
    return plane_floats((size_t)g->Cg * round_up(chunk_tiles(g, nr), nr));
}

/* Per thread: V of four positions, M of all 16, the gemm's scratch. */
static size_t thread_floats(const wgeom *g, const ac_gemm_kernel *kr, int gemm_nt)
{
    return 4 * v_floats(g, kr->nr) + NPOS * m_floats(g, kr->nr) +
           ac_pad16(ac_sgemm_work_floats(gemm_nt));
}

static size_t work_floats(const wgeom *g, const ac_gemm_kernel *kr, int nt)
{
    return (size_t)g->G * NPOS * u_floats(g, kr->mr) +
           ac_items_floats(thread_floats(g, kr, 1), thread_floats(g, kr, nt), nt);
}

size_t ac_winograd3x3_work_floats(int N, int C, int H, int W, int O, int groups, int nthreads)
{
    if (groups < 1 || N <= 0) return 16;
    const wgeom g = make_wgeom(N, C, H, W, O, groups);
    size_t f = 16;
    for (int i = 0; i < ac_gemm_nkernels; i++) /* any kernel chosen later */
        f = AC_MAX(f, work_floats(&g, &ac_gemm_kernels[i], AC_MAX(nthreads, 1)));
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
                    float t[4][3]; /* G g */
                    for (int j = 0; j < 3; j++) {
                        t[0][j] = k[j];
                        t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                        t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
                        t[3][j] = k[6 + j];
                    }
                    for (int i = 0; i < 4; i++) { /* (G g) G^T */
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
    for (int gp = 0; gp < g->G * NPOS; gp++) /* bf16: into the kernel's panels */
        ac_gemm_convert_prepacked(kr, U + (size_t)gp * ups, Opad, g->Cg, MR);
}

/* ------------------------------------------------------------- input transform */

/* B^T's rows as (a, b, s): row a + s * row b. V = B^T d B for the four positions (i, 0..3) of
 * a row i of B^T at once: t = d[a_i] + s_i d[b_i] over the patch columns, then
 * V(i, j) = t[a_j] + s_j t[b_j]. */
static const int BA[4] = {0, 1, 2, 1}, BB[4] = {2, 2, 1, 3};
static const float BS[4] = {-1.f, 1.f, -1.f, -1.f};

/* Up to AC_WINO_VRUN tiles of one tile row, at lane d of a panel: their patches start at offset io in
 * an image channel (row 2ty - 1, column c0 = 2tx - 1); bit r of rows is set when patch row r
 * lies inside the image. */
#define AC_WINO_VRUN 7
#define AC_WINO_MAX_RUNS 64
typedef struct {
    long io;
    int rows, c0, len, d;
} vrun;

static int make_runs(vrun *rs, const wgeom *g, size_t xs, long t0, int n, int d0)
{
    int nr = 0;
    for (int j = 0; j < n;) {
        const long t = t0 + j;
        const int img = (int)(t / g->TI), ty = (int)(t % g->TI) / g->TW, tx = (int)(t % g->TW);
        const int len = AC_MIN(AC_MIN(g->TW - tx, AC_WINO_VRUN), n - j);
        int rows = 0;
        for (int r = 0; r < 4; r++) rows |= (2 * ty - 1 + r >= 0 && 2 * ty - 1 + r < g->H) << r;
        rs[nr++] = (vrun){(long)img * (long)xs + (long)(2 * ty - 1) * g->W + 2 * tx - 1, rows,
                          2 * tx - 1, len, d0 + j};
        j += len;
    }
    return nr;
}

/* The four V(i, j) of runs rs for channels [0, K) into panel q of views v[0..3] (x: channel 0). */
static void in_runs_generic(const pview *v, int q, const float *x, size_t HW, int K, int i,
                            const vrun *rs, int nr, const wgeom *g)
{
    const float si = BS[i];
    for (int k = 0; k < K; k++) {
        size_t ps;
        const size_t base = pv_base(&v[0], k, &ps) + (size_t)q * ps;
        const float *xc = x + (size_t)k * HW;
        for (int u = 0; u < nr; u++) {
            const vrun *r = &rs[u];
            const int va = r->rows >> BA[i] & 1, vb = r->rows >> BB[i] & 1;
            for (int l = 0; l < r->len; l++) {
                float t[4];
                for (int m = 0; m < 4; m++) {
                    const int col = 2 * l + m, in = r->c0 + col >= 0 && r->c0 + col < g->W;
                    const float a = in && va ? xc[r->io + (long)BA[i] * g->W + col] : 0.f;
                    const float b = in && vb ? xc[r->io + (long)BB[i] * g->W + col] : 0.f;
                    t[m] = a + si * b;
                }
                for (int j = 0; j < 4; j++)
                    v[j].p[base + r->d + l] = t[BA[j]] + BS[j] * t[BB[j]];
            }
        }
    }
}

/* in_runs, two runs at a time (adjacent lanes, up to 14 tiles): each run's 16 patch columns
 * one vector, the lanes of both gathered by one two-source permute. */
#ifdef AC_X86_64
static AC_TARGET_AVX512 void in_runs_avx512(const pview *v, int q, const float *x, size_t HW,
                                            int K, int i, const vrun *rs, int nr,
                                            const wgeom *g)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                           15);
    const __m512 si = _mm512_set1_ps(BS[i]);
    const int np = (nr + 1) / 2;
    __m512i ix[(AC_WINO_MAX_RUNS + 1) / 2];
    __mmask16 ma[2 * ((AC_WINO_MAX_RUNS + 1) / 2)], mb[2 * ((AC_WINO_MAX_RUNS + 1) / 2)],
        ms[(AC_WINO_MAX_RUNS + 1) / 2];
    long oa[2 * ((AC_WINO_MAX_RUNS + 1) / 2)], ob[2 * ((AC_WINO_MAX_RUNS + 1) / 2)];
    int dd[(AC_WINO_MAX_RUNS + 1) / 2];
    for (int u = 0; u < 2 * np; u++) { /* columns and rows inside the image (none: no run) */
        const vrun *r = &rs[AC_MIN(u, nr - 1)];
        const int lo = AC_MAX(0, -r->c0), hi = AC_MIN(16, g->W - r->c0);
        const __mmask16 ml = u < nr ? (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
        ma[u] = r->rows >> BA[i] & 1 ? ml : 0;
        mb[u] = r->rows >> BB[i] & 1 ? ml : 0;
        oa[u] = r->io + (long)BA[i] * g->W;
        ob[u] = r->io + (long)BB[i] * g->W;
    }
    for (int u = 0; u < np;
         u++) { /* lane l: column 2l of the first run, 2(l - n0) of the second */
        const int n0 = rs[2 * u].len, n1 = 2 * u + 1 < nr ? rs[2 * u + 1].len : 0;
        ix[u] = _mm512_mask_blend_epi32(
            (__mmask16)((1u << n0) - 1),
            _mm512_add_epi32(
                _mm512_slli_epi32(_mm512_sub_epi32(iota, _mm512_set1_epi32(n0)), 1),
                _mm512_set1_epi32(16)),
            _mm512_slli_epi32(iota, 1));
        ms[u] = (__mmask16)((1u << (n0 + n1)) - 1);
        dd[u] = rs[2 * u].d;
    }
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2),
                  three = _mm512_set1_epi32(3);
    for (int k = 0; k < K; k++) { /* depth by depth: each panel row is written in order */
        size_t ps;
        const size_t base = pv_base(&v[0], k, &ps) + (size_t)q * ps;
        float *d0 = v[0].p + base, *d1 = v[1].p + base, *d2 = v[2].p + base,
              *d3 = v[3].p + base;
        const float *xc = x + (size_t)k * HW;
        for (int u = 0; u < np; u++) {
            /* lane 0 may sit before the row (column -1): masked off, never read */
            const __m512 a0 = _mm512_maskz_loadu_ps(ma[2 * u], xc + oa[2 * u]);
            const __m512 b0 = _mm512_maskz_loadu_ps(mb[2 * u], xc + ob[2 * u]);
            const __m512 a1 = _mm512_maskz_loadu_ps(ma[2 * u + 1], xc + oa[2 * u + 1]);
            const __m512 b1 = _mm512_maskz_loadu_ps(mb[2 * u + 1], xc + ob[2 * u + 1]);
            const __m512 s0 = _mm512_fmadd_ps(si, b0, a0), s1 = _mm512_fmadd_ps(si, b1, a1);
            const __m512 t0 = _mm512_permutex2var_ps(s0, ix[u], s1);
            const __m512 t1 = _mm512_permutex2var_ps(s0, _mm512_add_epi32(ix[u], one), s1);
            const __m512 t2 = _mm512_permutex2var_ps(s0, _mm512_add_epi32(ix[u], two), s1);
            const __m512 t3 = _mm512_permutex2var_ps(s0, _mm512_add_epi32(ix[u], three), s1);
            _mm512_mask_storeu_ps(d0 + dd[u], ms[u], _mm512_sub_ps(t0, t2));
            _mm512_mask_storeu_ps(d1 + dd[u], ms[u], _mm512_add_ps(t1, t2));
            _mm512_mask_storeu_ps(d2 + dd[u], ms[u], _mm512_sub_ps(t2, t1));
            _mm512_mask_storeu_ps(d3 + dd[u], ms[u], _mm512_sub_ps(t1, t3));
        }
    }
}
#endif
#define in_runs_avx2 in_runs_generic
#define in_runs_neon in_runs_generic

/* V(i, 0..3) of tiles [t0, t0 + n) into packed B views v[0..3] (rows: tiles, depth: the
 * group's channels; x: its channel 0 in image 0), panels shared among nt threads. */
static void in_transform(const pview *v, const float *x, size_t xs, long t0, int n, int i,
                         const wgeom *g, int isa, int nt)
{
    const int R = v[0].R, np = (n + R - 1) / R, K = v[0].K;
    const size_t HW = (size_t)g->H * g->W;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int q = 0; q < np; q++) {
        const int m = AC_MIN(R, n - q * R);
        vrun rs[AC_WINO_MAX_RUNS];
        for (int j = 0; j < m; j += AC_WINO_MAX_RUNS) {
            const int nr = make_runs(rs, g, xs, t0 + q * R + j, AC_MIN(AC_WINO_MAX_RUNS, m - j),
                                     j);
            AC_ISA_PICK(isa, in_runs)(v, q, x, HW, K, i, rs, nr, g);
        }
        if (m < R) /* lanes past the last tile */
            for (int k = 0; k < K; k++) {
                size_t ps;
                const size_t base = pv_base(&v[0], k, &ps) + (size_t)q * ps;
                for (int j = 0; j < 4; j++)
                    for (int l = m; l < R; l++) v[j].p[base + l] = 0.f;
            }
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

/* Output channel o of tiles [t0, t0 + n) from Mo (row o of each position's M, mps apart) into
 * out (channel o of image 0, image stride ys). */
static void out_channel_generic(float *out, size_t ys, const float *Mo, size_t mps, long t0,
                                int n, float b, const wgeom *g)
{
    const int H = g->H, W = g->W;
    for (int j = 0; j < n; j++) {
        const long t = t0 + j;
        const int img = (int)(t / g->TI), ty = (int)(t % g->TI) / g->TW, tx = (int)(t % g->TW);
        float m[NPOS], y[4];
        for (int p = 0; p < NPOS; p++) m[p] = Mo[p * mps + j];
        out_tile(y, m);
        float *yi = out + img * ys;
        for (int a = 0; a < 2; a++)
            for (int e = 0; e < 2; e++) {
                const int oh = 2 * ty + a, ow = 2 * tx + e;
                if (oh < H && ow < W) yi[(size_t)oh * W + ow] = y[a * 2 + e] + b;
            }
    }
}

/* out_channel, vectorised over up to 8 tiles of a tile row (16 output columns). */
#ifdef AC_X86_64
static AC_TARGET_AVX512 void out_channel_avx512(float *out, size_t ys, const float *Mo,
                                                size_t mps, long t0, int n, float b,
                                                const wgeom *g)
{
    const int H = g->H, W = g->W;
    const __m512 vb = _mm512_set1_ps(b);
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7,
                                         23);
    for (int j = 0; j < n;) {
        const long t = t0 + j;
        const int img = (int)(t / g->TI), ty = (int)(t % g->TI) / g->TW, tx = (int)(t % g->TW);
        const int len = AC_MIN(AC_MIN(8, g->TW - tx), n - j);
        const __mmask16 mk = (__mmask16)((1u << len) - 1);
        __m512 m[NPOS], s0[4], s1[4];
        for (int p = 0; p < NPOS; p++) m[p] = _mm512_maskz_loadu_ps(mk, Mo + p * mps + j);
        for (int q = 0; q < 4; q++) {
            s0[q] = _mm512_add_ps(_mm512_add_ps(m[q], m[4 + q]), m[8 + q]);
            s1[q] = _mm512_sub_ps(_mm512_sub_ps(m[4 + q], m[8 + q]), m[12 + q]);
        }
        const __m512 y0 = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
        const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
        const __m512 y2 = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
        const __m512 y3 = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
        const int ncol = AC_MIN(2 * len, W - 2 * tx);
        const __mmask16 ms = (__mmask16)((1u << ncol) - 1);
        float *row = out + img * ys + (size_t)(2 * ty) * W + 2 * tx;
        _mm512_mask_storeu_ps(row, ms, _mm512_add_ps(_mm512_permutex2var_ps(y0, il, y1), vb));
        if (2 * ty + 1 < H)
            _mm512_mask_storeu_ps(row + W, ms,
                                  _mm512_add_ps(_mm512_permutex2var_ps(y2, il, y3), vb));
        j += len;
    }
}
#endif
#define out_channel_avx2 out_channel_generic
#define out_channel_neon out_channel_generic

/* ------------------------------------------------------------------- driver */

typedef struct {
    const wgeom *g;
    const ac_gemm_kernel *kr;
    const float *U; /* every group's packed U */
    const float *bias;
} wctx;

/* Tiles [t0, t0 + n), n <= chunk_tiles: per group and row i of B^T, V of four positions and
 * their gemms into M; then the output transform. s: scratch of thread_floats(g, kr, nt).
 * Thread t of P (P > 1: inside a parallel region, nt 1) takes only its share of each group's
 * output channels, in whole A panels (every thread transforms all of V). */
static void wino_chunk(float *out, const float *x, long t0, int n, const wctx *cx, float *s,
                       int nt, int t, int P)
{
    const wgeom *g = cx->g;
    const ac_gemm_kernel *kr = cx->kr;
    const size_t HW = (size_t)g->H * g->W, xs = (size_t)g->C * HW, ys = (size_t)g->O * HW;
    const size_t ups = u_floats(g, kr->mr), mps = m_floats(g, kr->nr),
                 vps = v_floats(g, kr->nr);
    float *V = s, *M = V + 4 * vps, *gw = M + NPOS * mps;
    pview vb[4];
    for (int j = 0; j < 4; j++) vb[j] = make_pview(V + j * vps, n, g->Cg, kr->nr, kr);
    const ac_range os = ac_split(g->Og, kr->mr, t, P);
    const int o0 = (int)os.lo, o1 = (int)os.hi;
    if (o1 <= o0) return;
    for (int gi = 0; gi < g->G; gi++) {
        for (int i = 0; i < 4; i++) {
            in_transform(vb, x + (size_t)gi * g->Cg * HW, xs, t0, n, i, g, kr->isa, nt);
            for (int j = 0; j < 4; j++) /* bf16: into the kernel's panels */
                ac_gemm_convert_prepacked(kr, vb[j].p, vb[j].xpad, g->Cg, kr->nr);
            for (int j = 0; j < 4; j++) {
                const int p = i * 4 + j;
                const ac_gemm_prepacked ua = {cx->U + ((size_t)gi * NPOS + p) * ups,
                                              round_up(g->Og, kr->mr)};
                const ac_gemm_prepacked vv = {vb[j].p, vb[j].xpad};
                const ac_gemm_operand U = {NULL, ac_gemm_prepacked_at, &ua},
                                      B = {NULL, ac_gemm_prepacked_at, &vv};
                const ac_gemm_rows ur = {&U, o0};
                const ac_gemm_operand A = ac_gemm_rows_of(&ur);
                ac_gemm_run(kr, o1 - o0, n, g->Cg, 1.f, &A, &B, 0.f,
                            M + p * mps + (size_t)o0 * n, n, gw, nt);
            }
        }
        float *yg = out + (size_t)gi * g->Og * HW;
        __typeof__(out_channel_generic) *out_channel = AC_ISA_PICK(kr->isa, out_channel);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int o = o0; o < o1; o++) {
            const float b = cx->bias ? cx->bias[gi * g->Og + o] : 0.f;
            out_channel(yg + o * HW, ys, M + (size_t)o * n, mps, t0, n, b, g);
        }
    }
}

static void wino_tiles(float *out, const float *x, long t0, long t1, const wctx *cx, float *s,
                       int nt, int t, int P)
{
    const int ct = chunk_tiles(cx->g, cx->kr->nr);
    for (long c = t0; c < t1; c += ct)
        wino_chunk(out, x, c, (int)AC_MIN((long)ct, t1 - c), cx, s, nt, t, P);
}

size_t ac_winograd3x3_weights_floats(int C, int O, int groups)
{
    if (groups < 1) return 16;
    const wgeom g = make_wgeom(1, C, 1, 1, O, groups);
    size_t f = 16;
    for (int i = 0; i < ac_gemm_nkernels; i++) /* any kernel chosen later */
        f = AC_MAX(f, (size_t)g.G * NPOS * u_floats(&g, ac_gemm_kernels[i].mr));
    return f;
}

void ac_winograd3x3_transform_weights(float *U, const float *weight, int C, int O, int groups,
                                      const ac_ctx *ctx, int nthreads)
{
    if (O <= 0 || groups < 1) return;
    const wgeom g = make_wgeom(1, C, 1, 1, O, groups);
    weight_transform(U, weight, &g, ac_gemm_kernel_for(ctx), AC_MAX(nthreads, 1));
}

/* Thread t of T: its tiles (whole B panels) by_tiles, else its output channels of every
 * tile. */
typedef struct {
    float *out;
    const float *x;
    const wctx *cx;
    int by_tiles;
} wino_team;

static void wino_share(void *ctx, int t, int T, float *ts)
{
    const wino_team *w = (const wino_team *)ctx;
    const long TT = (long)w->cx->g->N * w->cx->g->TI;
    if (w->by_tiles) {
        const ac_range r = ac_split(TT, w->cx->kr->nr, t, T);
        wino_tiles(w->out, w->x, r.lo, r.hi, w->cx, ts, 1, 0, 1);
    } else {
        wino_tiles(w->out, w->x, 0, TT, w->cx, ts, 1, t, T);
    }
}

/* Every tile, with U transformed for kr's path; tw: the per-thread scratch. Threads share
 * out the tiles (whole B panels) when there are chunks enough for each, else the output
 * channels of every chunk (a batch of one). */
static void run(float *out, const float *x, const float *U, const float *bias, const wgeom *g,
                const ac_gemm_kernel *kr, float *tw, int nt)
{
    const wctx cx = {g, kr, U, bias};
    const long TT = (long)g->N * g->TI;
    if (nt <= 1) {
        wino_tiles(out, x, 0, TT, &cx, tw, 1, 0, 1);
        return;
    }
    wino_team w = {out, x, &cx, TT >= (long)nt * chunk_tiles(g, kr->nr)};
    ac_team_run(nt, wino_share, &w, tw, thread_floats(g, kr, 1));
}

void ac_winograd3x3(float *out, const float *x, const float *weight, const float *bias, int N,
                    int C, int H, int W, int O, int groups, float *work, const ac_ctx *ctx,
                    int nthreads)
{
    if (N <= 0 || O <= 0 || groups < 1) return;
    const wgeom g = make_wgeom(N, C, H, W, O, groups);
    const int nt = AC_MAX(nthreads, 1);
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    weight_transform(work, weight, &g, kr, nt);
    run(out, x, work, bias, &g, kr, work + (size_t)g.G * NPOS * u_floats(&g, kr->mr), nt);
}

void ac_winograd3x3_pretransformed(float *out, const float *x, const float *U,
                                   const float *bias, int N, int C, int H, int W, int O,
                                   int groups, float *work, const ac_ctx *ctx, int nthreads)
{
    if (N <= 0 || O <= 0 || groups < 1) return;
    const wgeom g = make_wgeom(N, C, H, W, O, groups);
    run(out, x, U, bias, &g, ac_gemm_kernel_for(ctx), work, AC_MAX(nthreads, 1));
}
