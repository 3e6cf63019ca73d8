/* sgemm with op(B) packed once ahead (ac_gemm.h): the weights of a linear layer at
 * inference, so a call packs only A (the batch), and in bf16 streams half the bytes of
 * fp32 weights: at batch 1 the product is that stream. The packed buffer starts with a
 * header saying what it was packed for. */
#include <string.h>

#include "gemm_internal.h"

#define HEADER 16 /* floats */
#define MAGIC 0x41435042 /* "ACPB" */
enum { H_MAGIC, H_ISA, H_PREC, H_N, H_K, H_N_FIELDS };

size_t ac_sgemm_packed_b_floats(int N, int K) { return HEADER + ac_gemm_prepack_floats(N, K); }

void ac_sgemm_pack_b(float *packed, int trans_b, int N, int K, const float *B, int ldb,
                     const ac_ctx *ctx, int nthreads)
{
    const int h[H_N_FIELDS] = {MAGIC, ctx->isa, ctx->precision, N, K};
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    const ac_gemm_matrix bm = {B, trans_b ? (size_t)ldb : 1, trans_b ? 1 : (size_t)ldb};
    memset(packed, 0, HEADER * sizeof(float));
    memcpy(packed, h, sizeof h);
    ac_gemm_prepack(packed + HEADER, ac_gemm_pack_matrix, &bm, N, K, kr->nr, kr,
                    AC_MAX(nthreads, 1));
}

int ac_sgemm_packed_b(int trans_a, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *packed, float beta, float *C, int ldc, float *work,
                      const ac_ctx *ctx, int nthreads)
{
    int h[H_N_FIELDS];
    memcpy(h, packed, sizeof h);
    if (h[H_MAGIC] != MAGIC || h[H_ISA] != ctx->isa || h[H_PREC] != ctx->precision ||
        h[H_N] != N || h[H_K] != K)
        return -1;
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    const ac_gemm_matrix am = {A, trans_a ? 1 : (size_t)lda, trans_a ? (size_t)lda : 1};
    const ac_gemm_prepacked bp = {packed + HEADER, (int)ac_round_up(N, kr->nr)};
    const ac_gemm_operand ao = {ac_gemm_pack_matrix, NULL, &am};
    const ac_gemm_operand bo = {NULL, ac_gemm_prepacked_at, &bp};
    ac_gemm_run(kr, M, N, K, alpha, &ao, &bo, beta, C, ldc, work, nthreads);
    return 0;
}
