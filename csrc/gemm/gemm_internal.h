/* Internal to csrc/gemm: the per-ISA micro-kernels and packers the driver picks from.
 *
 * Adding a path (say a new tile or data type): a micro-kernel file ukernel_<isa>_<MR>x<NR>.c
 * with an ac_ukernel_fn, its tile and blocks in blocking.h, a row of `kernels` in driver.c
 * (which path it serves), and packers if its panels are not the plain float layout of
 * ac_gemm_pack_fn (see ac_gemm.h). */
#ifndef AC_GEMM_INTERNAL_H
#define AC_GEMM_INTERNAL_H
#include <immintrin.h>

#include "ac_gemm.h"
#include "ac_simd.h"
#include "blocking.h"

/* The micro-kernels' write-back of one row of their tile: c[j] := alpha * acc[j], plus
 * beta * c[j] unless beta == 0 (C then write-only). Portable: nr floats. */
static inline void ac_store_row_generic(float *c, const float *acc, int nr, float alpha,
                                        float beta)
{
    if (beta == 0.f)
        for (int j = 0; j < nr; j++) c[j] = alpha * acc[j];
    else
        for (int j = 0; j < nr; j++) c[j] = alpha * acc[j] + beta * c[j];
}

/* AVX-512: nv vectors of 16 (the last masked by mlast), one rounding for the beta term. */
AC_INLINE AC_TARGET_AVX512 void ac_store_row_avx512(float *c, const __m512 *acc, int nv,
                                                    __mmask16 mlast, __m512 va, __m512 vb,
                                                    float beta)
{
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        const __mmask16 m = v == nv - 1 ? mlast : (__mmask16)0xffff;
        __m512 r = _mm512_mul_ps(acc[v], va);
        if (beta != 0.f) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c + 16 * v), vb, r);
        _mm512_mask_storeu_ps(c + 16 * v, m, r);
    }
}

void ac_ukernel_generic_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                            float alpha, float beta, int mr, int nr);
void ac_ukernel_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                          float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512_6x64(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                            float alpha, float beta, int mr, int nr);

/* bf16 (bf16.c, ukernel_*bf16*.c): micro-kernels over k-pair panels, and the conversion of
 * nx rows of packed fp32 panels into them (the kernel context's convert). */
void ac_ukernel_generic_bf16_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                                 float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512bf16_6x64(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                                float alpha, float beta, int mr, int nr);
void ac_bf16_convert_generic(float *dst, const float *src, int nx, int kc, int R);
void ac_bf16_convert_avx512(float *dst, const float *src, int nx, int kc, int R);

/* Pack panels of R rows from element (x, k) = p[x*sx + k*sk], rows [0, nx), depth [0, kc). */
void ac_pack_generic(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
void ac_pack_avx2(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
void ac_pack_avx512(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);

/* Small-output path (small.c): M or N at most AC_SMALL_MAX, no packing. Returns 0 (nothing
 * done) when the shape or the scratch size does not suit it. */
#define AC_SMALL_MAX 8
int ac_sgemm_small(int isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc, float *work, int nthreads);

#endif
