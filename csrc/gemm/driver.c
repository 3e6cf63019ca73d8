/* PLACEHOLDER naive sgemm, to be replaced by the blocked, packed driver. */
#include "ac_gemm.h"

size_t ac_sgemm_work_floats(int nthreads) { (void)nthreads; return 1; }

void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc, float *work, int nthreads)
{
    (void)work;
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.f;
            for (int p = 0; p < K; p++) {
                float a = trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                float b = trans_b ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                s += a * b;
            }
            C[(size_t)i * ldc + j] = alpha * s + (beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j]);
        }
}
