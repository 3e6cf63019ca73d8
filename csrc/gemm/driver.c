/* The GEMM driver: BLIS-style loops around a register-tiled micro-kernel, threading, and the
 * plain-matrix front ac_sgemm.
 *
 * Loops (per thread, over its part of C):
 *   ib over M by MB          A rows packed once per K block (MB x KC, in L3)
 *    pc over K by KC
 *     jc over N by NC        B block (KC x NC, in L2) packed
 *      ic over MB by MC      A sub-block (MC x KC) read into L2 ...
 *       jr over NC by NR     ... B micro-panel (KC x NR) stays in L1 ...
 *        ir over MC by MR    ... while A micro-panels stream from L2: micro-kernel MR x NR
 * Each operand is packed once (B once per MB rows of A). Threads split N or M in whole
 * micro-panels and run independently (no barriers); each packs what its part needs.
 * K is never split and its blocking depends only on K, so every element of C sees the same
 * arithmetic for any thread count: results are bitwise identical across nthreads.
 * The block sizes of each path are in blocking.h; threads are split with ac_split and run
 * with ac_team_run (ac_parallel.h). */
#include "ac_bf16.h"
#include "ac_parallel.h"
#include "gemm_internal.h"

/* Below this many multiply-adds one thread is faster than waking a team. */
#define AC_GEMM_SERIAL_MACS (1 << 19)

/* Floats of a packed A chunk and a packed B block, each a whole number of cache lines. */
static size_t a_floats(const ac_gemm_kernel *kr)
{
    return ac_pad16((size_t)kr->kc * ac_round_up(kr->mb, kr->mr));
}
static size_t b_floats(const ac_gemm_kernel *kr)
{
    return ac_pad16((size_t)kr->kc * ac_round_up(kr->nc, kr->nr));
}

size_t ac_sgemm_work_floats(int nthreads)
{
    size_t need = 0;
    if (nthreads < 1) nthreads = 1;
    for (int i = 0; i < ac_gemm_nkernels; i++) /* any kernel may be asked for at call time */
        need = AC_MAX(need, (size_t)nthreads * (a_floats(&ac_gemm_kernels[i]) +
                                                b_floats(&ac_gemm_kernels[i])));
    return need + AC_ALIGN / sizeof(float); /* slack to align the start */
}

/* Split n into nearly equal blocks of at most bmax, each a multiple of unit. */
static int block_size(int n, int bmax, int unit)
{
    int nb = (n + bmax - 1) / bmax;
    return (int)ac_round_up((size_t)((n + nb - 1) / nb), (size_t)unit);
}

/* bf16 blocks are whole k-pairs (but the last). */
int ac_gemm_kc(const ac_gemm_kernel *kr, int K)
{
    return K > 0 ? block_size(K, kr->kc, kr->convert ? 2 : 1) : 1;
}

void ac_gemm_pack(const ac_gemm_kernel *kr, const ac_gemm_operand *op, float *dst, int x0,
                  int nx, int k0, int kc, int R)
{
    op->pack(op->src, dst, x0, nx, k0, kc, R, kr);
    if (kr->convert) kr->convert(dst, dst, nx, kc, R);
}

int ac_gemm_bias_steps(const ac_gemm_kernel *kr) { return kr->convert ? 3 : 1; }

float ac_gemm_bias_part(const ac_gemm_kernel *kr, float b, int step)
{
    if (!kr->convert) return b;
    for (int s = 0; s < step; s++) b -= ac_bf16_to_float(ac_bf16_round(b)); /* exact */
    return ac_bf16_to_float(ac_bf16_round(b));
}

#define AC_GEMM_PREPACK_PANELS 8 /* row panels per packing task */
ac_gemm_prepacked ac_gemm_prepack(float *dst, ac_gemm_pack_fn pack, const void *src, int X,
                                  int K, int R, const ac_gemm_kernel *kr, int nt)
{
    const int P = AC_GEMM_PREPACK_PANELS;
    const int KC = ac_gemm_kc(kr, K), xpad = (X + R - 1) / R * R;
    const int nkb = (K + KC - 1) / KC, nrc = (xpad / R + P - 1) / P;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && nkb * nrc > 1)
    for (int t = 0; t < nkb * nrc; t++) {
        const int k0 = t / nrc * KC, x0 = t % nrc * P * R, kc = AC_MIN(KC, K - k0);
        pack(src, dst + (size_t)k0 * xpad + (size_t)x0 * kc, x0, AC_MIN(P * R, X - x0), k0, kc,
             R, kr);
    }
    ac_gemm_convert_prepacked(kr, dst, xpad, K, R);
    return (ac_gemm_prepacked){dst, xpad};
}

