# eltwise kernel bindings: relu, dropout, bias add / grad (csrc/eltwise.c).
from libc.stdint cimport uint8_t, uint64_t, int64_t

cdef extern from "ac_eltwise.h":
    void ac_relu_forward(float *out, const float *x, ptrdiff_t n, int nthreads) nogil
    void ac_relu_backward(float *dx, const float *dout, const float *y, ptrdiff_t n,
                          int nthreads) nogil
    void ac_dropout_forward(float *out, uint8_t *mask, const float *x, ptrdiff_t n, float p,
                            uint64_t seed, int nthreads) nogil
    void ac_dropout_backward(float *dx, const float *dout, const uint8_t *mask, ptrdiff_t n,
                             float p, int nthreads) nogil
    void ac_bias_add(float *out, const float *bias, ptrdiff_t N, int C, ptrdiff_t S,
                     int nthreads) nogil
    void ac_bias_grad(float *dbias, const float *dout, ptrdiff_t N, int C, ptrdiff_t S,
                      int nthreads) nogil


def relu_forward(out, x):
    """out = max(x, 0); out may be x (in place)."""
    cdef float *px = <float *>_data(_array("relu_forward", "x", x, np.float32, None))
    cdef float *po = <float *>_data(_array("relu_forward", "out", out, np.float32, x.shape, out=True))
    _same_or_distinct("relu_forward", "out", out, "x", x)
    cdef ptrdiff_t n = x.size
    cdef int nt = _nthreads()
    with nogil:
        ac_relu_forward(po, px, n, nt)


def relu_backward(dx, dout, y):
    """dx = dout * (y > 0), y the forward output; dx may be dout (in place)."""
    cdef float *py = <float *>_data(_array("relu_backward", "y", y, np.float32, None))
    cdef float *pd = <float *>_data(_array("relu_backward", "dout", dout, np.float32, y.shape))
    cdef float *pdx = <float *>_data(_array("relu_backward", "dx", dx, np.float32, y.shape, out=True))
    _same_or_distinct("relu_backward", "dx", dx, "dout", dout)
    _no_overlap("relu_backward", [("dx", dx)], [("y", y)])
    cdef ptrdiff_t n = y.size
    cdef int nt = _nthreads()
    with nogil:
        ac_relu_backward(pdx, pd, py, n, nt)


def dropout_forward(out, mask, x, float p, unsigned long long seed):
    """Inverted dropout: keep each element with probability 1 - p; out = x * mask / (1 - p).

    mask (uint8, same shape) receives 1 for kept elements. The mask is a function of
    (seed, element index) only: reproducible and independent of the thread count.
    """
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"dropout_forward: p must be in [0, 1], got {p}")
    cdef float *px = <float *>_data(_array("dropout_forward", "x", x, np.float32, None))
    cdef float *po = <float *>_data(_array("dropout_forward", "out", out, np.float32, x.shape, out=True))
    cdef uint8_t *pm = <uint8_t *>_data(_array("dropout_forward", "mask", mask, np.uint8,
                                            x.shape, out=True))
    _same_or_distinct("dropout_forward", "out", out, "x", x)
    _no_overlap("dropout_forward", [("mask", mask)], [("x", x), ("out", out)])
    cdef ptrdiff_t n = x.size
    cdef int nt = _nthreads()
    with nogil:
        ac_dropout_forward(po, pm, px, n, p, seed, nt)


def dropout_backward(dx, dout, mask, float p):
    """dx = dout * mask / (1 - p); dx may be dout (in place)."""
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"dropout_backward: p must be in [0, 1], got {p}")
    cdef float *pd = <float *>_data(_array("dropout_backward", "dout", dout, np.float32, None))
    cdef float *pdx = <float *>_data(_array("dropout_backward", "dx", dx, np.float32,
                                         dout.shape, out=True))
    cdef uint8_t *pm = <uint8_t *>_data(_array("dropout_backward", "mask", mask, np.uint8,
                                            dout.shape))
    _same_or_distinct("dropout_backward", "dx", dx, "dout", dout)
    _no_overlap("dropout_backward", [("dx", dx)], [("mask", mask)])
    cdef ptrdiff_t n = dout.size
    cdef int nt = _nthreads()
    with nogil:
        ac_dropout_backward(pdx, pd, pm, n, p, nt)


cdef tuple _ew_ncs(str fn, object a, str name):
    if a.ndim < 2:
        raise ValueError(f"{fn}: {name} must have at least 2 dims (N, C, ...), "
                         f"got shape {a.shape}")
    cdef Py_ssize_t S = 1
    for d in a.shape[2:]:
        S *= d
    return a.shape[0], a.shape[1], S


def bias_add(out, bias):
    """out[n, c, ...] += bias[c] for out of shape (N, C, ...)."""
    cdef float *po = <float *>_data(_array("bias_add", "out", out, np.float32, None, out=True))
    N, C, S = _ew_ncs("bias_add", out, "out")
    cdef float *pb = <float *>_data(_array("bias_add", "bias", bias, np.float32, (C,)))
    _no_overlap("bias_add", [("out", out)], [("bias", bias)])
    cdef ptrdiff_t n_ = N, s_ = S
    cdef int c_ = C, nt = _nthreads()
    with nogil:
        ac_bias_add(po, pb, n_, c_, s_, nt)


def bias_grad(dbias, dout):
    """dbias[c] += sum over n and trailing dims of dout[n, c, ...] (accumulates)."""
    cdef float *pd = <float *>_data(_array("bias_grad", "dout", dout, np.float32, None))
    N, C, S = _ew_ncs("bias_grad", dout, "dout")
    cdef float *pb = <float *>_data(_array("bias_grad", "dbias", dbias, np.float32, (C,), out=True))
    _no_overlap("bias_grad", [("dbias", dbias)], [("dout", dout)])
    cdef ptrdiff_t n_ = N, s_ = S
    cdef int c_ = C, nt = _nthreads()
    with nogil:
        ac_bias_grad(pb, pd, n_, c_, s_, nt)
