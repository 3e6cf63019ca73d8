/* 2-D convolution, NCHW activations, OIHW weights, on the packed GEMM driver with im2col
 * fused into its operand packing (see csrc/conv/).
 *
 *   x (N, C, H, W)   weight (O, C/G, KH, KW)   bias (O,)   out (N, O, OH, OW)
 *   OH = (H + 2*pad - KH)/stride + 1, OW = (W + 2*pad - KW)/stride + 1
 *
 * Zero padding and stride are the same in both dimensions; G groups split C and O
 * evenly (group g maps input channels [g*C/G, (g+1)*C/G) to outputs [g*O/G, (g+1)*O/G)).
 * Results do not depend on the thread count (given a gemm driver whose result per element
 * does not) nor on timing; they depend on the context.
 */
#ifndef AC_CONV_H
#define AC_CONV_H
#include "ac_ctx.h"

/* ctx: the ISA path, precision and Winograd choice (3x3 stride-1 pad-1 layers) of the call
 * (ac_ctx.h); nthreads: threads to use. */

/* Floats of scratch ac_conv2d_forward needs for these sizes, context and threads. */
size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                     int stride, int pad, int groups, const ac_ctx *ctx,
                                     int nthreads);

/* out = conv(x, weight) + bias (bias may be NULL). */
void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                       int N, int C, int H, int W, int O, int KH, int KW, int stride, int pad,
                       int groups, float *work, const ac_ctx *ctx, int nthreads);

/* Inference: the weights (and bias, may be NULL) packed once for the GEMM kernel of the
 * context's ISA path and precision (recorded in the buffer), then forwards on them. */
size_t ac_conv2d_packed_weights_floats(int C, int O, int KH, int KW, int groups);
void ac_conv2d_pack_weights(float *packed, const float *weight, const float *bias, int C, int O,
                            int KH, int KW, int groups, const ac_ctx *ctx, int nthreads);

/* Floats of scratch ac_conv2d_forward_packed needs. */
size_t ac_conv2d_forward_packed_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                            int stride, int pad, int groups, const ac_ctx *ctx,
                                            int nthreads);

/* out = conv(x, weight) + bias with packed = ac_conv2d_pack_weights(weight, bias), then
 * out = max(out, 0) (as ac_relu_forward) when relu; the same arithmetic as
 * ac_conv2d_forward (and ac_relu_forward), bitwise, except that 3x3 stride-1 pad-1 layers
 * take Winograd at any batch (their weights were transformed at packing), where
 * ac_conv2d_forward does from 2 images of 13x13 on. Returns 0, or -1 (nothing written)
 * when packed was made for another ISA path, precision or other weight shapes. */
int ac_conv2d_forward_packed(float *out, const float *x, const float *packed, int N, int C,
                             int H, int W, int O, int KH, int KW, int stride, int pad,
                             int groups, int relu, float *work, const ac_ctx *ctx,
                             int nthreads);

/* Floats of scratch ac_conv2d_backward needs for these sizes, context and threads. */
size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                      int stride, int pad, int groups, const ac_ctx *ctx,
                                      int nthreads);

/* dweight += dL/dweight, dbias += dL/dbias, dx = dL/dx, given dout = dL/dout.
 * dx or dweight may be NULL to skip it; dbias (NULL: skipped) is summed alongside the weight
 * gradient, so it needs dweight (a bias gradient alone is ac_bias_grad's job). */
void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                        const float *x, const float *weight, int N, int C, int H, int W, int O,
                        int KH, int KW, int stride, int pad, int groups, float *work,
                        const ac_ctx *ctx, int nthreads);

#endif
