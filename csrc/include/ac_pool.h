/* 2-D pooling over NCHW planes: max pooling (no padding, floor mode) and adaptive average
 * pooling (torch's bins).
 *
 *   x (N, C, H, W)   out, argmax (N, C, OH, OW)
 *   max:      OH = (H - k)/stride + 1, OW = (W - k)/stride + 1
 *   adaptive: bin i of OH spans rows [floor(i*H/OH), ceil((i+1)*H/OH)); likewise columns.
 *
 * argmax holds the flat index ih*W + iw of each max within its input plane (first max on
 * ties; a NaN wins, as in torch). Work is shared out by plane; results do not depend on
 * the thread count.
 */
#ifndef AC_POOL_H
#define AC_POOL_H
#include "ac_ctx.h"
#include <stdint.h>

/* argmax may be NULL (inference). */
void ac_maxpool2d_forward(float *out, int32_t *argmax, const float *x, int N, int C, int H,
                          int W, int k, int stride, const ac_ctx *ctx, int nthreads);

/* dx = 0, then dx[argmax] += dout (overlapping windows accumulate). Returns the number of
 * argmax entries outside [0, H*W) (skipped); 0 on success. */
long ac_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax, int N, int C,
                           int H, int W, int OH, int OW, int nthreads);

void ac_adaptive_avgpool2d_forward(float *out, const float *x, int N, int C, int H, int W,
                                   int OH, int OW, int nthreads);

/* dx overwritten. */
void ac_adaptive_avgpool2d_backward(float *dx, const float *dout, int N, int C, int H, int W,
                                    int OH, int OW, int nthreads);

#endif
