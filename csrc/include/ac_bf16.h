/* bfloat16 as a compute precision: GEMM operands rounded to bf16 (round to nearest even)
 * while packing, products summed in fp32, C and everything stored in fp32.
 *
 * bf16 = the top 16 bits of an IEEE float32 (8-bit exponent, 8-bit significand). The
 * rounding here is the one of AVX512_BF16's vcvtne2ps2bf16, so the portable reference
 * path and the vdpbf16ps path see the same operands: nearest even, NaN stays NaN (quiet),
 * denormal inputs become zero of the same sign. */
#ifndef AC_BF16_H
#define AC_BF16_H
#include <stdint.h>
#include "ac_ctx.h"

uint16_t ac_bf16_round(float x);
static inline float ac_bf16_to_float(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16};
    return v.f;
}

/* dst[i] = float(bf16(src[i])): the values a bf16 GEMM multiplies (dst may be src). */
void ac_bf16_round_floats(float *dst, const float *src, size_t n);

/* 1 if this CPU has AVX512_BF16 next to the AVX-512 path. */
int ac_bf16_supported(void);

/* Measured vdpbf16ps peak: independent dot-product chains as ac_fma_peak_gflops, counting
 * 2 flops per bf16 product (64 per instruction). 0 if the CPU lacks AVX512_BF16. */
double ac_bf16_peak_gflops(double seconds, int nthreads);

#endif
