/* Local response normalisation across channels (AlexNet, section 3.3), NCHW float32.
 *
 *   scale[n,c,p] = k + alpha * sum_{c' in [c - size/2, c + (size-1)/2] and [0, C)} x[n,c',p]^2
 *   out[n,c,p]   = x[n,c,p] * scale[n,c,p]^-beta
 *
 * alpha is NOT divided by size (the paper's form; torch's LocalResponseNorm(size,
 * alpha*size, beta, k) is the same layer). p runs over the HW = H*W positions.
 * Forward saves scale for backward. Backward overwrites dx:
 *   dx[c] = dout[c] scale[c]^-beta
 *           - 2 alpha beta x[c] sum_{i : c in window(i)} dout[i] out[i] / scale[i]
 * out, scale and x must not overlap. The SIMD path is ctx's isa.
 */
#ifndef AC_LRN_H
#define AC_LRN_H
#include "ac_ctx.h"

void ac_lrn_forward(float *out, float *scale, const float *x, int N, int C, ptrdiff_t HW,
                    int size, float alpha, float beta, float k, const ac_ctx *ctx,
                    int nthreads);

/* Positions per tile of the forward at most (its window sums are on the stack). */
#define AC_LRN_TILE_MAX 4096

/* The forward's arithmetic on one tile, for kernels that lay out tiles of their own
 * (int8_act.c): positions [0, len) of one image, channel planes HW apart, len <=
 * AC_LRN_TILE_MAX, path isa. A position's result depends on the path and on whether it is
 * in the tile's last len % 8 (the AVX2 rows run the portable formula there): tiles that
 * start at multiples of 16 of an image's positions give ac_lrn_forward's bits. */
void ac_lrn_forward_tile(float *out, float *scale, const float *x, int C, ptrdiff_t HW, int len,
                         int size, float alpha, float beta, float k, int isa);

void ac_lrn_backward(float *dx, const float *dout, const float *x, const float *out,
                     const float *scale, int N, int C, ptrdiff_t HW, int size, float alpha,
                     float beta, const ac_ctx *ctx, int nthreads);

#endif
