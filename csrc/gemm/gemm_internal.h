/* Internal to csrc/gemm: the per-ISA micro-kernels and packers the driver picks from, and
 * what the micro-kernels share (the edge-tile dispatch, the write-back of a tile row).
 *
 * Adding a micro-kernel (a new tile, ISA or precision): a file ukernel_<isa>_<MR>x<NR>.c
 * whose ac_ukernel_fn instantiates its tile through AC_UKERNEL_TILES, its tile and blocks in
 * blocking.h, a row in registry.c, and a conversion of packed panels (kernel->convert) if
 * it reads another layout than the plain float panels of ac_gemm_pack_fn (ac_gemm.h). */
#ifndef AC_GEMM_INTERNAL_H
#define AC_GEMM_INTERNAL_H
#include "ac_gemm.h"
#include "ac_simd.h"
#include "blocking.h"

/* The micro-kernels' write-back of one row of their tile: c[j] := alpha * acc[j], plus
 * beta * c[j] unless beta == 0 (C then write-only). Portable: nr floats. */
static inline void ac_store_row_generic(float *c, const float *acc, int nr, float alpha,
                                        float beta)
{
    if (beta == 0.f)
        for (int j = 0; j < nr; j++) c[j] = alpha * acc[j];
    else
        for (int j = 0; j < nr; j++) c[j] = alpha * acc[j] + beta * c[j];
}

#ifdef AC_X86_64
/* AVX2: nv vectors of 8 (the last masked by mlast), one rounding for the beta term. */
AC_INLINE AC_TARGET_AVX2 void ac_store_row_avx2(float *c, const __m256 *acc, int nv,
                                                __m256i mlast, __m256 va, __m256 vb, float beta)
{
    const __m256i all = _mm256_set1_epi32(-1);
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        const __m256i m = v == nv - 1 ? mlast : all;
        __m256 r = _mm256_mul_ps(acc[v], va);
        if (beta != 0.f) r = _mm256_fmadd_ps(_mm256_maskload_ps(c + 8 * v, m), vb, r);
        _mm256_maskstore_ps(c + 8 * v, m, r);
    }
}

/* AVX-512: nv vectors of 16 (the last masked by mlast), one rounding for the beta term. */
AC_INLINE AC_TARGET_AVX512 void ac_store_row_avx512(float *c, const __m512 *acc, int nv,
                                                    __mmask16 mlast, __m512 va, __m512 vb,
                                                    float beta)
{
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        const __mmask16 m = v == nv - 1 ? mlast : (__mmask16)0xffff;
        __m512 r = _mm512_mul_ps(acc[v], va);
        if (beta != 0.f) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c + 16 * v), vb, r);
        _mm512_mask_storeu_ps(c + 16 * v, m, r);
    }
}
#endif

#ifdef AC_AARCH64
/* NEON: nv vectors of 4, the last holding nlast (1..4) floats; one rounding for the beta
 * term. NEON has no masked loads and stores: a partial vector goes through a local copy. */
AC_INLINE void ac_store_row_neon(float *c, const float32x4_t *acc, int nv, int nlast,
                                 float alpha, float beta)
{
    const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        const int n = v == nv - 1 ? nlast : 4; /* a partial vector has at most 3 lanes */
        float t[4] = {0.f, 0.f, 0.f, 0.f}, *cv = c + 4 * v, *p = n == 4 ? cv : t;
        if (n < 4 && beta != 0.f)
            for (int j = 0; j < 3; j++) t[j] = j < n ? cv[j] : 0.f;
        float32x4_t r = vmulq_f32(acc[v], va);
        if (beta != 0.f) r = vfmaq_f32(r, vld1q_f32(p), vb);
        vst1q_f32(p, r);
        if (n < 4)
            for (int j = 0; j < 3; j++)
                if (j < n) cv[j] = t[j];
    }
}
#endif

/* The C-tile prefetch every SIMD micro-kernel shares: each cache line of its rows x `bytes`
 * tile of C (a row may start mid-line, hence each row's last byte too), to L2, as the tile
 * starts: C is read (beta != 0) and written only after the k loop, hundreds of cycles later.
 * Measured against none, to L1, and to L1 a few steps before the end: docs/PERFORMANCE.md. */
