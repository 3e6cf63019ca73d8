/* AVX512_BF16 micro-kernel: an MR x NR tile of fp32 C (6 x 64) in MR*NR/16 zmm accumulators
 * over bf16 k-pair panels (layout in bf16.c). Each step covers two k: it loads NR/16 vectors
 * of B pairs, broadcasts the MR A pairs (32 bits each) and issues MR*NR/16 vdpbf16ps, each
 * 32 multiply-adds. Edge tiles run a variant with only the rows and vectors they need
 * (masked on the last vector), so every element of C sees the same arithmetic whatever tile
 * it falls in: results do not depend on how the driver splits the work. */
#include "gemm_internal.h"
#ifdef AC_X86_64 /* x86-64 only (ac_simd.h) */

#define MR AC_AVX512BF16_MR
#define NR AC_AVX512BF16_NR
#define NV (NR / 16)

AC_INLINE AC_TARGET_AVX512BF16 void tile(int kp, const float *restrict a,
                                         const float *restrict b, float *restrict c, size_t ldc,
                                         float alpha, float beta, const int rows, const int nv,
                                         __mmask16 mlast)
{
    __m512 acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    ac_prefetch_c_tile(c, ldc, rows, 64 * nv);
#pragma GCC unroll 2
    for (int p = 0; p < kp; p++, a += MR, b += NR) {
        __m512bh bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
        }
    }

    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++)
        ac_store_row_avx512(c + (size_t)i * ldc, acc[i], nv, mlast, va, vb, beta);
}

AC_TARGET_AVX512BF16 void ac_ukernel_avx512bf16_6x64(int kc, const float *Ap, const float *Bp,
                                                     float *C, size_t ldc, float alpha,
                                                     float beta, int mr, int nr)
{
    const int kp = (kc + 1) / 2;
    const int nv = (nr + 15) >> 4;
    const __mmask16 m = (__mmask16)(0xffffu >> (16 * nv - nr));
#define TILE(R, V) return tile(kp, Ap, Bp, C, ldc, alpha, beta, R, V, m)
    AC_UKERNEL_TILES(TILE, mr, nv, MR, NV);
#undef TILE
}
#endif
