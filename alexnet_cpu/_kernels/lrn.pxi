# lrn kernel bindings (csrc/lrn.c): local response normalisation across channels, NCHW.

cdef extern from "ac_lrn.h":
    void ac_lrn_forward(float *out, float *scale, const float *x, int N, int C, ptrdiff_t HW,
                        int size, float alpha, float beta, float k, const ac_ctx *ctx,
                        int nthreads) nogil
    void ac_lrn_backward(float *dx, const float *dout, const float *x, const float *out,
                         const float *scale, int N, int C, ptrdiff_t HW, int size,
                         float alpha, float beta, const ac_ctx *ctx, int nthreads) nogil


cdef tuple _lrn_shape(str fn, object x, int size):
    _array(fn, "x", x, ndim=4)
    if size < 1:
        raise ValueError(f"{fn}: size must be >= 1, got {size}")
    return x.shape[0], x.shape[1], x.shape[2] * x.shape[3]


def lrn_forward(out, scale, x, int size, float alpha, float beta, float k, ctx=None):
    """out = x / (k + alpha * sum_{size channels around c} x^2)^beta (alpha not divided by size).

    scale (same shape as x) receives k + alpha * sum, which lrn_backward needs.
    """
    cdef Context cx = _resolve("lrn_forward", ctx)
    N, C, HW = _lrn_shape("lrn_forward", x, size)
    cdef float *px = <float *>_data(_array("lrn_forward", "x", x, np.float32, None))
    cdef float *po = <float *>_data(_array("lrn_forward", "out", out, np.float32, x.shape, out=True))
    cdef float *ps = <float *>_data(_array("lrn_forward", "scale", scale, np.float32, x.shape, out=True))
    _no_overlap("lrn_forward", [("out", out), ("scale", scale)], [("x", x)])
    cdef int n_ = N, c_ = C, nt = _nthreads()
    cdef ptrdiff_t hw = HW
    with nogil:
        ac_lrn_forward(po, ps, px, n_, c_, hw, size, alpha, beta, k, &cx.c, nt)


def lrn_backward(dx, dout, x, out, scale, int size, float alpha, float beta, float k,
                 ctx=None):
    """dx (overwritten) = gradient of the loss wrt x, given dout and forward's x, out, scale.

    k is accepted for symmetry with lrn_forward; scale already holds it.
    """
    cdef Context cx = _resolve("lrn_backward", ctx)
    N, C, HW = _lrn_shape("lrn_backward", x, size)
    cdef float *px = <float *>_data(_array("lrn_backward", "x", x, np.float32, None))
    cdef float *pdo = <float *>_data(_array("lrn_backward", "dout", dout, np.float32, x.shape))
    cdef float *po = <float *>_data(_array("lrn_backward", "out", out, np.float32, x.shape))
    cdef float *ps = <float *>_data(_array("lrn_backward", "scale", scale, np.float32, x.shape))
    cdef float *pdx = <float *>_data(_array("lrn_backward", "dx", dx, np.float32, x.shape, out=True))
    _no_overlap("lrn_backward", [("dx", dx)], [("dout", dout), ("x", x), ("out", out),
                                             ("scale", scale)])
    cdef int n_ = N, c_ = C, nt = _nthreads()
    cdef ptrdiff_t hw = HW
    with nogil:
        ac_lrn_backward(pdx, pdo, px, po, ps, n_, c_, hw, size, alpha, beta, &cx.c, nt)
