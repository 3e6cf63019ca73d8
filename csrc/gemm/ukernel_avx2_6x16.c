/* AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators; each k step loads two
 * vectors of the B micro-panel and broadcasts six values of the A micro-panel. Edge tiles
 * run a variant with only the rows and vectors they need (masked on the last vector). */
#include "gemm_internal.h"
#ifdef AC_X86_64 /* x86-64 only (ac_simd.h) */

#define MR AC_AVX2_MR
#define NR AC_AVX2_NR
#define NV (NR / 8)

static inline __attribute__((always_inline)) AC_TARGET_AVX2 void
tile(int kc, const float *restrict a, const float *restrict b, float *restrict c, size_t ldc,
     float alpha, float beta, const int rows, const int nv, __m256i mlast)
{
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
    }
    ac_prefetch_c_tile(c, ldc, rows, 32 * nv);

#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m256 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < rows; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }

    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++)
        ac_store_row_avx2(c + (size_t)i * ldc, acc[i], nv, mlast, va, vb, beta);
}

AC_TARGET_AVX2 void ac_ukernel_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C,
                                         size_t ldc, float alpha, float beta, int mr, int nr)
{
    const int nv = (nr + 7) >> 3, last = nr - 8 * (nv - 1);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(last),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#define TILE(R, V) return tile(kc, Ap, Bp, C, ldc, alpha, beta, R, V, m)
    AC_UKERNEL_TILES(TILE, mr, nv, MR, NV);
#undef TILE
}
#endif
