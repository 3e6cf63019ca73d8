# Convolution bindings: conv2d_forward / conv2d_backward over NCHW activations, OIHW weights;
# conv2d_pack_weights / conv2d_forward_packed for inference on weights packed once.

cdef extern from "ac_conv.h":
    size_t ac_conv2d_forward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                         int stride, int pad, int groups, const ac_ctx *ctx, int nthreads) nogil
    void ac_conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                           int N, int C, int H, int W, int O, int KH, int KW,
                           int stride, int pad, int groups, float *work, const ac_ctx *ctx, int nthreads) nogil
    size_t ac_conv2d_packed_weights_floats(int C, int O, int KH, int KW, int groups) nogil
    void ac_conv2d_pack_weights(float *packed, const float *weight, const float *bias,
                                int C, int O, int KH, int KW, int groups, const ac_ctx *ctx, int nthreads) nogil
    size_t ac_conv2d_forward_packed_work_floats(int N, int C, int H, int W, int O, int KH,
                                                int KW, int stride, int pad, int groups,
                                                const ac_ctx *ctx, int nthreads) nogil
    int ac_conv2d_forward_packed(float *out, const float *x, const float *packed,
                                 int N, int C, int H, int W, int O, int KH, int KW,
                                 int stride, int pad, int groups, int relu, float *work,
                                 const ac_ctx *ctx, int nthreads) nogil
    size_t ac_conv2d_backward_work_floats(int N, int C, int H, int W, int O, int KH, int KW,
                                          int stride, int pad, int groups, const ac_ctx *ctx, int nthreads) nogil
    void ac_conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                            const float *x, const float *weight,
                            int N, int C, int H, int W, int O, int KH, int KW,
                            int stride, int pad, int groups, float *work, const ac_ctx *ctx, int nthreads) nogil

