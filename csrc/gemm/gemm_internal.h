/* Internal to csrc/gemm: the per-ISA micro-kernels and packers the driver picks from. */
#ifndef AC_GEMM_INTERNAL_H
#define AC_GEMM_INTERNAL_H
#include "ac_gemm.h"

#define AC_AVX2_FN __attribute__((target("avx2,fma")))
#define AC_AVX512_FN __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define AC_AVX512BF16_FN \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx512bf16")))

/* Micro-tiles per path (the blocking lives in driver.c). */
#define AC_GENERIC_MR 4
#define AC_GENERIC_NR 8
#define AC_AVX2_MR 6
#define AC_AVX2_NR 16
#ifndef AC_AVX512_MR
#define AC_AVX512_MR 6
#endif
#ifndef AC_AVX512_NR
#define AC_AVX512_NR 64
#endif

#ifndef AC_AVX512BF16_MR
#define AC_AVX512BF16_MR 6
#endif
#ifndef AC_AVX512BF16_NR
#define AC_AVX512BF16_NR 64
#endif

void ac_ukernel_generic(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                        float alpha, float beta, int mr, int nr);
void ac_ukernel_avx2(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                     float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                       float alpha, float beta, int mr, int nr);

/* bf16 (bf16.c, ukernel_avx512bf16.c): micro-kernels over k-pair panels, and the conversion
 * of nx rows of packed fp32 panels into them (the kernel context's convert). */
void ac_ukernel_generic_bf16(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                             float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512bf16(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                           float alpha, float beta, int mr, int nr);
void ac_bf16_convert_generic(float *dst, const float *src, int nx, int kc, int R);
void ac_bf16_convert_avx512(float *dst, const float *src, int nx, int kc, int R);

/* Pack panels of R rows from element (x, k) = p[x*sx + k*sk], rows [0, nx), depth [0, kc). */
void ac_pack_generic(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
void ac_pack_avx512(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);

/* Small-output path (small.c): M or N at most AC_SMALL_MAX, no packing. Returns 0 (nothing
 * done) when the shape or the scratch size does not suit it. */
#ifndef AC_SMALL_MAX
#define AC_SMALL_MAX 8
#endif
int ac_sgemm_small(int isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc, float *work, int nthreads);

#endif
