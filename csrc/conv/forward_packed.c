/* Inference forward on weights packed once (ac_conv2d_pack_weights): the same gemms as
 * forward.c, with the packed weights read in place; 3x3 weights are also Winograd-
 * transformed at packing, so those layers take Winograd at any batch. */
#include <string.h>

#include "ac_eltwise.h"
#include "ac_winograd.h"
#include "geom.h"

/* Pre-packed weights: a header of AC_CONV_PACKED_HEADER floats holding what they were packed
 * for (ints: magic, ISA path, O, Cg, KH, KW, groups, bias depth steps, precision), then each
 * group's weights with the bias columns packed as the A operand of that path and precision
 * (ac_gemm_prepack layout, depth Kd); 3x3 weights also Winograd-transformed for that path,
 * then the bias, for the forwards that take Winograd. */
#define AC_CONV_PACKED_HEADER 16
#define AC_CONV_PACKED_MAGIC 0x41435057 /* "ACPW" */
enum { PH_MAGIC, PH_ISA, PH_O, PH_CG, PH_KH, PH_KW, PH_G, PH_BIAS, PH_PREC, PH_N };

static size_t wino_floats(const geom *g)
{
    return g->KH == 3 && g->KW == 3
               ? ac_pad16(ac_winograd3x3_weights_floats(g->C, g->O, g->G)) +
                     ac_pad16((size_t)g->O)
               : 0;
}

size_t ac_conv2d_packed_weights_floats(int C, int O, int KH, int KW, int groups)
{
    const geom g = make_geom(1, C, KH, KW, O, KH, KW, 1, 0, groups);
    return AC_CONV_PACKED_HEADER + conv_fwd_weights_floats(&g) + wino_floats(&g);
}

void ac_conv2d_pack_weights(float *packed, const float *weight, const float *bias, int C, int O,
                            int KH, int KW, int groups, const ac_ctx *ctx, int nthreads)
{
    const geom g = make_geom(1, C, KH, KW, O, KH, KW, 1, 0, groups);
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    const int nbias = bias ? ac_gemm_bias_steps(kr) : 0;
    const int h[PH_N] = {AC_CONV_PACKED_MAGIC, ctx->isa, O, g.Cg, KH, KW, groups, nbias,
                         ctx->precision};
    const size_t wpf = conv_packed_floats(g.Og, g.Kg + AC_GEMM_MAX_BIAS_STEPS);
    memset(packed, 0, AC_CONV_PACKED_HEADER * sizeof(float));
    memcpy(packed, h, sizeof h);
    for (int gi = 0; gi < groups; gi++) {
        const wbias_src ws = conv_wbias_of(weight, bias, &g, gi);
        ac_gemm_prepack(packed + AC_CONV_PACKED_HEADER + gi * wpf, conv_pack_wbias, &ws, g.Og,
                        g.Kg + nbias, kr->mr, kr, AC_MAX(nthreads, 1));
    }
    if (wino_floats(&g)) {
        float *u = packed + AC_CONV_PACKED_HEADER + conv_fwd_weights_floats(&g);
        ac_winograd3x3_transform_weights(u, weight, C, O, groups, ctx, AC_MAX(nthreads, 1));
        if (bias)
            memcpy(u + ac_pad16(ac_winograd3x3_weights_floats(C, O, groups)), bias,
                   (size_t)O * sizeof(float));
    }
}

size_t ac_conv2d_forward_packed_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                            int stride, int pad, int groups, const ac_ctx *ctx,
                                            int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    nthreads = AC_MAX(nthreads, 1);
    const size_t f = conv_forward_run_floats(&g, nthreads);
    return conv_use_winograd(&g, 1, ctx->winograd)
               ? AC_MAX(f, ac_winograd3x3_work_floats(N, C, H, W, O, groups, nthreads))
               : f;
}

int ac_conv2d_forward_packed(float *out, const float *x, const float *packed, int N, int C,
                             int H, int W, int O, int KH, int KW, int stride, int pad,
                             int groups, int relu, float *work, const ac_ctx *ctx, int nthreads)
{
    const geom g = make_geom(N, C, H, W, O, KH, KW, stride, pad, groups);
    int h[PH_N];
    memcpy(h, packed, sizeof h);
    if (h[PH_MAGIC] != AC_CONV_PACKED_MAGIC || h[PH_ISA] != ctx->isa ||
        h[PH_PREC] != ctx->precision || h[PH_O] != O || h[PH_CG] != g.Cg || h[PH_KH] != KH ||
        h[PH_KW] != KW || h[PH_G] != groups)
        return -1;
    if (N <= 0) return 0;
    const int nbias = h[PH_BIAS];
    if (conv_use_winograd(&g, 1, ctx->winograd)) { /* U transformed at packing, then the ReLU */
        const float *u = packed + AC_CONV_PACKED_HEADER + conv_fwd_weights_floats(&g);
        const float *b = u + ac_pad16(ac_winograd3x3_weights_floats(C, O, groups));
        ac_winograd3x3_pretransformed(out, x, u, nbias ? b : NULL, N, C, H, W, O, groups, work,
                                      ctx, AC_MAX(nthreads, 1));
        if (relu)
            ac_relu_forward(out, out, (ptrdiff_t)N * O * (ptrdiff_t)g.S, AC_MAX(nthreads, 1));
        return 0;
    }
    const ac_gemm_kernel *kr = ac_gemm_kernel_for(ctx);
    const size_t wpf = conv_packed_floats(g.Og, g.Kg + AC_GEMM_MAX_BIAS_STEPS);
    const int G1 = groups > 0 ? groups : 1;
    ac_gemm_prepacked wp[G1];
    ac_gemm_operand wa[G1];
    for (int gi = 0; gi < groups; gi++) {
        wp[gi] = (ac_gemm_prepacked){packed + AC_CONV_PACKED_HEADER + gi * wpf,
                                     (int)ac_round_up(g.Og, kr->mr)};
        wa[gi] = (ac_gemm_operand){NULL, ac_gemm_prepacked_at, &wp[gi]};
    }
    conv_forward_run(out, x, wa, nbias, relu, &g, kr, work, AC_MAX(nthreads, 1));
    return 0;
}
