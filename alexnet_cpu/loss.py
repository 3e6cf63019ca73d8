"""Softmax cross-entropy and softmax on logits (N, K); the arithmetic is in C."""
import numpy as np

from . import _C


def softmax_cross_entropy(logits, labels):
    """(mean loss over the batch, d loss / d logits) for integer class labels (N,)."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: logits must be (N, K) and labels (N,), got "
                         f"{logits.shape} and {labels.shape}")
    dlogits = np.empty_like(logits)
    loss = _C.softmax_cross_entropy(logits, labels, dlogits)
    return float(loss), dlogits


def softmax(logits):
    """Row-wise probabilities of logits (N, K)."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    out = np.empty_like(logits)
    _C.softmax(out, logits)
    return out