AC_INLINE void ac_prefetch_c_tile(const float *c, size_t ldc, int rows, int bytes)
{
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
        const char *row = (const char *)(c + (size_t)i * ldc);
#pragma GCC unroll 4
        for (int o = 0; o < bytes; o += 64) __builtin_prefetch(row + o, 0, 2);
        __builtin_prefetch(row + bytes - 1, 0, 2);
    }
}

/* The edge-tile dispatch every SIMD micro-kernel shares: TILE(R, V) (the kernel's tile body
 * for R rows and V vectors, which returns) instantiated for the full tile (most calls) and
 * for each row count 1..mr_max and vector count 1..nv_max, so that every instance runs with
 * compile-time trip counts and every element of C sees the same arithmetic whatever tile it
 * falls in. Rows up to 8 and vectors up to 4; instances past mr_max / nv_max never run and
 * are clamped to stay in bounds. */
#define AC_TILE_CASE(TILE, R, V, mr_max)                                                       \
    case R:                                                                                    \
        if ((R) <= (mr_max)) TILE(AC_MIN(R, mr_max), V);                                       \
        break
#define AC_TILE_ROWS(TILE, mr, V, mr_max)                                                      \
    switch (mr) {                                                                              \
        AC_TILE_CASE(TILE, 1, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 2, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 3, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 4, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 5, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 6, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 7, V, mr_max);                                                      \
        AC_TILE_CASE(TILE, 8, V, mr_max);                                                      \
    }
#define AC_TILE_VECS(TILE, mr, V, mr_max, nv_max)                                              \
    case V:                                                                                    \
        if ((V) <= (nv_max)) AC_TILE_ROWS(TILE, mr, AC_MIN(V, nv_max), mr_max);                \
        break
#define AC_UKERNEL_TILES(TILE, mr, nv, mr_max, nv_max)                                         \
    do {                                                                                       \
        _Static_assert((mr_max) <= 8 && (nv_max) <= 4, "AC_UKERNEL_TILES: tile too large");    \
        if ((nv) == (nv_max) && (mr) == (mr_max)) TILE(mr_max, nv_max);                        \
        switch (nv) {                                                                          \
            AC_TILE_VECS(TILE, mr, 1, mr_max, nv_max);                                         \
            AC_TILE_VECS(TILE, mr, 2, mr_max, nv_max);                                         \
            AC_TILE_VECS(TILE, mr, 3, mr_max, nv_max);                                         \
            AC_TILE_VECS(TILE, mr, 4, mr_max, nv_max);                                         \
        }                                                                                      \
    } while (0)

void ac_ukernel_generic_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                            float alpha, float beta, int mr, int nr);
void ac_ukernel_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                          float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512_6x64(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                            float alpha, float beta, int mr, int nr);
void ac_ukernel_neon_8x12(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                          float alpha, float beta, int mr, int nr);

/* bf16 (bf16.c, ukernel_*bf16*.c): micro-kernels over k-pair panels, and the conversion of
 * nx rows of packed fp32 panels into them (the kernel context's convert). */
void ac_ukernel_generic_bf16_4x8(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                                 float alpha, float beta, int mr, int nr);
void ac_ukernel_avx512bf16_6x64(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                                float alpha, float beta, int mr, int nr);
void ac_bf16_convert_generic(float *dst, const float *src, int nx, int kc, int R);
void ac_bf16_convert_avx512(float *dst, const float *src, int nx, int kc, int R);

/* Pack panels of R rows from element (x, k) = p[x*sx + k*sk], rows [0, nx), depth [0, kc). */
void ac_pack_generic(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
void ac_pack_avx2(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
void ac_pack_avx512(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R);
/* NEON packs with the portable body: plain copies, which the compiler vectorises. */
#define ac_pack_neon ac_pack_generic

/* Small-output path (small.c): M or N at most AC_SMALL_MAX, no packing. Returns 0 (nothing
 * done) when the shape or the scratch size does not suit it. */
#define AC_SMALL_MAX 8
int ac_sgemm_small(int isa, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc, float *work, int nthreads);

#endif
