/* Single-precision GEMM on row-major matrices.
 *
 *   C[M,N] = alpha * op(A)[M,K] . op(B)[K,N] + beta * C[M,N]
 *
 * op(A) = A, stored M x K with row stride lda (trans_a = 0), or A^T with A stored
 * K x M (trans_a = 1); likewise B. beta == 0 means C is write-only (NaNs in C ignored).
 * work: scratch of at least ac_sgemm_work_floats(nthreads) floats, any alignment.
 * ctx: the ISA path and precision (ac_ctx.h); nthreads: threads to use; 1 runs on the
 * caller's thread (safe inside an OpenMP region).
 * Results are bitwise identical for every nthreads (same context).
 * When M or N is at most 8 (a Linear layer at batch 1..8) the big operand is streamed once
 * as stored, without packing (csrc/gemm/small.c: dot products when it is k-contiguous, axpys
 * otherwise, the latter for M <= 4 only); other shapes take the blocked driver below.
 *
 * Below the plain front, the blocked driver itself: packing callbacks for each operand
 * (so a convolution can pack im2col columns straight into B panels, and inference can
 * hand over weights packed once) and the per-ISA kernel context.
 */
#ifndef AC_GEMM_H
#define AC_GEMM_H
#include "ac_ctx.h"

size_t ac_sgemm_work_floats(int nthreads);

void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc, float *work,
              const ac_ctx *ctx, int nthreads);

/* ---- The driver (BLIS-style blocking loops around a register-tiled micro-kernel) ---- */

/* Micro-kernel: C[mr,nr] := alpha * Ap . Bp + beta * C (beta == 0: C write-only), where Ap
 * is an MR-row micro-panel (kc steps of MR floats) and Bp an NR-column micro-panel (kc steps
 * of NR floats); mr <= MR, nr <= NR (edge tiles are handled inside). */
typedef void (*ac_ukernel_fn)(int kc, const float *Ap, const float *Bp, float *C, size_t ldc,
                              float alpha, float beta, int mr, int nr);

/* One row of the micro-kernel registry (csrc/gemm/registry.c): the micro-kernel of an ISA
 * path and precision, its tile and the cache blocking chosen for it (the values and the
 * measurements behind them: csrc/gemm/blocking.h). */
typedef struct ac_gemm_kernel {
    int isa; /* enum ac_isa */
    int precision; /* enum ac_precision: what the micro-kernel multiplies */
    int mr, nr; /* micro-tile: rows of op(A) broadcast, columns of op(B) in vectors */
    int kc; /* depth of a packed block (a B micro-panel, KC x NR, in L1) */
    int mc; /* rows of op(A) per block used from L2 (MC x KC) */
    int nc; /* columns of op(B) per packed block (KC x NC, in L2) */
    int mb; /* rows of op(A) packed at once (MB x KC, in L3) */
    ac_ukernel_fn ukernel;
    /* bf16: turns nx rows of packed fp32 panels (depth kc) at src into the k-pair panels
     * the micro-kernel reads at dst, which may be src or lie before it (NULL for fp32). */
    void (*convert)(float *dst, const float *src, int nx, int kc, int R);
} ac_gemm_kernel;

/* Words (floats' worth) per panel row of a packed block of depth kc: kc for fp32, the
 * ceil(kc/2) k-pairs for bf16. Panels are R * ac_gemm_kwords(kr, kc) floats apart. */
static inline int ac_gemm_kwords(const ac_gemm_kernel *kr, int kc)
{
    return kr->convert ? (kc + 1) / 2 : kc;
}

/* The registry's row for the context's ISA path and precision (its precision's portable
 * row when the path has none); every row, for sizing scratch that any may use. */
const ac_gemm_kernel *ac_gemm_kernel_for(const ac_ctx *ctx);
extern const ac_gemm_kernel ac_gemm_kernels[];
extern const int ac_gemm_nkernels;

/* Depth of the driver's K blocks for this K (depends on K and the path only). */
int ac_gemm_kc(const ac_gemm_kernel *kr, int K);

/* Packing callback: pack the operand's rows [x0, x0+nx) over depth [k0, k0+kc) into dst as
 * micro-panels of R rows (R = kr->mr for A, kr->nr for B): panel p holds, for each k, the R
 * values of rows x0+p*R .. x0+p*R+R-1 (zero past nx). "Rows" are rows of op(A) for A and
 * columns of op(B) for B. Called from several threads at once (on different dst). */
typedef void (*ac_gemm_pack_fn)(const void *src, float *dst, int x0, int nx, int k0, int kc,
                                int R, const ac_gemm_kernel *kr);

/* Optional: the block at rows x0.., depth [k0, k0+kc) already packed in that layout (for
 * example weights packed once for inference), or NULL to have it packed. The driver splits
 * K into blocks of ac_gemm_kc(kr, K) (the last one shorter) and rows at multiples of R, so
 * an operand packed block after block, all rows per K block, is found at k0*Xpad + x0*kc
 * (Xpad = rows rounded up to R; for bf16 (k0/2)*Xpad + x0*ceil(kc/2), K blocks being even). */