size_t ac_gemm_prepack_floats(int X, int K)
{
    size_t f = 0; /* fp32 panels of the widest tile of any path (bf16 ones are smaller) */
    for (int i = 0; i < ac_gemm_nkernels; i++)
        f = AC_MAX(f, (size_t)K *
                          ac_round_up(X, AC_MAX(ac_gemm_kernels[i].mr, ac_gemm_kernels[i].nr)));
    return ac_pad16(f);
}

void ac_gemm_convert_prepacked(const ac_gemm_kernel *kr, float *p, int xpad, int K, int R)
{
    const int KC = ac_gemm_kc(kr, K);
    if (!kr->convert) return;
    for (int k0 = 0; k0 < K; k0 += KC) /* in order: each block moves down over converted ones */
        kr->convert(p + (size_t)k0 / 2 * xpad, p + (size_t)k0 * xpad, xpad, AC_MIN(KC, K - k0),
                    R);
}

/* Rows [m0, m1) x columns [n0, n1) of C, on the caller's thread with its own buffers. */
static void gemm_part(const ac_gemm_kernel *kr, int m0, int m1, int n0, int n1, int K,
                      float alpha, const ac_gemm_operand *A, const ac_gemm_operand *B,
                      float beta, float *C, size_t ldc, float *Abuf, float *Bbuf)
{
    const int MR = kr->mr, NR = kr->nr;
    const int KC = ac_gemm_kc(kr, K);
    const int NC = block_size(n1 - n0, kr->nc, NR);
    const int MB = block_size(m1 - m0, kr->mb, MR);
    const int MC = block_size(MB, kr->mc, MR);

    for (int ib = m0; ib < m1; ib += MB) {
        const int mb = AC_MIN(MB, m1 - ib);
        for (int pc = 0; pc < K; pc += KC) {
            const int kc = AC_MIN(KC, K - pc), kw = ac_gemm_kwords(kr, kc);
            const float beta_k = pc == 0 ? beta : 1.f;
            const float *Ab = A->packed ? A->packed(A->src, ib, pc, kc, kr) : NULL;
            if (!Ab) {
                ac_gemm_pack(kr, A, Abuf, ib, mb, pc, kc, MR);
                Ab = Abuf;
            }
            for (int jc = n0; jc < n1; jc += NC) {
                const int nc = AC_MIN(NC, n1 - jc);
                const float *Bb = B->packed ? B->packed(B->src, jc, pc, kc, kr) : NULL;
                if (!Bb) {
                    ac_gemm_pack(kr, B, Bbuf, jc, nc, pc, kc, NR);
                    Bb = Bbuf;
                }
                for (int ic = 0; ic < mb; ic += MC) {
                    const int mc = AC_MIN(MC, mb - ic);
                    const float *Ap = Ab + (size_t)ic * kw;
                    for (int jr = 0; jr < nc; jr += NR) {
                        const float *Bp = Bb + (size_t)jr * kw;
                        float *Cc = C + (size_t)(ib + ic) * ldc + jc + jr;
                        const int nr = AC_MIN(NR, nc - jr);
                        for (int ir = 0; ir < mc; ir += MR)
                            kr->ukernel(kc, Ap + (size_t)ir * kw, Bp, Cc + (size_t)ir * ldc,
                                        ldc, alpha, beta_k, AC_MIN(MR, mc - ir), nr);
                    }
                }
            }
        }
    }
}

const float *ac_gemm_prepacked_at(const void *src, int x0, int k0, int kc,
                                  const ac_gemm_kernel *kr)
{
    const ac_gemm_prepacked *pp = (const ac_gemm_prepacked *)src;
    const int kw = ac_gemm_kwords(kr, kc);
    return pp->p + (size_t)(kr->convert ? k0 / 2 : k0) * pp->xpad + (size_t)x0 * kw;
}

static void rows_pack(const void *src, float *dst, int x0, int nx, int k0, int kc, int R,
                      const ac_gemm_kernel *kr)
{
    const ac_gemm_rows *r = (const ac_gemm_rows *)src;
    r->op->pack(r->op->src, dst, r->x0 + x0, nx, k0, kc, R, kr);
}

static const float *rows_packed(const void *src, int x0, int k0, int kc,
                                const ac_gemm_kernel *kr)
{
    const ac_gemm_rows *r = (const ac_gemm_rows *)src;
    return r->op->packed ? r->op->packed(r->op->src, r->x0 + x0, k0, kc, kr) : NULL;
}

ac_gemm_operand ac_gemm_rows_of(const ac_gemm_rows *r)
{
    return (ac_gemm_operand){rows_pack, rows_packed, r};
}

/* C := beta * C, for K == 0 or alpha == 0 (A and B are not read). */
static void scale_c(int M, int N, float beta, float *C, size_t ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.f)
            for (int j = 0; j < N; j++) c[j] = 0.f;
        else
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

