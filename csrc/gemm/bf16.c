/* bf16 GEMM pieces shared by every path: the rounding, the CPU check and the conversion of packed fp32 panels into bf16 k-pair panels.
 *
 * bf16 packed layout (what the micro-kernels read: ukernel_avx512bf16_6x64.c and the
 * portable reference ukernel_generic_bf16_4x8.c): a panel of R rows over depth kc holds
 * kp = ceil(kc/2) k-pairs; pair p is R 32-bit words, word i = (bf16 of row i at depth 2p in
 * the low half, at depth 2p+1 in the high half), the missing depth of an odd kc being 0.
 * It is what vdpbf16ps multiplies: lane i of C += lo(a)*lo(b) + hi(a)*hi(b). A panel takes
 * kp*R words (floats' worth of memory), about half of its fp32 twin. */
#include <string.h>
#include "ac_bf16.h"
#include "ac_cpu.h"
#include "gemm_internal.h"

uint16_t ac_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) /* NaN: keep it, quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    if ((u & 0x7f800000u) == 0) /* zero or denormal: signed zero, as vcvtne2ps2bf16 */
        return (uint16_t)((u >> 16) & 0x8000u);
    /* Nearest even: add 0x7fff plus the lowest kept bit; overflow carries into the exponent
     * (to infinity past the largest bf16), as it should. */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void ac_bf16_round_floats(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ac_bf16_to_float(ac_bf16_round(src[i]));
}

int ac_bf16_supported(void)
{
#ifdef AC_X86_64
    __builtin_cpu_init();
    return ac_isa_supported(AC_ISA_AVX512) && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* ---- fp32 panels -> bf16 k-pair panels ----
 * src: ceil(nx/R) panels of kc*R floats ([k][R]); dst: the same panels at kp*R words.
 * dst may be src or lie before it: every output word then lies at or before the inputs it
 * is made of (kp <= kc, p <= 2p) and a pair is read before it is written, so one forward
 * sweep converts in place. */
void ac_bf16_convert_generic(float *dst, const float *src, int nx, int kc, int R)
{
    const int kp = (kc + 1) / 2;
    uint32_t *out = (uint32_t *)dst;
    for (int q = 0; q < nx; q += R) {
        const float *in = src + (size_t)(q / R) * kc * R;
        uint32_t *o = out + (size_t)(q / R) * kp * R;
        for (int p = 0; p < kp; p++)
            for (int i = 0; i < R; i++) {
                const float lo = in[(size_t)2 * p * R + i];
                const float hi = 2 * p + 1 < kc ? in[(size_t)(2 * p + 1) * R + i] : 0.f;
                o[(size_t)p * R + i] = ac_bf16_round(lo) | (uint32_t)ac_bf16_round(hi) << 16;
            }
    }
}

#ifdef AC_X86_64
AC_TARGET_AVX512BF16 void ac_bf16_convert_avx512(float *dst, const float *src, int nx, int kc,
                                                 int R)
{
    const int kp = (kc + 1) / 2;
    /* word j of 16 = (element j, element 16 + j) of the 32 bf16 cvtne2ps makes */
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    uint16_t *out = (uint16_t *)dst;
    for (int q = 0; q < nx; q += R) {
        const float *in = src + (size_t)(q / R) * kc * R;
        uint16_t *o = out + (size_t)2 * (q / R) * kp * R;
        for (int p = 0; p < kp; p++) {
            const float *r0 = in + (size_t)2 * p * R, *r1 = r0 + R;
            const int has1 = 2 * p + 1 < kc;
            for (int i = 0; i < R; i += 16) {
                const int n = AC_MIN(16, R - i);
                const __mmask16 m = (__mmask16)((1u << n) - 1);
                const __m512 lo = _mm512_maskz_loadu_ps(m, r0 + i);
                const __m512 hi = has1 ? _mm512_maskz_loadu_ps(m, r1 + i) : _mm512_setzero_ps();
                const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                _mm512_mask_storeu_epi16(o + (size_t)2 * (p * R + i),
                                         (__mmask32)(((uint64_t)1 << (2 * n)) - 1),
                                         _mm512_permutexvar_epi16(ilv, w));
            }
        }
    }
}
#endif
