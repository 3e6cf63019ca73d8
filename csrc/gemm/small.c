/* Small-output GEMM path: when M or N is at most AC_SMALL_MAX (a Linear layer at batch
 * 1..8), C is a few rows of dot products (or axpys) over one big operand. Packing that
 * operand for the blocked driver costs more than the product, so it is streamed once, as
 * stored, by threads splitting its big dimension; the product is memory-bound.
 *
 * Shape letters: s = the small output dimension, X = the big one, K = depth.
 * Y[s, X] = S[s, K] . G[K, X]: for small M, S = op(A), G = op(B), C(i, x) = C[i*ldc + x];
 * for small N, the transposed problem (S = op(B)^T, G = op(A)^T, C(i, x) = C[x*ldc + i]).
 * G k-contiguous (stored X x K) takes the dot kernel, x-contiguous (K x X) the axpy kernel. */
#include "ac_cpu.h"
#include "ac_parallel.h"
#include "gemm_internal.h"

/* Floats of scratch per thread for the axpy accumulators (s x W, in L1/L2). */
#define AC_SMALL_ACC_FLOATS 8192
/* Largest s = M for the axpy kernel (measured: M = 5..8 no faster than the packed path). */
#define AC_SMALL_AXPY_MAX 4
/* Widest axpy column chunk: KG rows of G and one accumulator row of it fit L1. */
#define AC_SMALL_AXPY_W 1536
/* Below this many multiply-adds one thread is faster than waking a team (the streamed
 * path's threshold: lower than the packed driver's AC_GEMM_SERIAL_MACS). */
#define AC_SMALL_SERIAL_MACS (1 << 17)
/* Threads split X in units of this many columns (whole cache lines of C or G rows). */
#define AC_SMALL_XUNIT 64

/* ---- portable path: "vectors" of one lane ---- */
#define SFX(n) n##_generic
#define FN
#define VW 1
#define VT float
#define V_ZERO() 0.f
#define V_LOAD(p) (*(p))
#define V_LOADN(p, n) ((void)(n), *(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_SET1(f) (f)
#define V_FMA(a, b, c) fmaf_(a, b, c)
#define V_SUM(v) (v)
#define DOT_R(s) ((s) == 1 ? 4 : 2)
static inline float fmaf_(float a, float b, float c) { return a * b + c; }
#include "small_body.h"

