/* int8 inference: u8 activations x s8 weights -> exact s32 sums, requantized in the
 * write-back (alexnet_cpu/quantize.py builds the nets; docs/INT8.md).
 *
 * C[i, j] = requant(sum_k A[i, k] * B[j, k])  with A (M x K) u8 rows (activations: a plain
 * matrix, or the im2col rows of an NHWC image) and B (N x K) s8, packed once per path
 * (ac_i8_pack_b). The sums are exact integers (|sum| < 2^31 for K < 66000), so every path
 * and thread count gives bitwise the same C: the portable row is the reference the SIMD
 * rows are tested against.
 *
 * Requantization, per output column j (fused into the write-back of each tile):
 *   y = fmaf((float)(acc - comp[j]), mul[j], add[j])
 *   u8 output:  round-half-even(min(max(y, 0), 255))   (the ReLU is the clamp at 0)
 *   f32 output: y, or max(y, 0) with relu
 * comp[j] = z * sum_k B[j, k] makes a u8 input with zero point z exact (the signed image:
 * x = s (q - z)); conv padding then holds z. The path is ctx->isa: AC_ISA_AVX512 is the
 * AVX512-VNNI row (vpdpbusd), callers check ac_i8_isa_supported first. */
#ifndef AC_INT8_H
#define AC_INT8_H
#include <stdint.h>

#include "ac_ctx.h"

typedef struct ac_i8_out {
    const int32_t *comp; /* zero-point compensation per column, or NULL (zero point 0) */
    const float *mul, *add; /* per column */
    int f32; /* 0: C is uint8_t, 1: C is float */
    int relu; /* f32 output: clamp at 0 (u8 output always clamps) */
    void *C;
    size_t ldc; /* row stride of C in elements */
} ac_i8_out;

/* The im2col rows of a convolution over NHWC u8 images: row m = (image n, output pixel
 * (oy, ox)), depth k = (ky * ks + kx) * cg + c over channels [c0, c0 + cg) of each pixel
 * (the weights' layout (N, ks, ks, cg)). Pixels outside the image read `zero`. */
typedef struct ac_i8_conv {
    const uint8_t *x;
    int H, W, C; /* input image: H x W pixels of C channels */
    int c0, cg; /* channels of this group */
    int ks, stride, pad, OH, OW; /* square kernel; output size */
    uint8_t zero;
} ac_i8_conv;

/* 1 if this CPU runs the int8 row of path isa (AVX512: AVX512-VNNI). */
int ac_i8_isa_supported(int isa);
int ac_i8_vnni_supported(void);
/* 1 if this CPU has AMX-INT8 tiles and the OS lets this process use them (on Linux the
 * first call asks it for the permission); contexts with amx set run the AMX row. */
int ac_i8_amx_supported(void);

/* B (N x K s8, row stride ldb) packed for the context's path: ac_i8_packed_b_bytes bytes. */
size_t ac_i8_packed_b_bytes(int N, int K, const ac_ctx *ctx);
void ac_i8_pack_b(int8_t *dst, const int8_t *B, int N, int K, size_t ldb, const ac_ctx *ctx);
/* Scratch of the products below (bytes, any alignment). */
size_t ac_i8_work_bytes(int K, const ac_ctx *ctx, int nthreads);

/* C = requant(A . B^T): A plain (row stride lda). */
void ac_i8_gemm(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Bp,
                const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads);
/* A convolution over nimg NHWC images in `groups` groups: group g reads channels
 * [g cg, (g+1) cg), multiplies weights packed per group one after another (each
 * ac_i8_packed_b_bytes(N / groups, K)) and writes columns [g N/groups, (g+1) N/groups) of
 * C (NHWC output, ldc = N), comp/mul/add indexed by the output channel. */
void ac_i8_conv2d(const ac_i8_conv *geom, int nimg, int groups, int N, const int8_t *Bp,
                  const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads);

/* Max-pooling of NHWC u8 images, k x k windows at `stride`, clipped to the image (ceil-mode
 * windows past the edge take the max of what they cover: values are >= 0). */
void ac_i8_maxpool(uint8_t *out, const uint8_t *x, int nimg, int H, int W, int C, int k,
                   int stride, int OH, int OW, int nthreads);

/* Activations outside the GEMMs (csrc/int8_act.c): floats to u8 at a scale, with the NumPy
 * expression's bits  q = clip(rint(v * mul) + zero, 0, 255)  (rint half to even, before the
 * zero point is added; NaN gives 0). N images, C channels, HW positions an image. */

/* The input batch: out (N, H + 2 pad, W + 2 pad, Cout) NHWC u8 from x (N, C, H, W) NCHW
 * float, Cout >= C; the border and channels [C, Cout) hold `zero` (a convolution's padding
 * done here, and channels to whole 4-byte pixels). */
void ac_i8_quantize(uint8_t *out, const float *x, int N, int C, int H, int W, int pad, int Cout,
                    float mul, uint8_t zero, const ac_ctx *ctx, int nthreads);

/* LRN (ac_lrn.h) of float NHWC x (N, HW, C), quantized (zero point 0) into u8 NHWC out:
 * bitwise the u8 of ac_lrn_forward's output on the same path (fp32 ctx->isa, not the int8
 * row). work: ac_i8_lrn_work_floats floats. */
size_t ac_i8_lrn_work_floats(int C, int nthreads);
void ac_i8_lrn(uint8_t *out, const float *x, int N, int C, ptrdiff_t HW, int size, float alpha,
               float beta, float k, float mul, float *work, const ac_ctx *ctx, int nthreads);

#endif
