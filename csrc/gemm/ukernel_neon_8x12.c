/* NEON micro-kernel (aarch64): an 8 x 12 tile of C in 24 of the 32 128-bit registers; each
 * k step loads the 3 vectors of the B micro-panel and the 2 of the A one (8 rows) and issues
 * 24 fmla by element (lane i of an A vector times a B vector): 4.8 FMA instructions per
 * load, the tile of BLIS's armv8a sgemm (argument in docs/PLATFORMS.md). Edge tiles run a
 * variant with only the rows and vectors they need, so every element of C sees the same
 * arithmetic whatever tile it falls in. */
#include "gemm_internal.h"
#ifdef AC_AARCH64 /* aarch64 only (ac_simd.h) */

#define MR AC_NEON_MR
#define NR AC_NEON_NR
#define NV (NR / 4)
_Static_assert(MR == 8, "the k step below names the 8 lanes of two A vectors");

AC_INLINE void tile(int kc, const float *restrict a, const float *restrict b, float *restrict c,
                    size_t ldc, float alpha, float beta, const int rows, const int nv,
                    int nlast)
{
    float32x4_t acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = vdupq_n_f32(0.f);
    }
    ac_prefetch_c_tile(c, ldc, rows, 16 * nv);

#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        float32x4_t bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = vld1q_f32(b + 4 * v);
        const float32x4_t a0 = vld1q_f32(a), a1 = rows > 4 ? vld1q_f32(a + 4) : a0;
        /* lanes must be literal constants: one line per row */
#define ROW(i, av, lane)                                                                       \
    do {                                                                                       \
        if ((i) < rows) {                                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++)                               \
                acc[i][v] = vfmaq_laneq_f32(acc[i][v], bv[v], av, lane);                       \
        }                                                                                      \
    } while (0)
        ROW(0, a0, 0);
        ROW(1, a0, 1);
        ROW(2, a0, 2);
        ROW(3, a0, 3);
        ROW(4, a1, 0);
        ROW(5, a1, 1);
        ROW(6, a1, 2);
        ROW(7, a1, 3);
#undef ROW
        a += MR;
        b += NR;
    }

#pragma GCC unroll 8
    for (int i = 0; i < rows; i++)
        ac_store_row_neon(c + (size_t)i * ldc, acc[i], nv, nlast, alpha, beta);
}

void ac_ukernel_neon_8x12(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                          float alpha, float beta, int mr, int nr)
{
    const int nv = (nr + 3) >> 2, nlast = nr - 4 * (nv - 1);
#define TILE(R, V) return tile(kc, Ap, Bp, C, ldc, alpha, beta, R, V, nlast)
    AC_UKERNEL_TILES(TILE, mr, nv, MR, NV);
#undef TILE
}
#endif
