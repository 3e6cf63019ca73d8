/* ac_conv2d_backward: the weight gradient (weight_grad.c, with the bias gradient summed
 * alongside), then the input gradient (input_grad.c). Their scratch is used one after the
 * other, so the work is the larger of the two. */
#include "geom.h"

size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                      int stride, int pad, int groups, const ac_ctx *ctx,
                                      int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    return AC_MAX(conv_weight_grad_floats(&g, nt), conv_input_grad_floats(&g, ctx, nt));
}

void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                        const float *x, const float *weight, int N, int C, int H, int W, int O,
                        int KH, int KW, int stride, int pad, int groups, float *work,
                        const ac_ctx *ctx, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    const int nt = AC_MAX(nthreads, 1);
    if (N <= 0) return;
    if (dweight) conv_weight_grad(dweight, dbias, dout, x, &g, work, ctx, nt);
    if (dx) conv_input_grad(dx, dout, weight, &g, work, ctx, nt);
}
