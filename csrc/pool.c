/* Max and adaptive-average pooling, forward and backward (API and shapes in ac_pool.h).
 * Letters: N images, C channels, H x W input plane, OH x OW output plane, k window,
 * P = N*C planes (the unit of parallel work). */
#include <math.h>
#include <string.h>

#include "ac_pool.h"

/* One plane. Window positions outer, output columns inner, so the select vectorises over ow;
 * the running maxima live in local rows (no aliasing with x); AlexNet's 3/2 is specialised. */
static inline void maxpool_plane(float *restrict op, int32_t *restrict ap,
                                 const float *restrict xp, int W, int OH, int OW, const int k,
                                 const int stride)
{
    float best[OW];
    int32_t idx[OW];
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            best[ow] = -INFINITY;
            idx[ow] = oh * stride * W + ow * stride;
        }
        for (int i = 0; i < k; i++) {
            const int ih = oh * stride + i;
            const float *xr = xp + (size_t)ih * W;
            for (int j = 0; j < k; j++) {
                const int base = ih * W + j;
                for (int ow = 0; ow < OW; ow++) {
                    const float v = xr[ow * stride + j];
                    const int take = (v > best[ow]) | (v != v);   /* a NaN wins, as in torch */
                    best[ow] = take ? v : best[ow];
                    idx[ow] = take ? base + ow * stride : idx[ow];
                }
            }
        }
        memcpy(op + (size_t)oh * OW, best, (size_t)OW * sizeof(float));
        if (ap) memcpy(ap + (size_t)oh * OW, idx, (size_t)OW * sizeof(int32_t));
    }
}

void ac_maxpool2d_forward(float *out, int32_t *argmax, const float *x,
                          int N, int C, int H, int W, int k, int stride, int nthreads)
{
    const int OH = (H - k) / stride + 1, OW = (W - k) / stride + 1;
    const long P = (long)N * C;
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *op = out + (size_t)p * OH * OW;
        int32_t *ap = argmax ? argmax + (size_t)p * OH * OW : NULL;
        if (k == 3 && stride == 2)
            maxpool_plane(op, ap, xp, W, OH, OW, 3, 2);
        else
            maxpool_plane(op, ap, xp, W, OH, OW, k, stride);
    }
}

long ac_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax,
                           int N, int C, int H, int W, int OH, int OW, int nthreads)
{
    const long P = (long)N * C, HW = (long)H * W, S = (long)OH * OW;
    long bad = 0;
    #pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+:bad)
    for (long p = 0; p < P; p++) {
        float *dp = dx + (size_t)p * HW;
        const float *gp = dout + (size_t)p * S;
        const int32_t *ap = argmax + (size_t)p * S;
        memset(dp, 0, (size_t)HW * sizeof(float));
        for (long s = 0; s < S; s++) {
            const int32_t a = ap[s];
            if (a < 0 || a >= HW) { bad++; continue; }
            dp[a] += gp[s];
        }
    }
    return bad;
}

/* Bin i of n over length L: [floor(i*L/n), ceil((i+1)*L/n)). */
static inline int bin_start(int i, int L, int n) { return (int)((long)i * L / n); }
static inline int bin_end(int i, int L, int n) { return (int)(((long)(i + 1) * L + n - 1) / n); }

void ac_adaptive_avgpool2d_forward(float *out, const float *x,
                                   int N, int C, int H, int W, int OH, int OW, int nthreads)
{
    const long P = (long)N * C;
    if (OH == H && OW == W) {
        memcpy(out, x, (size_t)P * H * W * sizeof(float));
        return;
    }
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *op = out + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
            for (int ow = 0; ow < OW; ow++) {
                const int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
                float s = 0.f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) s += xp[(size_t)ih * W + iw];
                op[(size_t)oh * OW + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

void ac_adaptive_avgpool2d_backward(float *dx, const float *dout,
                                    int N, int C, int H, int W, int OH, int OW, int nthreads)
{
    const long P = (long)N * C;
    if (OH == H && OW == W) {
        memcpy(dx, dout, (size_t)P * H * W * sizeof(float));
        return;
    }
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < P; p++) {
        float *dp = dx + (size_t)p * H * W;
        const float *gp = dout + (size_t)p * OH * OW;
        memset(dp, 0, (size_t)H * W * sizeof(float));
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
            for (int ow = 0; ow < OW; ow++) {
                const int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
                const float g = gp[(size_t)oh * OW + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dp[(size_t)ih * W + iw] += g;
            }
        }
    }
}
