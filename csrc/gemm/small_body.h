/* Template body of the small-output GEMM path (small.c includes it once per ISA).
 *
 * Problem, as small.c normalises it: Y[s, X] = S[s, K] . G[K, X], s <= AC_SMALL_MAX, written
 * to C(i, x) = C[i*ci + x*cx] as alpha * Y + beta * C. G is the big operand, streamed once.
 * The including file defines: SFX(name) (per-ISA suffix), FN (target attribute), VW (lanes),
 * VT (vector type), V_ZERO(), V_LOAD(p), V_LOADN(p, n) (first n lanes, rest 0), V_STORE(p, v),
 * V_SET1(f), V_FMA(a, b, c) (a*b + c), V_SUM(v) (fixed-order horizontal sum), DOT_R(s) (big
 * rows per register tile of the dot kernel).
 * Each element of Y is one fixed sequence of operations whatever x range or tile it falls
 * in, so results do not depend on how threads split X. */

/* Dot kernel (G stored X x K, k-contiguous, row stride ldg; S rows k-contiguous, stride
 * lds): R rows of G x s rows of S in R*s vector accumulators, lanes summing k = lane mod VW,
 * reduced at the end. out[r*s + i] = Y(i, x0 + r). */
static inline __attribute__((always_inline)) FN void
SFX(dot_tile)(const int R, const int s, int K, const float *restrict S, size_t lds,
              const float *restrict G, size_t ldg, float *restrict out)
{
    VT acc[8][AC_SMALL_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int i = 0; i < s; i++) acc[r][i] = V_ZERO();
    int k = 0;
    for (; k + VW <= K; k += VW) {
        VT g[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) g[r] = V_LOAD(G + r * ldg + k);
#pragma GCC unroll 8
        for (int i = 0; i < s; i++) {
            VT a = V_LOAD(S + i * lds + k);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][i] = V_FMA(a, g[r], acc[r][i]);
        }
    }
    if (k < K) {
        const int n = K - k;
        VT g[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) g[r] = V_LOADN(G + r * ldg + k, n);
#pragma GCC unroll 8
        for (int i = 0; i < s; i++) {
            VT a = V_LOADN(S + i * lds + k, n);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][i] = V_FMA(a, g[r], acc[r][i]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int i = 0; i < s; i++) out[r * s + i] = V_SUM(acc[r][i]);
}

/* Y(., x) for x in [x0, x1) by the dot kernel: tiles of DOT_R(s) rows, then single rows. */
static inline __attribute__((always_inline)) FN void
SFX(dot_part_s)(const int s, int x0, int x1, int K, const float *S, size_t lds, const float *G,
                size_t ldg, float alpha, float beta, float *C, size_t ci, size_t cx)
{
    const int R = DOT_R(s);
    float y[8 * AC_SMALL_MAX];
    int x = x0;
    for (; x < x1;) {
        int r = x + R <= x1 ? R : 1;
        if (r == R)
            SFX(dot_tile)(R, s, K, S, lds, G + (size_t)x * ldg, ldg, y);
        else
            SFX(dot_tile)(1, s, K, S, lds, G + (size_t)x * ldg, ldg, y);
        for (int q = 0; q < r; q++)
            for (int i = 0; i < s; i++) {
                float *c = C + i * ci + (size_t)(x + q) * cx;
                *c = beta == 0.f ? alpha * y[q * s + i] : alpha * y[q * s + i] + beta * *c;
            }
        x += r;
    }
}

static FN void SFX(dot_part)(int s, int x0, int x1, int K, const float *S, size_t lds,
                             const float *G, size_t ldg, float alpha, float beta, float *C,
                             size_t ci, size_t cx)
{
    switch (s) { /* one instantiation per s: accumulators stay in registers */
#define CASE(n)                                                                                \
    case n: SFX(dot_part_s)(n, x0, x1, K, S, lds, G, ldg, alpha, beta, C, ci, cx); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

/* Axpy kernel (G stored K x X, x-contiguous, row stride ldg; S(i, k) = S[i*si + k*sk]):
 * columns in chunks of W whose s x W accumulators (acc, in L2) take KG rows of G at a
 * time, the rows read as contiguous streams. acc: s x (W + 16) floats. */
#ifndef KG
#define KG 8
#endif
static FN void SFX(axpy_part)(int s, int x0, int x1, int K, const float *S, size_t si,
                              size_t sk, const float *G, size_t ldg, float alpha, float beta,
                              float *C, size_t ci, size_t cx, float *acc, int W)
{
    for (int xc = x0; xc < x1; xc += W) {
        const int w = AC_MIN(W, x1 - xc), wf = w / VW * VW;
        /* accumulator rows one cache line off 4 KiB multiples (no load/store aliasing) */
        const int wv = (w + VW - 1) / VW * VW, wp = ((w + 15) / 16 * 16 + 31) / 32 * 32 + 16;
        for (int i = 0; i < s; i++)
            for (int v = 0; v < wv; v += VW) V_STORE(acc + (size_t)i * wp + v, V_ZERO());
        const float *g = G + xc;
        int k = 0;
        for (; k + KG <= K; k += KG) {
            const float *g0 = g + (size_t)k * ldg;
            /* row by row of acc: the KG x w block of G stays in L1 for the s rows */
            for (int i = 0; i < s; i++) {
                float *restrict a = acc + (size_t)i * wp;
                VT sv[KG];
#pragma GCC unroll 8
                for (int j = 0; j < KG; j++) sv[j] = V_SET1(S[i * si + (size_t)(k + j) * sk]);
                int v = 0;
                for (; v < wf; v += VW) {
                    VT c = V_LOAD(a + v);
#pragma GCC unroll 8
                    for (int j = 0; j < KG; j++) c = V_FMA(sv[j], V_LOAD(g0 + j * ldg + v), c);
                    V_STORE(a + v, c);
                }
                if (v < w) {
                    VT c = V_LOAD(a + v);
#pragma GCC unroll 8
                    for (int j = 0; j < KG; j++)
                        c = V_FMA(sv[j], V_LOADN(g0 + j * ldg + v, w - v), c);
                    V_STORE(a + v, c);
                }
            }
        }
        for (; k < K; k++) {
            const float *g0 = g + (size_t)k * ldg;
            for (int v = 0; v < wv; v += VW) {
                VT b = v < wf ? V_LOAD(g0 + v) : V_LOADN(g0 + v, w - v);
                for (int i = 0; i < s; i++) {
                    float *a = acc + (size_t)i * wp + v;
                    V_STORE(a, V_FMA(V_SET1(S[i * si + k * sk]), b, V_LOAD(a)));
                }
            }
        }
        for (int i = 0; i < s; i++)
            for (int q = 0; q < w; q++) {
                float *c = C + i * ci + (size_t)(xc + q) * cx;
                const float y = acc[(size_t)i * wp + q];
                *c = beta == 0.f ? alpha * y : alpha * y + beta * *c;
            }
    }
}
#undef KG
/* The instantiation's parameters, so the next ISA can define its own. */
#undef SFX
#undef FN
#undef VW
#undef VT
#undef V_ZERO
#undef V_LOAD
#undef V_LOADN
#undef V_STORE
#undef V_SET1
#undef V_FMA
#undef V_SUM
#undef DOT_R
