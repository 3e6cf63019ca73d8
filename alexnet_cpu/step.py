"""One training step: forward, loss, backward (summed over the ranks of a data-parallel
run), SGD update. The trainer (train.py), MPI runs and the tests share it."""
import math

import numpy as np

from . import distributed
from .loss import softmax_cross_entropy


def train_step(net, opt, x, y, reducer=None, accumulate=1, total=None, row0=0, step=0):
    """One SGD step on the batch (x, y) -> (sum of the losses, correct predictions).

    The batch runs as `accumulate` micro-batches whose gradients add up; `reducer`
    (distributed.GradientReducer) sums them over the ranks during the last backward.
    The loss is the mean over `total` samples (the global batch; default len(y)). The
    dropout mask of a row derives from the step counter and its row in the global batch
    (row0: this rank's first), so it does not depend on how the batch is split."""
    total = len(y) if total is None else total
    loss_sum = correct = 0
    for j in range(accumulate):
        part = distributed.shard_slice(len(y), j, accumulate)
        distributed.set_dropout_rows(net, step, row0 + part.start)
        logits = net.forward(x[part])
        loss, dlogits = softmax_cross_entropy(logits, y[part])
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}: lower the learning "
                                     f"rate (-lr)")
        m = len(y[part])
        if m != total:   # each micro-batch's mean gradient weighted by its share
            dlogits *= np.float32(m / total)
        if reducer is None:
            net.backward(dlogits)
        else:
            reducer.backward(dlogits, reduce=j == accumulate - 1)
        loss_sum += loss * m
        correct += int((logits.argmax(axis=1) == y[part]).sum())
    opt.step()
    return loss_sum, correct
