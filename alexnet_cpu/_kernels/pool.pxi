# Pooling bindings: max pooling (k, stride, no padding, floor mode) with argmax, and
# adaptive average pooling, over NCHW float32 arrays.

from libc.stdint cimport int32_t

cdef extern from "ac_pool.h":
    void ac_maxpool2d_forward(float *out, int32_t *argmax, const float *x,
                              int N, int C, int H, int W, int k, int stride, const ac_ctx *ctx,
                              int nthreads) nogil
    long ac_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax,
                               int N, int C, int H, int W, int OH, int OW, int nthreads) nogil
    void ac_adaptive_avgpool2d_forward(float *out, const float *x, int N, int C, int H, int W,
                                       int OH, int OW, int nthreads) nogil
    void ac_adaptive_avgpool2d_backward(float *dx, const float *dout, int N, int C, int H,
                                        int W, int OH, int OW, int nthreads) nogil


def maxpool2d_forward(out, argmax, x, int k, int stride, ctx=None):
    """out = max over k x k windows of x moved by stride (no padding, floor mode):
    x (N,C,H,W), out (N,C,(H-k)//stride+1,(W-k)//stride+1) float32; argmax int32 of
    out's shape gets the flat index in the HxW plane of each max (None skips it)."""
    fn = "maxpool2d_forward"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *px = <const float *>_data(_array(fn, "x", x, ndim=4))
    if k < 1 or stride < 1:
        raise ValueError(f"{fn}: k and stride must be >= 1, got k={k}, stride={stride}")
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    if H < k or W < k:
        raise ValueError(f"{fn}: window {k} larger than the input plane {H}x{W}")
    shape = (N, C, (H - k) // stride + 1, (W - k) // stride + 1)
    cdef float *po = <float *>_data(_array(fn, "out", out, shape=shape, out=True))
    cdef int32_t *pa = NULL
    if argmax is not None:
        pa = <int32_t *>_data(_array(fn, "argmax", argmax, np.int32, shape, out=True))
    _no_overlap(fn, [("out", out), ("argmax", argmax)], [("x", x)])
    cdef int nt = _nthreads()
    with nogil:
        ac_maxpool2d_forward(po, pa, px, N, C, H, W, k, stride, &cx.c, nt)


def maxpool2d_backward(dx, dout, argmax):
    """dx = 0, then dx.plane[argmax] += dout (argmax from maxpool2d_forward)."""
    fn = "maxpool2d_backward"
    cdef float *pdx = <float *>_data(_array(fn, "dx", dx, ndim=4, out=True))
    cdef const float *pdo = <const float *>_data(_array(fn, "dout", dout, ndim=4))
    if dout.shape[:2] != dx.shape[:2]:
        raise ValueError(f"{fn}: dout must have shape ({dx.shape[0]}, {dx.shape[1]}, OH, OW)"
                         f" like dx, got {dout.shape}")
    cdef const int32_t *pa = <const int32_t *>_data(_array(fn, "argmax", argmax, np.int32,
                                                      dout.shape))
    _no_overlap(fn, [("dx", dx)], [("dout", dout), ("argmax", argmax)])
    cdef int N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef int OH = dout.shape[2], OW = dout.shape[3]
    cdef int nt = _nthreads()
    cdef long bad
    with nogil:
        bad = ac_maxpool2d_backward(pdx, pdo, pa, N, C, H, W, OH, OW, nt)
    if bad:
        raise ValueError(f"{fn}: argmax has {bad} entries outside [0, {H * W}) "
                         f"(the {H}x{W} input plane)")


def adaptive_avgpool2d_forward(out, x):
    """out (N,C,OH,OW) = mean of x (N,C,H,W) over torch's adaptive bins
    [floor(i*H/OH), ceil((i+1)*H/OH)); a copy when the sizes match."""
    fn = "adaptive_avgpool2d_forward"
    cdef const float *px = <const float *>_data(_array(fn, "x", x, ndim=4))
    cdef float *po = <float *>_data(_array(fn, "out", out, ndim=4, out=True))
    _no_overlap(fn, [("out", out)], [("x", x)])
    if out.shape[:2] != x.shape[:2] or out.shape[2] < 1 or out.shape[3] < 1:
        raise ValueError(f"{fn}: out must have shape ({x.shape[0]}, {x.shape[1]}, OH>=1, "
                         f"OW>=1) like x, got {out.shape}")
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int OH = out.shape[2], OW = out.shape[3]
    cdef int nt = _nthreads()
    with nogil:
        ac_adaptive_avgpool2d_forward(po, px, N, C, H, W, OH, OW, nt)


def adaptive_avgpool2d_backward(dx, dout):
    """dx (N,C,H,W) = gradient of adaptive_avgpool2d_forward given dout (N,C,OH,OW)."""
    fn = "adaptive_avgpool2d_backward"
    cdef float *pdx = <float *>_data(_array(fn, "dx", dx, ndim=4, out=True))
    cdef const float *pdo = <const float *>_data(_array(fn, "dout", dout, ndim=4))
    _no_overlap(fn, [("dx", dx)], [("dout", dout)])
    if dout.shape[:2] != dx.shape[:2] or dout.shape[2] < 1 or dout.shape[3] < 1:
        raise ValueError(f"{fn}: dout must have shape ({dx.shape[0]}, {dx.shape[1]}, OH>=1, "
                         f"OW>=1) like dx, got {dout.shape}")
    cdef int N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef int OH = dout.shape[2], OW = dout.shape[3]
    cdef int nt = _nthreads()
    with nogil:
        ac_adaptive_avgpool2d_backward(pdx, pdo, N, C, H, W, OH, OW, nt)
