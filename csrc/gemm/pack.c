/* Packing of plain strided matrices into micro-panels for the GEMM driver.
 *
 * Source element (x, k) = p[x*sx + k*sk], rows x in [0, nx), depth k in [0, kc).
 * Destination: ceil(nx/R) panels of kc*R floats; panel q holds, for each k, the R values of
 * rows q*R .. q*R+R-1, zero past nx. x-contiguous sources (sx == 1) copy R floats per k;
 * k-contiguous ones (sk == 1: A as stored, B^T) are transposed 16 x 16 in registers. */
#include "gemm_internal.h"
#include <string.h>

AC_INLINE void pack_body(float *restrict dst, const float *restrict p, size_t sx, size_t sk,
                         int nx, int kc, int R)
{
    for (int x0 = 0; x0 < nx; x0 += R, dst += (size_t)kc * R) {
        int r = AC_MIN(R, nx - x0);
        const float *s = p + (size_t)x0 * sx;
        if (sx == 1) {
            for (int k = 0; k < kc; k++) {
                float *d = dst + (size_t)k * R;
                const float *sp = s + (size_t)k * sk;
                for (int i = 0; i < r; i++) d[i] = sp[i];
                for (int i = r; i < R; i++) d[i] = 0.f;
            }
        } else {
            for (int i = 0; i < r; i++) {
                const float *sp = s + (size_t)i * sx;
                for (int k = 0; k < kc; k++) dst[(size_t)k * R + i] = sp[(size_t)k * sk];
            }
            for (int k = 0; k < kc; k++)
                for (int i = r; i < R; i++) dst[(size_t)k * R + i] = 0.f;
        }
    }
}

void ac_pack_generic(float *dst, const float *p, size_t sx, size_t sk, int nx, int kc, int R)
{
    pack_body(dst, p, sx, sk, nx, kc, R);
}

#ifdef AC_X86_64
AC_TARGET_AVX2 void ac_pack_avx2(float *dst, const float *p, size_t sx, size_t sk, int nx,
                                 int kc, int R)
{
    pack_body(dst, p, sx, sk, nx, kc, R);
}

/* In-register transpose: r[i] lane j becomes r[j] lane i. */
AC_INLINE AC_TARGET_AVX512 void tr16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i+j] lane L: column 4L+j of rows 4i..4i+3 */
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        __m512 v = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        __m512 w = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 x = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 y = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(v, x, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v, x, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(w, y, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(w, y, 0xDD);
    }
}

AC_TARGET_AVX512 void ac_pack_avx512(float *dst, const float *p, size_t sx, size_t sk, int nx,
                                     int kc, int R)
{
    if (sx != 1 && sk != 1) {
        pack_body(dst, p, sx, sk, nx, kc, R);
        return;
    }
    if (sx == 1) { /* source rows are k: copy R floats per row and panel, PG panels at a
                     * time (all panels at once would write kc*R-strided lines: L1 conflicts) */
        enum { PG = 16 };
        for (int g0 = 0; g0 < nx; g0 += PG * R) {
            const int gn = AC_MIN(PG * R, nx - g0), full = gn / R * R;
            for (int k = 0; k < kc; k++) {
                const float *sp = p + (size_t)k * sk + g0;
                float *d = dst + (size_t)g0 * kc + (size_t)k * R;
                int x0 = 0;
                if (R % 16 == 0) {
                    for (; x0 < full; x0 += R, d += (size_t)kc * R)
                        for (int i = 0; i < R; i += 16)
                            _mm512_storeu_ps(d + i, _mm512_loadu_ps(sp + x0 + i));
                } else {
                    for (; x0 < full; x0 += R, d += (size_t)kc * R)
                        for (int i = 0; i < R; i += 16) {
                            const __mmask16 m = (__mmask16)((1u << AC_MIN(16, R - i)) - 1);
                            _mm512_mask_storeu_ps(d + i, m,
                                                  _mm512_maskz_loadu_ps(m, sp + x0 + i));
                        }
                }
                if (x0 < gn)
                    for (int i = 0; i < R; i += 16) {
                        int n = AC_MIN(16, R - i), v = AC_MAX(0, AC_MIN(n, gn - x0 - i));
                        __m512 x = _mm512_maskz_loadu_ps((__mmask16)((1u << v) - 1),
                                                         sp + x0 + i);
                        _mm512_mask_storeu_ps(d + i, (__mmask16)((1u << n) - 1), x);
                    }
            }
        }
        return;
    }
    /* sk == 1: rows of the source are k-contiguous; transpose 16 x 16 blocks */
    for (int x0 = 0; x0 < nx; x0 += R, dst += (size_t)kc * R) {
        int r = AC_MIN(R, nx - x0);
        const float *s = p + (size_t)x0 * sx;
        for (int i0 = 0; i0 < R; i0 += 16) {
            int n = AC_MIN(16, R - i0), v = AC_MAX(0, AC_MIN(n, r - i0));
            __mmask16 sm = (__mmask16)((1u << n) - 1);
            for (int k0 = 0; k0 < kc; k0 += 16) {
                int kn = AC_MIN(16, kc - k0);
                __mmask16 km = (__mmask16)((1u << kn) - 1);
                __m512 t[16];
                for (int i = 0; i < 16; i++)
                    t[i] = i < v ? _mm512_maskz_loadu_ps(km, s + (size_t)(i0 + i) * sx + k0)
                                 : _mm512_setzero_ps();
                tr16(t);
                for (int k = 0; k < kn; k++)
                    _mm512_mask_storeu_ps(dst + (size_t)(k0 + k) * R + i0, sm, t[k]);
            }
        }
    }
}
#endif

void ac_gemm_pack_matrix(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                         const ac_gemm_kernel *kr)
{
    const ac_gemm_matrix *m = (const ac_gemm_matrix *)src;
    const float *p = m->p + (size_t)x0 * m->sx + (size_t)k0 * m->sk;
    AC_ISA_PICK(kr->isa, ac_pack)(dst, p, m->sx, m->sk, nx, kc, R);
}
