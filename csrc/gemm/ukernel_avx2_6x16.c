/* AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators; each k step loads two
 * vectors of the B micro-panel and broadcasts six values of the A micro-panel. Edge tiles
 * run a variant with only the rows and vectors they need (masked on the last vector). */
#include <immintrin.h>
#include "gemm_internal.h"

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
    /* The C tile is read only at the end: start bringing it to L2 now. */
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
        const char *cr = (const char *)(c + (size_t)i * ldc);
        _mm_prefetch(cr, _MM_HINT_T1);
        _mm_prefetch(cr + 32 * nv - 4, _MM_HINT_T1);
    }

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
    const __m256i all = _mm256_set1_epi32(-1);
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
        float *cr = c + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __m256i m = v == nv - 1 ? mlast : all;
            __m256 r = _mm256_mul_ps(acc[i][v], va);
            if (beta != 0.f) r = _mm256_fmadd_ps(_mm256_maskload_ps(cr + 8 * v, m), vb, r);
            _mm256_maskstore_ps(cr + 8 * v, m, r);
        }
    }
}

/* One case per row count, a few to a line. */
/* clang-format off */
#define T(R, V) tile(kc, Ap, Bp, C, ldc, alpha, beta, R, V, m); return
#define ALL_ROWS(V) case 1: T(1, V); case 2: T(2, V); case 3: T(3, V); \
    case 4: T(4, V); case 5: T(5, V); case 6: T(6, V)
/* clang-format on */

AC_TARGET_AVX2 void ac_ukernel_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C,
                                         size_t ldc, float alpha, float beta, int mr, int nr)
{
    int nv = (nr + 7) >> 3, last = nr - 8 * (nv - 1);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(last),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (nv == NV && mr == MR) {
        T(MR, NV);
    }
    if (nv == 2) {
        switch (mr) {
            ALL_ROWS(2);
        }
    }
    if (nv == 1) {
        switch (mr) {
            ALL_ROWS(1);
        }
    }
}