#ifdef AC_X86_64
/* ---- AVX2 + FMA: 8 lanes, 16 registers ---- */
AC_INLINE AC_TARGET_AVX2 __m256 loadn_avx2(const float *p, int n)
{
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, m);
}
AC_INLINE AC_TARGET_AVX2 float sum_avx2(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
#define SFX(n) n##_avx2
#define FN AC_TARGET_AVX2
#define VW 8
#define VT __m256
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADN(p, n) loadn_avx2(p, n)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(f) _mm256_set1_ps(f)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_SUM(v) sum_avx2(v)
#define DOT_R(s) ((s) == 1 ? 6 : (s) == 2 ? 4 : (s) <= 4 ? 2 : 1)
#include "small_body.h"

/* ---- AVX-512: 16 lanes, 32 registers ---- */
#define SFX(n) n##_avx512
#define FN AC_TARGET_AVX512
#define VW 16
#define VT __m512
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(f) _mm512_set1_ps(f)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#define DOT_R(s) ((s) == 1 ? 8 : (s) == 2 ? 8 : (s) <= 4 ? 4 : 3)
#include "small_body.h"
#endif

#ifdef AC_AARCH64
/* ---- NEON: 4 lanes, 32 registers ---- */
AC_INLINE float32x4_t loadn_neon(const float *p, int n)
{
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    for (int j = 0; j < n; j++) t[j] = p[j];
    return vld1q_f32(t);
}
#define SFX(n) n##_neon
#define FN
#define VW 4
#define VT float32x4_t
#define V_ZERO() vdupq_n_f32(0.f)
#define V_LOAD(p) vld1q_f32(p)
#define V_LOADN(p, n) loadn_neon(p, n)
#define V_STORE(p, v) vst1q_f32(p, v)
#define V_SET1(f) vdupq_n_f32(f)
#define V_FMA(a, b, c) vfmaq_f32(c, a, b)
#define V_SUM(v) vaddvq_f32(v) /* pairwise: (l0 + l1) + (l2 + l3) */
#define DOT_R(s) ((s) == 1 ? 8 : (s) == 2 ? 8 : (s) <= 4 ? 4 : 3) /* 32 registers, as AVX-512 */
#include "small_body.h"
#endif

/* The normalised problem, and columns [x0, x1) of it on the caller's thread (acc: its
 * AC_SMALL_ACC_FLOATS of axpy accumulators). */
typedef struct {
    int isa, s, X, K;
    const float *S, *G;
    size_t si, sk, lds, gx, gk, ci, cx;
    float alpha, beta, *C, *accs;
} small_problem;

static void small_part(const small_problem *p, int x0, int x1, float *acc)
{
    if (p->gk == 1) {
        __typeof__(dot_part_generic) *dot = AC_ISA_PICK(p->isa, dot_part);
        dot(p->s, x0, x1, p->K, p->S, p->lds, p->G, p->gx, p->alpha, p->beta, p->C, p->ci,
            p->cx);
        return;
    }
    const int W = AC_MIN(AC_SMALL_AXPY_W,
                         (AC_SMALL_ACC_FLOATS / p->s - 16) / AC_SMALL_XUNIT * AC_SMALL_XUNIT);
    __typeof__(axpy_part_generic) *axpy = AC_ISA_PICK(p->isa, axpy_part);
    axpy(p->s, x0, x1, p->K, p->S, p->si, p->sk, p->G, p->gk, p->alpha, p->beta, p->C, p->ci,
         p->cx, acc, W);
}

static void small_team(void *ctx, int t, int T, float *acc)
{
    const small_problem *p = (const small_problem *)ctx;
    const ac_range r = ac_split(p->X, AC_SMALL_XUNIT, t, T);
    if (r.hi > r.lo) small_part(p, (int)r.lo, (int)r.hi, acc);
}

int ac_sgemm_small(int isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc, float *work, int nthreads)
{
    if (M <= 0 || N <= 0 || K <= 0 || alpha == 0.f) return 0;
    int s, X;
    const float *S, *G;
    size_t si, sk, gx, gk, ci, cx;
    if (M <= AC_SMALL_MAX && M <= N) {
        s = M, X = N, S = A, G = B, ci = (size_t)ldc, cx = 1;
        si = trans_a ? 1 : (size_t)lda, sk = trans_a ? (size_t)lda : 1;
        gx = trans_b ? (size_t)ldb : 1, gk = trans_b ? 1 : (size_t)ldb;
    } else if (N <= AC_SMALL_MAX) {
        s = N, X = M, S = B, G = A, ci = 1, cx = (size_t)ldc;
        si = trans_b ? (size_t)ldb : 1, sk = trans_b ? 1 : (size_t)ldb;
        gx = trans_a ? 1 : (size_t)lda, gk = trans_a ? (size_t)lda : 1;
    } else {
        return 0;
    }
    /* Past a few rows of C the axpy kernel's accumulators (in L2) cost more than packing
     * (few columns, s = N, waste most of the packed path's micro-tile: keep it then). */
    if (gk != 1 && s > AC_SMALL_AXPY_MAX && ci != 1) return 0;
    /* Scratch: a k-contiguous copy of S (dot kernel) and per-thread accumulators (axpy).
     * The test depends on shapes only, so the path taken does not depend on nthreads. */
    const size_t per_thread = ac_sgemm_work_floats(1) - AC_ALIGN / sizeof(float);
    const size_t scopy = (gk == 1 && sk != 1) ? ac_pad16((size_t)s * K) : 0;
    if (scopy + AC_SMALL_ACC_FLOATS > per_thread) return 0;
    float *w = ac_align(work);
    size_t lds = sk == 1 ? si : (size_t)K;
    if (scopy) {
        for (int i = 0; i < s; i++)
            for (int k = 0; k < K; k++) w[(size_t)i * K + k] = S[i * si + k * sk];
        S = w;
    }
    const small_problem p = {isa, s,  X,  K,  S,     G,    si, sk,       lds,
                             gx,  gk, ci, cx, alpha, beta, C,  w + scopy};
    const int units = ac_ceil_div(X, AC_SMALL_XUNIT);
    const int nt = (double)s * X * K < AC_SMALL_SERIAL_MACS ? 1 : AC_MIN(nthreads, units);
    if (nt <= 1) /* on the caller's thread (no nested team inside an OpenMP region) */
        small_part(&p, 0, X, p.accs);
    else
        ac_team_run(nt, small_team, (void *)&p, p.accs, AC_SMALL_ACC_FLOATS);
    return 1;
}
