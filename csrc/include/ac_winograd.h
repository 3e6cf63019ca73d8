/* Winograd F(2x2, 3x3) convolution: 3x3 kernel, stride 1, zero padding 1 (see csrc/conv/winograd.c).
 *
 *   x (N, C, H, W)   weight (O, C/G, 3, 3)   bias (O,) or NULL   out (N, O, H, W)
 *
 * G groups split C and O evenly, as in ac_conv.h. Any H, W >= 1. ctx (ac_ctx.h) picks the
 * GEMM kernel (its winograd field is not read). Results do not depend on the thread count.
 */
#ifndef AC_WINOGRAD_H
#define AC_WINOGRAD_H
#include "ac_ctx.h"

/* Floats of scratch ac_winograd3x3 needs for these sizes and threads (any context). */
size_t ac_winograd3x3_work_floats(int N, int C, int H, int W, int O, int groups, int nthreads);

/* out = conv3x3_s1_p1(x, weight) + bias. */
void ac_winograd3x3(float *out, const float *x, const float *weight, const float *bias, int N,
                    int C, int H, int W, int O, int groups, float *work, const ac_ctx *ctx,
                    int nthreads);

/* Inference: the weights transformed once (U, for the context's kernel: the caller records
 * which), then forwards on them; the same arithmetic as ac_winograd3x3. The forward's scratch
 * is ac_winograd3x3_work_floats. */
size_t ac_winograd3x3_weights_floats(int C, int O, int groups);
void ac_winograd3x3_transform_weights(float *U, const float *weight, int C, int O, int groups,
                                      const ac_ctx *ctx, int nthreads);
void ac_winograd3x3_pretransformed(float *out, const float *x, const float *U,
                                   const float *bias, int N, int C, int H, int W, int O,
                                   int groups, float *work, const ac_ctx *ctx, int nthreads);

#endif
