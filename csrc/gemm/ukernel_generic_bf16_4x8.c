/* Portable bf16 micro-kernel: a 4 x 8 tile of C over bf16 k-pair panels (layout in bf16.c),
 * the reference twin of ukernel_avx512bf16_6x64.c and the bf16 kernel of the portable path.
 * Per k-pair the high product is added first, then the low one, each product exact in fp32
 * (8-bit x 8-bit significands) and each sum rounded: vdpbf16ps's order in Intel's
 * definition, so on such hardware this kernel gives the same bits (tests/test_bf16.py). */
#include "ac_bf16.h"
#include "gemm_internal.h"
void ac_ukernel_generic_bf16_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                                 float alpha, float beta, int mr, int nr)
{
    enum { MR = AC_GENERIC_MR, NR = AC_GENERIC_NR };
    const uint32_t *a = (const uint32_t *)Ap, *b = (const uint32_t *)Bp;
    float acc[MR][NR] = {{0.f}};
    for (int p = 0; p < (kc + 1) / 2; p++, a += MR, b += NR)
        for (int i = 0; i < MR; i++) {
            const float alo = ac_bf16_to_float((uint16_t)a[i]);
            const float ahi = ac_bf16_to_float((uint16_t)(a[i] >> 16));
            for (int j = 0; j < NR; j++) {
                float s = acc[i][j] + ahi * ac_bf16_to_float((uint16_t)(b[j] >> 16));
                acc[i][j] = s + alo * ac_bf16_to_float((uint16_t)b[j]);
            }
        }
    for (int i = 0; i < mr; i++)
        ac_store_row_generic(C + (size_t)i * ldc, acc[i], nr, alpha, beta);
}
