/* The portable int8 row: the reference the SIMD rows equal bitwise (sums are exact
 * integers; the requantization is the same fp32 operations in the same order). */
#include <math.h>
#include <string.h>

#include "int8_internal.h"

#define MR AC_I8_GENERIC_MR
#define NR AC_I8_GENERIC_NR

void ac_i8_ukernel_generic(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp,
                           int32_t *tile, int add)
{
    (void)lda; /* quad-interleaved A panels */
    int32_t acc[MR * NR];
    if (add)
        memcpy(acc, tile, sizeof acc);
    else
        memset(acc, 0, sizeof acc);
    for (int q = 0; q < kq; q++, Ap += 4 * MR, Bp += 4 * NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                for (int u = 0; u < 4; u++)
                    acc[i * NR + j] += (int32_t)Ap[4 * i + u] * (int32_t)Bp[4 * j + u];
    memcpy(tile, acc, sizeof acc);
}

/* The SIMD stores do the same: the (float) conversion and the fma round to nearest; the
 * comparisons are written as their max/min instructions compute them (-0 becomes +0). */
void ac_i8_store_generic(const int32_t *tile, int ldt, int mr, int nr, const ac_i8_out *o,
                         int i0, int j0)
{
    for (int i = 0; i < mr; i++) {
        const int32_t *t = tile + (size_t)i * ldt;
        const size_t row = (size_t)(i0 + i) * o->ldc + (size_t)j0;
        for (int j = 0; j < nr; j++) {
            const int32_t s = t[j] - (o->comp ? o->comp[j0 + j] : 0);
            float y = fmaf((float)s, o->mul[j0 + j], o->add[j0 + j]);
            if (o->f32) {
                if (o->relu) y = y > 0.f ? y : 0.f;
                ((float *)o->C)[row + j] = y;
            } else {
                y = y > 0.f ? y : 0.f;
                y = y < 255.f ? y : 255.f;
                ((uint8_t *)o->C)[row + j] = (uint8_t)(int)nearbyintf(y);
            }
        }
    }
}
