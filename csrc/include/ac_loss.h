/* Softmax and softmax cross-entropy over rows of logits (N rows, K classes), float32.
 * Both subtract the row maximum first, so logits of any finite size are safe.
 */
#ifndef AC_LOSS_H
#define AC_LOSS_H
#include "ac_common.h"
#include <stdint.h>

/* out[n,:] = softmax(logits[n,:]); out may be logits. */
void ac_softmax(float *out, const float *logits, int N, int K, int nthreads);

/* Mean over rows of -log softmax(logits[n,:])[labels[n]], returned in double.
 * row_loss (N doubles) receives each row's loss; the mean sums it in row order, so the
 * result does not depend on the thread count. If dlogits is not NULL it is overwritten
 * with d mean / d logits = (softmax - onehot) / N. Labels must lie in [0, K). */
double ac_softmax_cross_entropy(float *dlogits, double *row_loss, const float *logits,
                                const int64_t *labels, int N, int K, int nthreads);

#endif