/* Largest share of n items, split in whole panels of size unit among nt threads, over the
 * even share n/nt: 1 is perfect balance. */
static double imbalance(int n, int unit, int nt)
{
    long worst = 0;
    for (int t = 0; t < nt; t++) {
        const ac_range r = ac_split(n, unit, t, nt);
        worst = AC_MAX(worst, r.hi - r.lo);
    }
    return worst * (double)nt / n;
}

/* Split N (each thread packs its own columns of B and all of A) unless splitting M (its own
 * rows of A, all of B) costs clearly less: the larger thread's share of 2MNK plus what it
 * packs, an element costing about PACK_FLOPS. (Packing B blocks together and sharing them
 * measured slower here: half of each block then comes from the other core, plus barriers.) */
#define AC_GEMM_PACK_FLOPS 32.0
static int split_m(const ac_gemm_kernel *kr, int M, int N, int K, int nt)
{
    const double f = 2.0 * M * N * K / nt;
    const double cn = imbalance(N, kr->nr, nt) * f +
                      AC_GEMM_PACK_FLOPS *
                          ((double)M * K + (double)K * N / nt * ac_ceil_div(M, kr->mb));
    const double cm = imbalance(M, kr->mr, nt) * f +
                      AC_GEMM_PACK_FLOPS *
                          ((double)M / nt * K +
                           (double)K * N * ac_ceil_div(ac_ceil_div(M, nt), kr->mb));
    return cm < 0.99 * cn;
}

/* One product shared out among a team: each thread its rows (by_m) or columns of C. */
typedef struct {
    const ac_gemm_kernel *kr;
    int M, N, K, by_m;
    float alpha, beta;
    const ac_gemm_operand *A, *B;
    float *C;
    int ldc;
    size_t asz;
} gemm_team;

static void gemm_share(void *ctx, int t, int T, float *wt)
{
    const gemm_team *p = (const gemm_team *)ctx;
    const ac_range r = ac_split(p->by_m ? p->M : p->N, p->by_m ? p->kr->mr : p->kr->nr, t, T);
    if (r.hi <= r.lo) return;
    if (p->by_m)
        gemm_part(p->kr, (int)r.lo, (int)r.hi, 0, p->N, p->K, p->alpha, p->A, p->B, p->beta,
                  p->C, p->ldc, wt, wt + p->asz);
    else
        gemm_part(p->kr, 0, p->M, (int)r.lo, (int)r.hi, p->K, p->alpha, p->A, p->B, p->beta,
                  p->C, p->ldc, wt, wt + p->asz);
}

void ac_gemm_run(const ac_gemm_kernel *kr, int M, int N, int K, float alpha,
                 const ac_gemm_operand *A, const ac_gemm_operand *B, float beta, float *C,
                 int ldc, float *work, int nthreads)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.f) {
        scale_c(M, N, beta, C, (size_t)ldc);
        return;
    }
    float *w = ac_align(work);
    const size_t asz = a_floats(kr), bsz = b_floats(kr);
    const int pm = ac_ceil_div(M, kr->mr), pn = ac_ceil_div(N, kr->nr);

    int nt = nthreads;
    if ((double)M * N * K < AC_GEMM_SERIAL_MACS) nt = 1;
    nt = AC_MIN(nt, AC_MAX(pm, pn));
    if (nt <= 1) {
        gemm_part(kr, 0, M, 0, N, K, alpha, A, B, beta, C, ldc, w, w + asz);
        return;
    }
    const int by_m = pn < nt || (pm >= nt && split_m(kr, M, N, K, nt));
    gemm_team p = {kr, M, N, K, by_m, alpha, beta, A, B, C, ldc, asz};
    ac_team_run(nt, gemm_share, &p, w, asz + bsz);
}

void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc, float *work,
              const ac_ctx *ctx, int nthreads)
{
    /* The small path multiplies in fp32 only. */
    if (ctx->precision == AC_FP32 &&
        ac_sgemm_small(ctx->isa, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                       work, nthreads))
        return;
    /* op(A): row x, depth k;  op(B): column x, depth k. */
    const ac_gemm_matrix am = {A, trans_a ? 1 : (size_t)lda, trans_a ? (size_t)lda : 1};
    const ac_gemm_matrix bm = {B, trans_b ? (size_t)ldb : 1, trans_b ? 1 : (size_t)ldb};
    const ac_gemm_operand ao = {ac_gemm_pack_matrix, NULL, &am};
    const ac_gemm_operand bo = {ac_gemm_pack_matrix, NULL, &bm};
    ac_gemm_run(ac_gemm_kernel_for(ctx), M, N, K, alpha, &ao, &bo, beta, C, ldc, work,
                nthreads);
}
