/* SGD with momentum and weight decay, the AlexNet paper's form, over flat float32 arrays:
 *   v = momentum * v - weight_decay * lr * w - lr * g;   w = w + v
 * For a constant lr this equals torch.optim.SGD (buf = m buf + g + wd w; w -= lr buf)
 * with v = -lr * buf. w, v and g are n floats each and must not overlap.
 * g is consumed: set to zero, ready for the next step's accumulation.
 */
#ifndef AC_SGD_H
#define AC_SGD_H
#include "ac_common.h"

void ac_sgd_update(float *w, float *v, float *g, ptrdiff_t n, float lr, float momentum,
                   float weight_decay, int nthreads);

#endif
