/* Softmax and softmax cross-entropy (ac_loss.h). N rows of K logits; rows in parallel.
 * log-sum-exp with the row maximum subtracted; sums in double.
 */
#include <math.h>

#include "ac_loss.h"

static float row_max(const float *x, int K)
{
    float m = x[0];
    for (int j = 1; j < K; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* e[j] = exp(x[j] - m) (e may be x or NULL); returns sum_j e[j] in double. */
static double row_exp(float *e, const float *x, float m, int K)
{
    double s = 0.0;
    if (e) {
        for (int j = 0; j < K; j++) {
            e[j] = expf(x[j] - m);
            s += e[j];
        }
    } else {
        for (int j = 0; j < K; j++) s += expf(x[j] - m);
    }
    return s;
}

void ac_softmax(float *out, const float *logits, int N, int K, int nthreads)
{
#pragma omp parallel for num_threads(nthreads) schedule(static) if (N * K >= 32768)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (ptrdiff_t)n * K;
        float *o = out + (ptrdiff_t)n * K;
        const double s = row_exp(o, x, row_max(x, K), K);
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < K; j++) o[j] *= inv;
    }
}

double ac_softmax_cross_entropy(float *dlogits, double *row_loss, const float *logits,
                                const int64_t *labels, int N, int K, int nthreads)
{
    if (N <= 0) return 0.0;
    const float invN = 1.0f / (float)N;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (N * K >= 32768)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (ptrdiff_t)n * K;
        float *d = dlogits ? dlogits + (ptrdiff_t)n * K : NULL;
        const int y = (int)labels[n];
        const float m = row_max(x, K);
        const double s = row_exp(d, x, m, K);
        /* -log p_y = log sum_j exp(x_j - m) - (x_y - m) */
        row_loss[n] = log(s) - ((double)x[y] - (double)m);
        if (d) {
            const float scale = (float)(1.0 / s) * invN;
            for (int j = 0; j < K; j++) d[j] *= scale;
            d[y] -= invN;
        }
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += row_loss[n];
    return total / N;
}
