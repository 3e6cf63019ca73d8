/* Portable C micro-kernel: a 4 x 8 tile of C; the reference twin of the SIMD kernels and the
 * path for CPUs without AVX2. Packed panels are zero padded, so edge tiles compute the full
 * tile and store only mr x nr. */
#include "gemm_internal.h"

#define MR AC_GENERIC_MR
#define NR AC_GENERIC_NR

void ac_ukernel_generic_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                            float alpha, float beta, int mr, int nr)
{
    float acc[MR][NR] = {{0.f}};
    for (int k = 0; k < kc; k++) {
        const float *a = Ap + (size_t)k * MR, *b = Bp + (size_t)k * NR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < mr; i++)
        ac_store_row_generic(C + (size_t)i * ldc, acc[i], nr, alpha, beta);
}
