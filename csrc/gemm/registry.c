/* The registry of GEMM micro-kernels: one row per (ISA path, precision) with its tile, cache
 * blocks (blocking.h, with the measurements behind them) and operand conversion.
 *
 * Adding a precision or an architecture: the micro-kernel file(s), its blocks in blocking.h
 * and a row here. A precision's portable row (AC_ISA_GENERIC) is its reference twin: the
 * tests compare the SIMD rows against it, and a path without a row of that precision runs
 * it (the bindings refuse the SIMD paths that lack one, so this serves the generic path). */
#include "gemm_internal.h"

const ac_gemm_kernel ac_gemm_kernels[] = {
    /* isa, precision, mr, nr, kc, mc, nc, mb, micro-kernel, conversion of packed panels */
    {AC_ISA_GENERIC, AC_FP32, AC_GENERIC_MR, AC_GENERIC_NR, AC_GENERIC_KC, AC_GENERIC_MC,
     AC_GENERIC_NC, AC_GENERIC_MB, ac_ukernel_generic_4x8, NULL},
#ifdef AC_X86_64
    {AC_ISA_AVX2, AC_FP32, AC_AVX2_MR, AC_AVX2_NR, AC_AVX2_KC, AC_AVX2_MC, AC_AVX2_NC,
     AC_AVX2_MB, ac_ukernel_avx2_6x16, NULL},
    {AC_ISA_AVX512, AC_FP32, AC_AVX512_MR, AC_AVX512_NR, AC_AVX512_KC, AC_AVX512_MC,
     AC_AVX512_NC, AC_AVX512_MB, ac_ukernel_avx512_6x64, NULL},
#endif
    {AC_ISA_GENERIC, AC_BF16, AC_GENERIC_MR, AC_GENERIC_NR, AC_GENERIC_KC, AC_GENERIC_MC,
     AC_GENERIC_NC, AC_GENERIC_MB, ac_ukernel_generic_bf16_4x8, ac_bf16_convert_generic},
#ifdef AC_X86_64
    {AC_ISA_AVX512, AC_BF16, AC_AVX512BF16_MR, AC_AVX512BF16_NR, AC_AVX512BF16_KC,
     AC_AVX512BF16_MC, AC_AVX512BF16_NC, AC_AVX512BF16_MB, ac_ukernel_avx512bf16_6x64,
     ac_bf16_convert_avx512},
#endif
#ifdef AC_AARCH64
    {AC_ISA_NEON, AC_FP32, AC_NEON_MR, AC_NEON_NR, AC_NEON_KC, AC_NEON_MC, AC_NEON_NC,
     AC_NEON_MB, ac_ukernel_neon_8x12, NULL},
#endif
};
const int ac_gemm_nkernels = (int)(sizeof ac_gemm_kernels / sizeof ac_gemm_kernels[0]);

const ac_gemm_kernel *ac_gemm_kernel_for(const ac_ctx *ctx)
{
    const ac_gemm_kernel *ref = &ac_gemm_kernels[0];
    for (int i = 0; i < ac_gemm_nkernels; i++) {
        const ac_gemm_kernel *k = &ac_gemm_kernels[i];
        if (k->precision != ctx->precision) continue;
        if (k->isa == ctx->isa) return k;
        if (k->isa == AC_ISA_GENERIC) ref = k;
    }
    return ref;
}

/* The int8 rows (ac_int8.h, int8_internal.h): a table of their own, since an int8
 * micro-kernel takes u8/s8 panels and leaves s32 sums for a requantizing store, which the
 * fp32 signature (float panels, alpha/beta write-back, K blocks) cannot carry. The first row
 * is the portable reference; AC_ISA_AVX512 is the AVX512-VNNI row. */
#include "int8_internal.h"

const ac_i8_kernel ac_i8_kernels[] = {
    /* isa, amx, mr, nr, kq_step, a_rows, a_bytes (the packed A block: the AMX row's CPUs
     * have 2 MiB of L2, and 1.5 MiB takes fc6's 128 rows of a batch in one pass over its
     * 37.7 MB of weights: 4.4 -> 2.5 ms, 2 threads), ukernel, store, conv, prepare */
    {AC_ISA_GENERIC, 0, AC_I8_GENERIC_MR, AC_I8_GENERIC_NR, 1, 0, 128 << 10,
     ac_i8_ukernel_generic, ac_i8_store_generic},
#ifdef AC_X86_64
    {AC_ISA_AVX2, 0, AC_I8_AVX2_MR, AC_I8_AVX2_NR, 1, 0, 128 << 10, ac_i8_ukernel_avx2,
     ac_i8_store_avx2},
    {AC_ISA_AVX512, 0, AC_I8_VNNI_MR, AC_I8_VNNI_NR, 1, 0, 512 << 10, ac_i8_ukernel_vnni,
     ac_i8_store_avx512},
#ifdef AC_I8_AMX_BUILT
    {AC_ISA_AVX512, 1, AC_I8_AMX_MR, AC_I8_AMX_NR, AC_I8_AMX_KQ, 1, 1536 << 10,
     ac_i8_ukernel_amx, ac_i8_store_avx512, ac_i8_conv_amx, ac_i8_amx_prepare},
#endif
#endif
};
const int ac_i8_nkernels = (int)(sizeof ac_i8_kernels / sizeof ac_i8_kernels[0]);
