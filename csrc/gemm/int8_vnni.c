/* AVX512-VNNI int8 micro-kernel: a 6 x 64 tile in 24 zmm accumulators; each k-quad loads
 * four vectors of the B panel (16 columns x 4 s8 each) and vpdpbusd adds the four u8 x s8
 * products of each column to it for every row's broadcast quad (exact: at most
 * 4 x 255 x 128 per step, sums below 2^31 for the depths of ac_int8.h). Its store is
 * ac_i8_store_avx512 below, shared with the AMX row.
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

/* x86-64 only; SIMDe's harness (AC_I8_SIMDE) pairs the VNNI kernel with the reference store. */
#if defined(AC_I8_VNNI_BUILT) && !defined(AC_I8_SIMDE)
/* The AVX-512 rows' store: the reference's operations 16 columns at a time (cvtdq2ps and
 * vfmadd round to nearest, max/min as the reference's comparisons, cvtps2dq rounds half
 * to even), tails by masks: twice the AVX2 store's width, which the AMX row's short
 * arithmetic (conv1: K = 363) made worth it (owt forward at batch 128: -3%). */
AC_TARGET_AVX512 void ac_i8_store_avx512(const int32_t *tile, int ldt, int mr, int nr,
                                         const ac_i8_out *o, int i0, int j0)
{
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.f);
    for (int j = 0; j < nr; j += 16) {
        const __mmask16 m = nr - j >= 16 ? (__mmask16)0xffff
                                         : (__mmask16)((1u << (nr - j)) - 1);
        const __m512 mul = _mm512_maskz_loadu_ps(m, o->mul + j0 + j);
        const __m512 add = _mm512_maskz_loadu_ps(m, o->add + j0 + j);
        const __m512i comp = o->comp ? _mm512_maskz_loadu_epi32(m, o->comp + j0 + j)
                                     : _mm512_setzero_si512();
        for (int i = 0; i < mr; i++) {
            const size_t at = (size_t)(i0 + i) * o->ldc + (size_t)(j0 + j);
            const __m512i s = _mm512_sub_epi32(
                _mm512_maskz_loadu_epi32(m, tile + (size_t)i * ldt + j), comp);
            __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), mul, add);
            if (o->f32) {
                if (o->relu) y = _mm512_max_ps(y, zero);
                _mm512_mask_storeu_ps((float *)o->C + at, m, y);
            } else {
                const __m512i q = _mm512_cvtps_epi32(
                    _mm512_min_ps(_mm512_max_ps(y, zero), top));
                _mm_mask_storeu_epi8((uint8_t *)o->C + at, m, _mm512_cvtepi32_epi8(q));
            }
        }
    }
}
#endif
