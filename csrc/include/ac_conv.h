/* 2-D convolution, NCHW activations, OIHW weights, on the packed GEMM driver with im2col
 * fused into its operand packing (see csrc/conv.c).
 *
 *   x (N, C, H, W)   weight (O, C/G, KH, KW)   bias (O,)   out (N, O, OH, OW)
 *   OH = (H + 2*pad - KH)/stride + 1, OW = (W + 2*pad - KW)/stride + 1
 *
 * Zero padding and stride are the same in both dimensions; G groups split C and O
 * evenly (group g maps input channels [g*C/G, (g+1)*C/G) to outputs [g*O/G, (g+1)*O/G)).
 * Results do not depend on the thread count (given a gemm driver whose result per element
 * does not) nor on timing.
 */
#ifndef AC_CONV_H
#define AC_CONV_H
#include "ac_common.h"

/* Floats of scratch ac_conv2d_forward needs for these sizes and threads. */
size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                     int stride, int pad, int groups, int nthreads);

/* out = conv(x, weight) + bias (bias may be NULL). */
void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                       int N, int C, int H, int W, int O, int KH, int KW,
                       int stride, int pad, int groups, float *work, int nthreads);

/* Floats of scratch ac_conv2d_backward needs for these sizes and threads. */
size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                      int stride, int pad, int groups, int nthreads);

/* dweight += dL/dweight, dbias += dL/dbias, dx = dL/dx, given dout = dL/dout.
 * Any of dx, dweight, dbias may be NULL to skip it. */
void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                        const float *x, const float *weight,
                        int N, int C, int H, int W, int O, int KH, int KW,
                        int stride, int pad, int groups, float *work, int nthreads);

/* Column matrix of one image x (C, H, W): row r = (c*KH + kh)*KW + kw, column s = oh*OW + ow,
 * zero where the window hangs over the padding. Writes the block of rows [r0, r1) and
 * columns [s0, s1) to cols[(r - r0)*ld + (s - s0)]. */
void ac_im2col(float *cols, size_t ld, const float *x, int H, int W, int KH, int KW,
               int stride, int pad, int r0, int r1, size_t s0, size_t s1);

/* Adjoint of ac_im2col for channels [c0, c1): adds the block of columns [s0, s1) of their
 * rows, cols[(r - c0*KH*KW)*ld + (s - s0)], back onto the pixels they were copied from
 * (padding entries are dropped). x is accumulated into, not overwritten. */
void ac_col2im_add(float *x, const float *cols, size_t ld, int H, int W, int KH, int KW,
                   int stride, int pad, int c0, int c1, size_t s0, size_t s1);

#endif
