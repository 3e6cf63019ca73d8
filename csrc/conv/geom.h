/* Internal to csrc/conv: the geometry of a convolution, the phase-plane layout the forward
 * and the strided input gradient read and write, and what the files of csrc/conv offer each
 * other. The public API is ac_conv.h.
 *
 * Files: phase.c (input <-> stride-phase planes, B panels from them), forward.c (the forward
 * on the gemm, or Winograd), forward_packed.c (inference on weights packed once),
 * input_grad.c, weight_grad.c, backward.c (ac_conv2d_backward), winograd.c.
 *
 * Letters: N images, C input channels, H x W input, O output channels, KH x KW kernel,
 * G groups, Cg = C/G, Og = O/G, Kg = Cg*KH*KW (rows of a group's column matrix, the GEMM
 * depth), OH x OW output, S = OH*OW output pixels.
 *
 * Call chain of one forward (the gemm calls back into csrc/conv to pack its operands):
 *   ac_conv2d_forward -> conv_forward (weights packed, or Winograd) -> conv_forward_run
 *   (images per thread, ac_items_run) -> forward_images (chunks of images) -> forward_chunk
 *   (phase planes, one gemm per group) -> ac_gemm_run -> conv_pack_phase (B panels from the
 *   phase planes) and the weights' packer (or the prepacked view) -> micro-kernel.
 */
#ifndef AC_CONV_GEOM_H
#define AC_CONV_GEOM_H
#include "ac_conv.h"
#include "ac_gemm.h"
#include "ac_simd.h"

typedef struct {
    int N, C, H, W, O, KH, KW, stride, pad, G;
    int OH, OW, Cg, Og, Kg;
    size_t S;
} geom;

static inline geom make_geom(int N, int C, int H, int W, int O, int KH, int KW, int stride,
                             int pad, int groups)
{
    geom g = {N, C, H, W, O, KH, KW, stride, pad, groups};
    g.OH = (H + 2 * pad - KH) / stride + 1;
    g.OW = (W + 2 * pad - KW) / stride + 1;
    g.Cg = C / groups;
    g.Og = O / groups;
    g.Kg = g.Cg * KH * KW;
    g.S = (size_t)g.OH * g.OW;
    return g;
}

/* d[i] = 0 as an inline loop: segments are short (an output row), a call would cost more. */
static inline void zero(float *d, int n)
{
    for (int i = 0; i < n; i++) d[i] = 0.f;
}

/* ------------------------------------------------------------------ phase planes
 * Zero-padded input of one group split into stride x stride phase planes of Hp x Wp:
 * plane (c, a, b) at (i, j) holds padded x[c][i*stride + a][j*stride + b], so column entry
 * (c, kh, kw) at pixel (oh, ow) is plane (c, kh%stride, kw%stride) at (oh + kh/stride,
 * ow + kw/stride): the forward's B panels are then plain copies of row runs, with no
 * bounds checks and no strided loads. */
static inline int phase_hp(const geom *g)
{
    return (g->H + 2 * g->pad + g->stride - 1) / g->stride;
}
static inline int phase_wp(const geom *g)
{
    return (g->W + 2 * g->pad + g->stride - 1) / g->stride;
}
static inline size_t phase_floats(const geom *g)
{
    return ac_pad16((size_t)g->Cg * g->stride * g->stride * phase_hp(g) * phase_wp(g));
}

/* Offset in the phase planes of column-matrix row (c, kh, kw) at output pixel (0, 0). */
static inline size_t phase_offset(const geom *g, int c, int kh, int kw)
{
    const int s = g->stride;
    return ((size_t)(c * s + kh % s) * s + kw % s) * phase_hp(g) * phase_wp(g) +
           (size_t)(kh / s) * phase_wp(g) + kw / s;
}

/* The same for row r of the group's column matrix. */
static inline size_t phase_row(const geom *g, int r)
{
    const int KK = g->KH * g->KW;
    return phase_offset(g, r / KK, (r / g->KW) % g->KH, r % g->KW);
}

/* Input rows t in [t0, t1) of the phase planes, t = (c*stride + a)*Hp + i (each feeds
 * stride planes); conv_make_phases: all of them. */
void conv_make_phase_rows(float *xp, const float *x, const geom *g, int t0, int t1);
void conv_make_phases(float *xp, const float *x, const geom *g);

/* Phase planes as the B operand of the forward (conv_pack_phase packs it). */
typedef struct {
    const float *xp; /* phase planes of the group (conv_make_phases), image after image */
    const geom *g;
    int ones; /* depths Kg.. are this many rows of ones (they meet A's bias columns) */
    int x0; /* pixel of column 0 (a thread's share of the columns) */
} phase_src;
void conv_pack_phase(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr);

/* The adjoints, for the strided input gradient: columns [s0, s1) of a group's column
 * matrix added into its phase planes (col2im), and dx of the group from the planes. */
void conv_col2phase_group(float *xp, const float *cols, const geom *g, size_t s0, size_t s1,
                          int nt);
void conv_unphase_group(float *dxg, const float *xp, const geom *g, int nt);

/* ------------------------------------------------------------------- forward.c */

/* Floats of an M x K operand packed as A for any path's tile (weights packed now are valid
 * for the path chosen later only if sized for all). */
size_t conv_packed_floats(int M, int K);

/* Weights of group gi with the bias as column Kg (when bias), as an operand of the gemm. */
typedef struct {
    ac_gemm_matrix m; /* Og x Kg */
    const float *bias; /* the group's, or NULL */
    int Kg, Og;
} wbias_src;
wbias_src conv_wbias_of(const float *w, const float *bias, const geom *g, int gi);
void conv_pack_wbias(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                     const ac_gemm_kernel *kr);

/* Packed weights of every group with bias columns (depth up to Kg + AC_GEMM_MAX_BIAS_STEPS). */
size_t conv_fwd_weights_floats(const geom *g);

/* 1 when the forward of g takes Winograd under the choice `winograd` (enum ac_winograd;
 * pretransformed: weights already transformed). */
int conv_use_winograd(const geom *g, int pretransformed, int winograd);

/* Every image with the weights of group gi as operand wa[gi] (depth Kg + nbias), then the
 * ReLU when relu; tw: conv_forward_run_floats(g, nt) floats. */
size_t conv_forward_run_floats(const geom *g, int nt);
void conv_forward_run(float *out, const float *x, const ac_gemm_operand *wa, int nbias,
                      int relu, const geom *g, const ac_gemm_kernel *kr, float *tw, int nt);

/* The forward with weights w (O, Cg, KH, KW): scratch conv_forward_floats(g, ctx, nt). */
size_t conv_forward_floats(const geom *g, const ac_ctx *ctx, int nt);
void conv_forward(float *out, const float *x, const float *w, const float *bias, const geom *g,
                  float *work, const ac_ctx *ctx, int nt);

/* ------------------------------------------------------- input_grad.c, weight_grad.c */

/* dx = dL/dx given dout; scratch conv_input_grad_floats(g, ctx, nt). */
size_t conv_input_grad_floats(const geom *g, const ac_ctx *ctx, int nt);
void conv_input_grad(float *dx, const float *dout, const float *weight, const geom *g,
                     float *work, const ac_ctx *ctx, int nt);

/* dweight (and dbias when not NULL) += their gradients; scratch conv_weight_grad_floats. */
size_t conv_weight_grad_floats(const geom *g, int nt);
void conv_weight_grad(float *dweight, float *dbias, const float *dout, const float *x,
                      const geom *g, float *work, const ac_ctx *ctx, int nt);

#endif