cdef tuple _conv_shapes(str fn, object x, tuple wshape, int stride, int pad, int groups):
    """Check x (4-D), the weight shape wshape (O, C/groups, KH, KW) and the hyper-parameters;
    return (N, C, H, W, O, KH, KW, OH, OW)."""
    _array(fn, "x", x, ndim=4)
    if len(wshape) != 4:
        raise ValueError(f"{fn}: the weight shape must be (O, C/groups, KH, KW), got {wshape}")
    if stride < 1:
        raise ValueError(f"{fn}: stride must be >= 1, got {stride}")
    if pad < 0:
        raise ValueError(f"{fn}: pad must be >= 0, got {pad}")
    if groups < 1:
        raise ValueError(f"{fn}: groups must be >= 1, got {groups}")
    N, C, H, W = x.shape
    O, Cg, KH, KW = wshape
    if C % groups or O % groups:
        raise ValueError(f"{fn}: groups={groups} must divide in channels ({C}) and "
                         f"out channels ({O})")
    if Cg != C // groups:
        raise ValueError(f"{fn}: weight must have shape (O, C/groups, KH, KW) = "
                         f"({O}, {C // groups}, {KH}, {KW}), got {wshape}")
    if KH < 1 or KW < 1 or H + 2 * pad < KH or W + 2 * pad < KW:
        raise ValueError(f"{fn}: kernel {KH}x{KW} does not fit the padded input "
                         f"{H + 2 * pad}x{W + 2 * pad}")
    return (N, C, H, W, O, KH, KW, (H + 2 * pad - KH) // stride + 1,
            (W + 2 * pad - KW) // stride + 1)


def conv2d_forward(out, x, weight, bias, int stride, int pad, int groups, work=None,
                   ctx=None):
    """out = conv2d(x, weight) + bias. x (N,C,H,W), weight (O,C/groups,KH,KW), bias (O,) or
    None, out (N,O,OH,OW) with OH = (H+2*pad-KH)//stride+1; all float32 C-contiguous, out
    overlapping none of the others; ctx: a Context (None: default_context()). Returns the
    scratch array; pass it back as `work` to reuse it."""
    fn = "conv2d_forward"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *pw = <const float *>_data(_array(fn, "weight", weight, ndim=4))
    cdef int N, C, H, W, O, KH, KW, OH, OW
    N, C, H, W, O, KH, KW, OH, OW = _conv_shapes(fn, x, weight.shape, stride, pad, groups)
    cdef const float *px = <const float *>_data(_array(fn, "x", x))
    cdef float *po = <float *>_data(_array(fn, "out", out, shape=(N, O, OH, OW), out=True))
    cdef const float *pb = NULL
    if bias is not None:
        pb = <const float *>_data(_array(fn, "bias", bias, shape=(O,)))
    _no_overlap(fn, [("out", out)], [("x", x), ("weight", weight), ("bias", bias)])
    cdef int nt = _nthreads()
    work = _workspace(work, ac_conv2d_forward_work_floats(N, C, H, W, O, KH, KW,
                                                          stride, pad, groups, &cx.c, nt))
    cdef float *pwork = <float *>cnp.PyArray_DATA(work)
    with nogil:
        ac_conv2d_forward(po, px, pw, pb, N, C, H, W, O, KH, KW, stride, pad, groups,
                          pwork, &cx.c, nt)
    return work


def conv2d_pack_weights(weight, bias, int groups, packed=None, ctx=None):
    """The weights (O,C/groups,KH,KW) and bias (O,) or None packed for conv2d_forward_packed
    for the context's ISA path and precision, into a 1-D float32 array (`packed` reused when
    it is big enough). Returns it."""
    fn = "conv2d_pack_weights"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *pw = <const float *>_data(_array(fn, "weight", weight, ndim=4))
    if groups < 1:
        raise ValueError(f"{fn}: groups must be >= 1, got {groups}")
    cdef int O = weight.shape[0], Cg = weight.shape[1], KH = weight.shape[2]
    cdef int KW = weight.shape[3]
    if O % groups:
        raise ValueError(f"{fn}: groups={groups} must divide out channels ({O})")
    cdef const float *pb = NULL
    if bias is not None:
        pb = <const float *>_data(_array(fn, "bias", bias, shape=(O,)))
    packed = _workspace(packed, ac_conv2d_packed_weights_floats(Cg * groups, O, KH, KW, groups))
    cdef float *pp = <float *>_data(_array(fn, "packed", packed, out=True))
    _no_overlap(fn, [("packed", packed)], [("weight", weight), ("bias", bias)])
    cdef int nt = _nthreads()
    with nogil:
        ac_conv2d_pack_weights(pp, pw, pb, Cg * groups, O, KH, KW, groups, &cx.c, nt)
    return packed


def conv2d_forward_packed(out, x, packed, tuple wshape, int stride, int pad, int groups,
                          work=None, bint relu=False, ctx=None):
    """out = conv2d(x, weight) + bias with packed = conv2d_pack_weights(weight, bias, groups)
    and wshape = weight.shape, then out = relu(out) when relu; bitwise what conv2d_forward
    (and relu_forward) give, except that 3x3 stride-1 pad-1 layers take Winograd at any
    batch (conv2d_forward from 2 images on). ValueError when packed was made for another ISA
    path, precision or weight shape than the context's. Returns the scratch array (pass it
    back)."""
    fn = "conv2d_forward_packed"
    cdef Context cx = _resolve(fn, ctx)
    cdef int N, C, H, W, O, KH, KW, OH, OW
    N, C, H, W, O, KH, KW, OH, OW = _conv_shapes(fn, x, wshape, stride, pad, groups)
    cdef const float *px = <const float *>_data(_array(fn, "x", x))
    cdef float *po = <float *>_data(_array(fn, "out", out, shape=(N, O, OH, OW), out=True))
    cdef const float *pp = <const float *>_data(_array(fn, "packed", packed, ndim=1))
    cdef size_t need = ac_conv2d_packed_weights_floats(C, O, KH, KW, groups)
    if <size_t>packed.size < need:
        raise ValueError(f"{fn}: packed is too small ({packed.size} floats, {need} needed): "
                         f"it must come from conv2d_pack_weights")
    _no_overlap(fn, [("out", out)], [("x", x), ("packed", packed)])
    cdef int nt = _nthreads()
    work = _workspace(work, ac_conv2d_forward_packed_work_floats(N, C, H, W, O, KH, KW,
                                                                 stride, pad, groups, &cx.c, nt))
    cdef float *pwork = <float *>cnp.PyArray_DATA(work)
    cdef int rc
    with nogil:
        rc = ac_conv2d_forward_packed(po, px, pp, N, C, H, W, O, KH, KW, stride, pad, groups,
                                      relu, pwork, &cx.c, nt)
    if rc != 0:
        raise ValueError(f"{fn}: packed was made for another ISA path, precision or weight "
                         f"shape than {wshape} on {cx.isa} {cx.precision}; pack the weights "
                         f"again")
    return work


def conv2d_backward(dx, dweight, dbias, dout, x, weight, int stride, int pad, int groups,
                    work=None, ctx=None):
    """Given dout = dL/dout: dweight += dL/dweight, dbias += dL/dbias (None skips it),
    dx = dL/dx (overwritten; None skips it). Shapes as in conv2d_forward; the outputs
    overlap nothing. Returns the scratch array; pass it back as `work` to reuse it."""
    fn = "conv2d_backward"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *pw = <const float *>_data(_array(fn, "weight", weight, ndim=4))
    cdef int N, C, H, W, O, KH, KW, OH, OW
    N, C, H, W, O, KH, KW, OH, OW = _conv_shapes(fn, x, weight.shape, stride, pad, groups)
    cdef const float *px = <const float *>_data(_array(fn, "x", x))
    cdef const float *pdo = <const float *>_data(_array(fn, "dout", dout, shape=(N, O, OH, OW)))
    cdef float *pdw = <float *>_data(_array(fn, "dweight", dweight, shape=(O, C // groups, KH, KW),
                                      out=True))
    cdef float *pdb = NULL
    if dbias is not None:
        pdb = <float *>_data(_array(fn, "dbias", dbias, shape=(O,), out=True))
    cdef float *pdx = NULL
    if dx is not None:
        pdx = <float *>_data(_array(fn, "dx", dx, shape=(N, C, H, W), out=True))
    _no_overlap(fn, [("dx", dx), ("dweight", dweight), ("dbias", dbias)],
                [("dout", dout), ("x", x), ("weight", weight)])
    cdef int nt = _nthreads()
    work = _workspace(work, ac_conv2d_backward_work_floats(N, C, H, W, O, KH, KW,
                                                           stride, pad, groups, &cx.c, nt))
    cdef float *pwork = <float *>cnp.PyArray_DATA(work)
    with nogil:
        ac_conv2d_backward(pdx, pdw, pdb, pdo, px, pw, N, C, H, W, O, KH, KW,
                           stride, pad, groups, pwork, &cx.c, nt)
    return work
