/* The context of a kernel call: which variant of the arithmetic runs. Every entry point that
 * has variants takes one (as BLIS passes its cntx_t), beside the thread count; no kernel
 * reads a process-wide setting, so calls with different contexts may run at once. The
 * Python bindings resolve it for each call (alexnet_cpu/_kernels/ctx.pxi). */
#ifndef AC_CTX_H
#define AC_CTX_H
#include "ac_common.h"

/* What the GEMMs multiply: fp32 (bitwise reproducible), or bf16 operands with fp32 sums
 * (ac_bf16.h). */
enum ac_precision { AC_FP32 = 0, AC_BF16 = 1 };

/* Whether 3x3 stride-1 pad-1 convolutions take Winograd F(2x2, 3x3): where it measured
 * faster (csrc/conv/forward.c), never, or always. */
enum ac_winograd { AC_WINOGRAD_AUTO = 0, AC_WINOGRAD_OFF = 1, AC_WINOGRAD_ON = 2 };

typedef struct ac_ctx {
    int isa; /* enum ac_isa: the SIMD variant of every kernel; the CPU must support it */
    int precision; /* enum ac_precision */
    int winograd; /* enum ac_winograd */
    int amx; /* 1: the int8 GEMMs run on AMX tiles (the CPU must have them: ac_int8.h) */
} ac_ctx;

#endif
