/* AVX2 int8 row, exact: AVX2 has no u8 x s8 dot product that cannot saturate (vpmaddubsw
 * adds two products in s16: 2 x 255 x 127 overflows), so each k-quad is split into its
 * even and odd bytes, widened to s16 in place (a shift pair for the signed weights, a mask
 * for the unsigned activations), and vpmaddwd sums the pairs in s32: a0 b0 + a2 b2 and
 * a1 b1 + a3 b3 (each at most 2 x 255 x 128 in magnitude), both added to the column's
 * accumulator. So 8 columns per register with no horizontal sums, and full 8-bit range. */
#include "ac_simd.h"
#include "int8_internal.h"
#ifdef AC_X86_64 /* x86-64 only (ac_simd.h) */

#define MR AC_I8_AVX2_MR
#define NR AC_I8_AVX2_NR
#define NV (NR / 8)

AC_TARGET_AVX2 void ac_i8_ukernel_avx2(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp,
                                       int32_t *tile, int add)
{
    (void)lda; /* quad-interleaved A panels */
    __m256i acc[MR][NV];
    const __m256i lo = _mm256_set1_epi16(0x00ff);
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[i][v] = add ? _mm256_loadu_si256((const __m256i *)(tile + i * NR + 8 * v))
                            : _mm256_setzero_si256();
    for (int q = 0; q < kq; q++, Ap += 4 * MR, Bp += 4 * NR) {
        __m256i be[NV], bo[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(Bp + 32 * v));
            be[v] = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8);
            bo[v] = _mm256_srai_epi16(b, 8);
        }
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            int32_t a4;
            __builtin_memcpy(&a4, Ap + 4 * i, 4);
            const __m256i a = _mm256_set1_epi32(a4);
            const __m256i ae = _mm256_and_si256(a, lo), ao = _mm256_srli_epi16(a, 8);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm256_add_epi32(acc[i][v],
                                             _mm256_add_epi32(_mm256_madd_epi16(ae, be[v]),
                                                              _mm256_madd_epi16(ao, bo[v])));
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            _mm256_storeu_si256((__m256i *)(tile + i * NR + 8 * v), acc[i][v]);
}

/* Whole vectors of 8 columns here, the rest through the reference store (the same
 * operations: cvtdq2ps and vfmadd round to nearest, cvtps2dq rounds half to even). */
AC_TARGET_AVX2 void ac_i8_store_avx2(const int32_t *tile, int ldt, int mr, int nr,
                                     const ac_i8_out *o, int i0, int j0)
{
    const int nv = nr / 8 * 8;
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.f);
    for (int i = 0; i < mr; i++) {
        const int32_t *t = tile + (size_t)i * ldt;
        const size_t row = (size_t)(i0 + i) * o->ldc + (size_t)j0;
        for (int j = 0; j < nv; j += 8) {
            __m256i s = _mm256_loadu_si256((const __m256i *)(t + j));
            if (o->comp)
                s = _mm256_sub_epi32(s,
                                     _mm256_loadu_si256((const __m256i *)(o->comp + j0 + j)));
            __m256 y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_loadu_ps(o->mul + j0 + j),
                                       _mm256_loadu_ps(o->add + j0 + j));
            if (o->f32) {
                if (o->relu) y = _mm256_max_ps(y, zero);
                _mm256_storeu_ps((float *)o->C + row + j, y);
            } else {
                const __m256i q = _mm256_cvtps_epi32(
                    _mm256_min_ps(_mm256_max_ps(y, zero), top));
                const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                                  _mm256_extracti128_si256(q, 1));
                _mm_storel_epi64((__m128i *)((uint8_t *)o->C + row + j),
                                 _mm_packus_epi16(w, w));
            }
        }
    }
    if (nv < nr) ac_i8_store_generic(tile + nv, ldt, mr, nr - nv, o, i0, j0 + nv);
}
#endif
