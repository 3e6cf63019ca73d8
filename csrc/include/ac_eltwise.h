/* Element-wise kernels: ReLU, inverted dropout, bias add and bias gradient. float32.
 *
 * n is an element count. For the bias kernels the tensor is viewed as (N, C, S):
 * N leading dim, C channels (the bias length), S = product of the trailing dims
 * (1 for a 2-D (N, C) tensor).
 * In place is allowed where noted (same pointer, not partial overlap).
 */
#ifndef AC_ELTWISE_H
#define AC_ELTWISE_H
#include "ac_common.h"
#include <stdint.h>

/* out = max(x, 0); out may be x. */
void ac_relu_forward(float *out, const float *x, ptrdiff_t n, int nthreads);
/* dx = dout * (y > 0), y the forward output; dx may be dout. */
void ac_relu_backward(float *dx, const float *dout, const float *y, ptrdiff_t n, int nthreads);

/* Inverted dropout: element i is kept with probability 1 - p, decided by a counter-based
 * hash of (seed, i), so the mask depends on seed and i only, not on the thread count.
 * mask[i] = kept (0/1); out = x * mask / (1 - p) (p = 1: everything dropped); out may be x. */
void ac_dropout_forward(float *out, uint8_t *mask, const float *x, ptrdiff_t n, float p,
                        uint64_t seed, int nthreads);
/* dx = dout * mask / (1 - p); dx may be dout. */
void ac_dropout_backward(float *dx, const float *dout, const uint8_t *mask, ptrdiff_t n,
                         float p, int nthreads);

/* out[n,c,s] += bias[c]. */
void ac_bias_add(float *out, const float *bias, ptrdiff_t N, int C, ptrdiff_t S, int nthreads);
/* dbias[c] += sum_{n,s} dout[n,c,s], summed in double in a fixed order (thread-independent). */
void ac_bias_grad(float *dbias, const float *dout, ptrdiff_t N, int C, ptrdiff_t S,
                  int nthreads);

#endif
