/* AVX512-VNNI int8 micro-kernel: a 6 x 64 tile in 24 zmm accumulators; each k-quad loads
 * four vectors of the B panel (16 columns x 4 s8 each) and vpdpbusd adds the four u8 x s8
 * products of each column to it for every row's broadcast quad (exact: at most
 * 4 x 255 x 128 per step, sums below 2^31 for the depths of ac_int8.h). Its store is the
 * AVX2 one.
 *
 * Built with AC_I8_SIMDE (tests/int8_simde.c), the same source compiles against SIMDe's
 * portable implementations of these intrinsics, so the kernel is checked bitwise against
 * the reference on CPUs without VNNI too. */
#ifdef AC_I8_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define AC_TARGET_VNNI
#define AC_I8_VNNI_BUILT 1
#else
#include "ac_simd.h"
#ifdef AC_X86_64 /* x86-64 only */
#define AC_TARGET_VNNI __attribute__((target("avx512f,avx512vnni")))
#define AC_I8_VNNI_BUILT 1
#endif
#endif
#include "int8_internal.h"
#ifdef AC_I8_VNNI_BUILT

#define MR AC_I8_VNNI_MR
#define NR AC_I8_VNNI_NR
#define NV (NR / 16)

AC_TARGET_VNNI void ac_i8_ukernel_vnni(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp,
                                       int32_t *tile, int add)
{
    (void)lda; /* quad-interleaved A panels */
    __m512i acc[MR][NV];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[i][v] = add ? _mm512_loadu_si512((const void *)(tile + i * NR + 16 * v))
                            : _mm512_setzero_si512();
    for (int q = 0; q < kq; q++, Ap += 4 * MR, Bp += 4 * NR) {
        __m512i b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_si512((const void *)(Bp + 64 * v));
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            int32_t a4;
            __builtin_memcpy(&a4, Ap + 4 * i, 4);
            const __m512i a = _mm512_set1_epi32(a4);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], a, b[v]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm512_storeu_si512((void *)(tile + i * NR + 16 * v), acc[i][v]);
}
#endif
