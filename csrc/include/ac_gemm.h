/* Single-precision GEMM on row-major matrices.
 *
 *   C[M,N] = alpha * op(A)[M,K] . op(B)[K,N] + beta * C[M,N]
 *
 * op(A) = A, stored M x K with row stride lda (trans_a = 0), or A^T with A stored
 * K x M (trans_a = 1); likewise B. beta == 0 means C is write-only (NaNs in C ignored).
 * work: scratch of at least ac_sgemm_work_floats(nthreads) floats, any alignment.
 * nthreads: threads to use; 1 runs on the caller's thread (safe inside an OpenMP region).
 */
#ifndef AC_GEMM_H
#define AC_GEMM_H
#include "ac_common.h"

size_t ac_sgemm_work_floats(int nthreads);

void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc, float *work, int nthreads);

#endif
