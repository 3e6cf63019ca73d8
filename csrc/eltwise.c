/* Element-wise kernels: ReLU, inverted dropout, bias add and bias gradient (ac_eltwise.h).
 *
 * Memory-bound loops written for the auto-vectoriser; threads split contiguous ranges.
 * Small arrays run on the caller's thread (a parallel region costs more than the work).
 */
#include "ac_eltwise.h"

#define PAR_MIN 32768 /* elements below which one thread is used */
#define BIAS_CB 256 /* columns per task in the 2-D bias gradient */

void ac_relu_forward(float *out, const float *x, ptrdiff_t n, int nthreads)
{
    if (out == x) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
        for (ptrdiff_t i = 0; i < n; i++) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    } else {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
        for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

void ac_relu_backward(float *dx, const float *dout, const float *y, ptrdiff_t n, int nthreads)
{
    if (dx == dout) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dx[i] : 0.0f;
    } else {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
        for (ptrdiff_t i = 0; i < n; i++) {
            const float d = dout[i];
            dx[i] = y[i] > 0.0f ? d : 0.0f;
        }
    }
}

/* SplitMix64's output function at counter i of the stream keyed by seed. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ac_dropout_forward(float *out, uint8_t *mask, const float *x, ptrdiff_t n, float p,
                        uint64_t seed, int nthreads)
{
    /* keep iff the top 32 hash bits >= thr, i.e. with probability 1 - thr / 2^32 */
    const double t = (double)p * 4294967296.0;
    const uint64_t thr = p <= 0.0f ? 0 : t >= 4294967296.0 ? 4294967296ull : (uint64_t)t;
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    const uint64_t key = mix64(seed + 0x9e3779b97f4a7c15ull);
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint64_t h = mix64(key + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull);
        const int keep = (h >> 32) >= thr;
        mask[i] = (uint8_t)keep;
        out[i] = x[i] * ((float)keep * scale); /* no branch on a random bit */
    }
}

void ac_dropout_backward(float *dx, const float *dout, const uint8_t *mask, ptrdiff_t n,
                         float p, int nthreads)
{
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= PAR_MIN)
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = dout[i] * ((float)mask[i] * scale);
}

void ac_bias_add(float *out, const float *bias, ptrdiff_t N, int C, ptrdiff_t S, int nthreads)
{
    const int par = N * C * S >= PAR_MIN;
    (void)par; /* read by the OpenMP pragmas only */
    if (S == 1) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (par)
        for (ptrdiff_t n = 0; n < N; n++) {
            float *o = out + n * C;
            for (int c = 0; c < C; c++) o[c] += bias[c];
        }
    } else {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (par)
        for (ptrdiff_t r = 0; r < N * C; r++) {
            float *o = out + r * S;
            const float b = bias[r % C];
            for (ptrdiff_t s = 0; s < S; s++) o[s] += b;
        }
    }
}

/* Sum of p[0..S) in double: 8 interleaved partial sums, combined in a fixed order. */
static double sum_row(const float *p, ptrdiff_t S)
{
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t s = 0;
    for (; s + 8 <= S; s += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)p[s + j];
    for (int j = 0; s < S; s++, j++) a[j] += (double)p[s];
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

void ac_bias_grad(float *dbias, const float *dout, ptrdiff_t N, int C, ptrdiff_t S,
                  int nthreads)
{
    const int par = N * C * S >= PAR_MIN;
    (void)par; /* read by the OpenMP pragmas only */
    if (S == 1) {
        const int nb = (C + BIAS_CB - 1) / BIAS_CB;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (par)
        for (int b = 0; b < nb; b++) {
            double acc[BIAS_CB];
            const int c0 = b * BIAS_CB, w = AC_MIN(BIAS_CB, C - c0);
            for (int j = 0; j < w; j++) acc[j] = 0.0;
            for (ptrdiff_t n = 0; n < N; n++) {
                const float *d = dout + n * C + c0;
                for (int j = 0; j < w; j++) acc[j] += (double)d[j];
            }
            for (int j = 0; j < w; j++) dbias[c0 + j] += (float)acc[j];
        }
    } else {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (ptrdiff_t n = 0; n < N; n++) acc += sum_row(dout + (n * C + c) * S, S);
            dbias[c] += (float)acc;
        }
    }
}
