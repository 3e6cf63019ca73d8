/* SGD update with momentum and weight decay (ac_sgd.h): one streaming pass over w, v, g,
 * which also zeroes g for the next step's accumulation (saves a separate pass). */
#include "ac_sgd.h"

void ac_sgd_update(float *restrict w, float *restrict v, float *restrict g, ptrdiff_t n,
                   float lr, float momentum, float weight_decay, int nthreads)
{
    const float wd_lr = weight_decay * lr;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= 32768)
    for (ptrdiff_t i = 0; i < n; i++) {
        const float vi = momentum * v[i] - wd_lr * w[i] - lr * g[i];
        v[i] = vi;
        w[i] += vi;
        g[i] = 0.0f;
    }
}
