# loss kernel bindings (csrc/loss.c): softmax and softmax cross-entropy over (N, K) logits.

cdef extern from "ac_loss.h":
    void ac_softmax(float *out, const float *logits, int N, int K, int nthreads) nogil
    double ac_softmax_cross_entropy(float *dlogits, double *row_loss, const float *logits,
                                    const int64_t *labels, int N, int K, int nthreads) nogil


def softmax(out, logits):
    """out[n, :] = softmax(logits[n, :]) for (N, K) logits (max-subtracted); out may be logits."""
    cdef float *pl = <float *>_data(_array("softmax", "logits", logits, np.float32, None))
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"softmax: logits must be 2-D (N, K) with K >= 1, got {logits.shape}")
    cdef float *po = <float *>_data(_array("softmax", "out", out, np.float32, logits.shape, out=True))
    _same_or_distinct("softmax", "out", out, "logits", logits)
    cdef int N = logits.shape[0], K = logits.shape[1], nt = _nthreads()
    with nogil:
        ac_softmax(po, pl, N, K, nt)


def softmax_cross_entropy(logits, labels, dlogits):
    """Mean over the N rows of -log softmax(logits)[label]; logits (N, K) float32,
    labels (N,) int64 in [0, K). dlogits (N, K), or None, is overwritten with the gradient
    of the mean loss, (softmax - onehot) / N. Returns the loss as a Python float."""
    cdef float *pl = <float *>_data(_array("softmax_cross_entropy", "logits", logits, np.float32,
                                        None))
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"softmax_cross_entropy: logits must be 2-D (N, K) with K >= 1, "
                         f"got {logits.shape}")
    cdef int N = logits.shape[0], K = logits.shape[1], nt = _nthreads()
    cdef int64_t *py = <int64_t *>_data(_array("softmax_cross_entropy", "labels", labels,
                                            np.int64, (N,)))
    cdef float *pd = NULL
    if dlogits is not None:
        pd = <float *>_data(_array("softmax_cross_entropy", "dlogits", dlogits, np.float32,
                                logits.shape, out=True))
        _no_overlap("softmax_cross_entropy", [("dlogits", dlogits)], [("logits", logits)])
    cdef Py_ssize_t i
    for i in range(N):
        if py[i] < 0 or py[i] >= K:
            raise ValueError(f"softmax_cross_entropy: labels[{i}] = {py[i]} is outside "
                             f"[0, {K}) (K = number of classes)")
    row_loss = np.empty(max(N, 1), dtype=np.float64)
    cdef double *pr = <double *>cnp.PyArray_DATA(<cnp.ndarray>row_loss)
    cdef double loss
    with nogil:
        loss = ac_softmax_cross_entropy(pd, pr, pl, py, N, K, nt)
    return loss
