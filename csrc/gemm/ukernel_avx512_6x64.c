/* AVX-512 micro-kernel: a 6 x 64 tile of C (MR x NR, blocking.h) in MR*NR/16 = 24 zmm
 * accumulators; each k step loads NR/16 vectors of the B micro-panel and broadcasts MR
 * values of the A micro-panel. Edge tiles run a variant with only the rows and vectors
 * they need (masked on the last vector), so every element of C sees the same arithmetic
 * whatever tile it falls in: results do not depend on how the driver splits the work. */
#include "gemm_internal.h"
#ifdef AC_X86_64 /* x86-64 only (ac_simd.h) */

#define MR AC_AVX512_MR
#define NR AC_AVX512_NR
#define NV (NR / 16)

/* One k step: acc[i][v] += A[i] * B[16v : 16v+16]. */
static inline __attribute__((always_inline)) AC_TARGET_AVX512 void
kstep(__m512 acc[MR][NV], const float *a, const float *b, const int rows, const int nv)
{
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) {
        __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
}

static inline __attribute__((always_inline)) AC_TARGET_AVX512 void
tile(int kc, const float *restrict a, const float *restrict b, float *restrict c, size_t ldc,
     float alpha, float beta, const int rows, const int nv, __mmask16 mlast)
{
    __m512 acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    }
    ac_prefetch_c_tile(c, ldc, rows, 64 * nv);
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        kstep(acc, a, b, rows, nv);
        a += MR;
        b += NR;
    }

    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++)
        ac_store_row_avx512(c + (size_t)i * ldc, acc[i], nv, mlast, va, vb, beta);
}

AC_TARGET_AVX512 void ac_ukernel_avx512_6x64(int kc, const float *Ap, const float *Bp, float *C,
                                             size_t ldc, float alpha, float beta, int mr,
                                             int nr)
{
    const int nv = (nr + 15) >> 4;
    const __mmask16 m = (__mmask16)(0xffffu >> (16 * nv - nr));
#define TILE(R, V) return tile(kc, Ap, Bp, C, ldc, alpha, beta, R, V, m)
    AC_UKERNEL_TILES(TILE, mr, nv, MR, NV);
#undef TILE
}
#endif