typedef const float *(*ac_gemm_packed_fn)(const void *src, int x0, int k0, int kc,
                                          const ac_gemm_kernel *kr);

typedef struct ac_gemm_operand {
    ac_gemm_pack_fn pack;
    ac_gemm_packed_fn packed; /* NULL: always pack */
    const void *src; /* what pack reads: an ac_gemm_matrix for plain matrices */
} ac_gemm_operand;

/* Pack through op->pack, then into the kernel's own panels (kr->convert): what the driver
 * does for every block, and what whoever packs an operand ahead must do. */
void ac_gemm_pack(const ac_gemm_kernel *kr, const ac_gemm_operand *op, float *dst, int x0,
                  int nx, int k0, int kc, int R);

/* A bias folded into the product: a column of A (or row of B) against rows of ones takes
 * ac_gemm_bias_steps depth steps: 1 in fp32; 3 in bf16, where the parts
 * ac_gemm_bias_part(kr, b, 0..2) are bf16 values summing exactly to b (8 + 8 + 8 bits), so
 * the bias is not rounded to bf16 but added in fp32 like the rest of the sum. */
#define AC_GEMM_MAX_BIAS_STEPS 3
int ac_gemm_bias_steps(const ac_gemm_kernel *kr);
float ac_gemm_bias_part(const ac_gemm_kernel *kr, float b, int step);

/* An M x K operand packed ahead in fp32 (ac_gemm_pack_fn into p + k0*xpad + x0*kc for each
 * K block): turned into the kernel's layout in place (nothing to do for fp32). */
void ac_gemm_convert_prepacked(const ac_gemm_kernel *kr, float *p, int xpad, int K, int R);

/* Pack the X x K operand (pack, src) ahead in panels of R rows (kr->mr as A, kr->nr as B)
 * into dst, all K blocks, on nt threads (then converted for kr): the view to read it with
 * (ac_gemm_prepacked_at). dst: ac_gemm_prepack_floats(X, K) floats (any path). */
typedef struct ac_gemm_prepacked ac_gemm_prepacked;
ac_gemm_prepacked ac_gemm_prepack(float *dst, ac_gemm_pack_fn pack, const void *src, int X,
                                  int K, int R, const ac_gemm_kernel *kr, int nt);
size_t ac_gemm_prepack_floats(int X, int K);

/* A plain strided matrix as an operand: element (row x, depth k) is p[x*sx + k*sk]. */
typedef struct ac_gemm_matrix {
    const float *p;
    size_t sx, sk;
} ac_gemm_matrix;

/* The packer for ac_gemm_matrix sources. */
void ac_gemm_pack_matrix(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                         const ac_gemm_kernel *kr);

/* An operand packed ahead, all rows of one K block after another (the layout
 * ac_gemm_packed_fn describes), rows padded to xpad: {&view} with ac_gemm_prepacked_at. */
struct ac_gemm_prepacked {
    const float *p;
    int xpad;
};
const float *ac_gemm_prepacked_at(const void *src, int x0, int k0, int kc,
                                  const ac_gemm_kernel *kr);

/* Rows x0.. of another operand (x0 a multiple of its panel height), for a gemm over a
 * share of its rows: ac_gemm_rows_of(&r) is that operand. r must outlive the gemm. */
typedef struct ac_gemm_rows {
    const ac_gemm_operand *op;
    int x0;
} ac_gemm_rows;
ac_gemm_operand ac_gemm_rows_of(const ac_gemm_rows *r);

/* ---- B packed once (the weights of a linear layer at inference: packed_b.c) ----
 * op(B) (K x N, trans_b as in ac_sgemm) packed for the context's path and precision into
 * `packed` (ac_sgemm_packed_b_floats(N, K) floats); then C = alpha op(A) . op(B) + beta C
 * from it, as ac_sgemm's blocked driver computes it (not its small-output path). Returns 0,
 * or -1 (nothing written) when packed was made for another path, precision or shape. */
size_t ac_sgemm_packed_b_floats(int N, int K);
void ac_sgemm_pack_b(float *packed, int trans_b, int N, int K, const float *B, int ldb,
                     const ac_ctx *ctx, int nthreads);
int ac_sgemm_packed_b(int trans_a, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *packed, float beta, float *C, int ldc, float *work,
                      const ac_ctx *ctx, int nthreads);

/* C := alpha * A . B + beta * C through the packing callbacks, on kernel path kr. */
void ac_gemm_run(const ac_gemm_kernel *kr, int M, int N, int K, float alpha,
                 const ac_gemm_operand *A, const ac_gemm_operand *B, float beta, float *C,
                 int ldc, float *work, int nthreads);

#endif
