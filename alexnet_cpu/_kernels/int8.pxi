# int8 inference bindings (csrc/include/ac_int8.h): u8 x s8 GEMMs and convolutions with the
# requantization in their write-back, max-pooling on u8, floats quantized to u8 (the input
# batch, LRN's output). The int8 path of a context is its isa, AVX-512 meaning AVX512-VNNI:
# without VNNI an AVX-512 context runs the AVX2 row. The quantizations run the context's
# fp32 path as it is.

from libc.stdint cimport int8_t, uint8_t, int32_t

cdef extern from "ac_int8.h":
    ctypedef struct ac_i8_out:
        const int32_t *comp
        const float *mul
        const float *add
        int f32, relu
        void *C
        size_t ldc
    ctypedef struct ac_i8_conv:
        const uint8_t *x
        int H, W, C, c0, cg, ks, stride, pad, OH, OW
        uint8_t zero
    int ac_i8_isa_supported(int path) nogil
    int ac_i8_vnni_supported() nogil
    size_t ac_i8_packed_b_bytes(int N, int K, const ac_ctx *ctx) nogil
    void ac_i8_pack_b(int8_t *dst, const int8_t *B, int N, int K, size_t ldb,
                      const ac_ctx *ctx) nogil
    size_t ac_i8_work_bytes(int K, const ac_ctx *ctx, int nthreads) nogil
    void ac_i8_gemm(int M, int N, int K, const uint8_t *A, size_t lda, const int8_t *Bp,
                    const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads) nogil
    void ac_i8_conv2d(const ac_i8_conv *geom, int nimg, int groups, int N, const int8_t *Bp,
                      const ac_i8_out *out, void *work, const ac_ctx *ctx, int nthreads) nogil
    void ac_i8_maxpool(uint8_t *out, const uint8_t *x, int nimg, int H, int W, int C, int k,
                       int stride, int OH, int OW, int nthreads) nogil
    void ac_i8_quantize(uint8_t *out, const float *x, int N, int C, int H, int W, int pad,
                        int Cout, float mul, uint8_t zero, const ac_ctx *ctx,
                        int nthreads) nogil
    size_t ac_i8_lrn_work_floats(int C, int nthreads) nogil
    void ac_i8_lrn(uint8_t *out, const float *x, int N, int C, ptrdiff_t HW, int size,
                   float alpha, float beta, float k, float mul, float *work,
                   const ac_ctx *ctx, int nthreads) nogil


cdef extern from "ac_peak.h":
    double ac_vnni_peak_gops(double seconds, int nthreads) nogil


def vnni_supported():
    """True if this CPU has AVX512-VNNI (vpdpbusd) beside the AVX-512 path."""
    return bool(ac_i8_vnni_supported())


def amx_supported():
    """True if this CPU has AMX-INT8 tiles and the OS lets this process use them."""
    return bool(ac_i8_amx_supported())


def vnni_peak_gops(double seconds=0.2):
    """Measured vpdpbusd peak (GOP/s, 2 ops per u8 x s8 product) on all kernel threads."""
    if not vnni_supported():
        raise RuntimeError("this CPU lacks AVX512-VNNI: no vpdpbusd peak to measure")
    cdef int nt = _nthreads()
    cdef double r
    with nogil:
        r = ac_vnni_peak_gops(seconds, nt)
    return r


cdef ac_ctx _i8_ctx(str fn, object ctx) except *:
    """The context's int8 path: AVX-512 without VNNI falls back to the AVX2 row; only the
    AVX-512 path has an AMX row."""
    cdef ac_ctx c = _resolve(fn, ctx).c
    if c.isa == 2 and not ac_i8_vnni_supported():
        c.isa = 1
    c.amx = c.amx and c.isa == 2
    if not ac_i8_isa_supported(c.isa):
        raise RuntimeError(f"{fn}: this CPU cannot run the int8 {ISA_NAMES[c.isa]} path")
    return c


def int8_path(ctx=None):
    """The int8 row a context runs: "generic", "avx2", "avx512" (AVX512-VNNI) or "amx"."""
    cdef ac_ctx c = _i8_ctx("int8_path", ctx)
    return "amx" if c.amx else ISA_NAMES[c.isa]


def int8_pack(w, ctx=None):
    """Weights w (N, K) int8 packed for the context's int8 path (an int8 array to hand to
    int8_linear / int8_conv2d with the same path)."""
    fn = "int8_pack"
    cdef ac_ctx c = _i8_ctx(fn, ctx)
    cdef const int8_t *pw = <const int8_t *>_data(_array(fn, "w", w, np.int8, ndim=2))
    cdef int N = w.shape[0], K = w.shape[1]
    packed = np.empty(max(<Py_ssize_t>ac_i8_packed_b_bytes(N, K, &c), 1), np.int8)
    cdef int8_t *pp = <int8_t *>_data(_array(fn, "packed", packed, np.int8))
    with nogil:
        ac_i8_pack_b(pp, pw, N, K, K, &c)
    return packed


cdef int _i8_out(str fn, ac_i8_out *o, object out, int M, int N, object comp, object mul,
                 object add, bint relu) except -1:
    if not isinstance(out, np.ndarray) or out.dtype not in (np.uint8, np.float32):
        raise TypeError(f"{fn}: out must be a uint8 or float32 numpy.ndarray")
    o.C = <void *>_data(_array(fn, "out", out, out.dtype, out=True))
    if out.size != <Py_ssize_t>M * N:
        raise ValueError(f"{fn}: out has {out.size} elements, expected {M} x {N}")
    o.f32, o.relu, o.ldc = out.dtype == np.float32, relu, N
    o.mul = <const float *>_data(_array(fn, "mul", mul, np.float32, (N,)))
    o.add = <const float *>_data(_array(fn, "add", add, np.float32, (N,)))
    o.comp = NULL
    if comp is not None:
        o.comp = <const int32_t *>_data(_array(fn, "comp", comp, np.int32, (N,)))
    return 0


cdef int _i8_packed(str fn, object packed, int N, int K, int groups, ac_ctx *c) except -1:
    _array(fn, "packed", packed, np.int8, ndim=1)
    cdef size_t need = groups * ac_i8_packed_b_bytes(N // groups, K, c)
    if <size_t>packed.size < need:
        raise ValueError(f"{fn}: packed weights have {packed.size} bytes, the "
                         f"{ISA_NAMES[c.isa]} path needs {need} for {N} x {K}")
    return 0


def int8_linear(out, x, packed, int N, comp, mul, add, bint relu=False, ctx=None):
    """out (M, N) = requant(x . w^T) (ac_int8.h): x (M, K) uint8, packed = int8_pack(w);
    out uint8 (clamped to 0..255) or float32 (relu optional)."""
    fn = "int8_linear"
    cdef ac_ctx c = _i8_ctx(fn, ctx)
    cdef const uint8_t *px = <const uint8_t *>_data(_array(fn, "x", x, np.uint8, ndim=2))
    cdef int M = x.shape[0], K = x.shape[1]
    _i8_packed(fn, packed, N, K, 1, &c)
    cdef const int8_t *pp = <const int8_t *>_data(_array(fn, "packed", packed, np.int8))
    cdef ac_i8_out o
    _i8_out(fn, &o, out, M, N, comp, mul, add, relu)
    _no_overlap(fn, [("out", out)], [("x", x)])
    cdef int nt = _nthreads()
    work = np.empty(ac_i8_work_bytes(K, &c, nt), np.uint8)
    cdef void *pw = <void *>_data(_array(fn, "work", work, np.uint8))
    with nogil:
        ac_i8_gemm(M, N, K, px, K, pp, &o, pw, &c, nt)


def int8_conv2d(out, x, packed, int N, int ks, int stride, int pad, int groups, comp, mul,
                add, bint relu=False, int zero=0, ctx=None):
    """out (n, OH, OW, N) = requant(conv(x, w)) over NHWC uint8 images x (n, H, W, C):
    w (N, ks, ks, C / groups) int8 packed group by group (int8_pack of each group's
    (N / groups, ks*ks*C/groups) rows, concatenated); padding reads `zero`."""
    fn = "int8_conv2d"
    cdef ac_ctx c = _i8_ctx(fn, ctx)
    cdef ac_i8_conv g
    g.x = <const uint8_t *>_data(_array(fn, "x", x, np.uint8, ndim=4))
    if ks < 1 or stride < 1 or pad < 0 or groups < 1 or not 0 <= zero <= 255:
        raise ValueError(f"{fn}: bad geometry ks={ks} stride={stride} pad={pad} "
                         f"groups={groups} zero={zero}")
    cdef int n = x.shape[0]
    g.H, g.W, g.C = x.shape[1], x.shape[2], x.shape[3]
    if g.C % groups or N % groups:
        raise ValueError(f"{fn}: {g.C} input and {N} output channels in {groups} groups")
    g.c0, g.cg, g.ks, g.stride, g.pad, g.zero = 0, g.C // groups, ks, stride, pad, zero
    g.OH, g.OW = (g.H + 2 * pad - ks) // stride + 1, (g.W + 2 * pad - ks) // stride + 1
    if g.OH < 1 or g.OW < 1:
        raise ValueError(f"{fn}: kernel {ks} larger than the padded input {g.H}x{g.W}")
    cdef int K = ks * ks * g.cg
    _i8_packed(fn, packed, N, K, groups, &c)
    cdef const int8_t *pp = <const int8_t *>_data(_array(fn, "packed", packed, np.int8))
    if out is None or out.shape != (n, g.OH, g.OW, N):
        raise ValueError(f"{fn}: out must have shape {(n, g.OH, g.OW, N)}")
    cdef ac_i8_out o
    _i8_out(fn, &o, out, n * g.OH * g.OW, N, comp, mul, add, relu)
    _no_overlap(fn, [("out", out)], [("x", x)])
    cdef int nt = _nthreads()
    work = np.empty(ac_i8_work_bytes(K, &c, nt), np.uint8)
    cdef void *pw = <void *>_data(_array(fn, "work", work, np.uint8))
    with nogil:
        ac_i8_conv2d(&g, n, groups, N, pp, &o, pw, &c, nt)


def int8_maxpool(out, x, int k, int stride):
    """Max over k x k windows at `stride` of NHWC uint8 images x (n, H, W, C) into out
    (n, OH, OW, C); windows past the edge (ceil mode) are clipped."""
    fn = "int8_maxpool"
    cdef const uint8_t *px = <const uint8_t *>_data(_array(fn, "x", x, np.uint8, ndim=4))
    cdef uint8_t *po = <uint8_t *>_data(_array(fn, "out", out, np.uint8, ndim=4, out=True))
    cdef int n = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int OH = out.shape[1], OW = out.shape[2]
    if k < 1 or stride < 1 or out.shape[0] != n or out.shape[3] != C or OH < 1 or OW < 1 \
            or (OH - 1) * stride >= H or (OW - 1) * stride >= W:
        raise ValueError(f"{fn}: out {out.shape} does not fit x {x.shape} with k={k}, "
                         f"stride={stride}")
    _no_overlap(fn, [("out", out)], [("x", x)])
    cdef int nt = _nthreads()
    with nogil:
        ac_i8_maxpool(po, px, n, H, W, C, k, stride, OH, OW, nt)


def int8_quantize(out, x, float mul, int zero=0, int pad=0, ctx=None):
    """out (n, H + 2 pad, W + 2 pad, Cout) uint8 = clip(rint(x * mul) + zero, 0, 255) of
    float32 NCHW x (n, C, H, W), rounded half to even before the zero point is added, NaN to
    0: NumPy's expression with mul = float32(1 / scale), bit for bit. The border of `pad`
    pixels and the channels past C (Cout >= C) hold `zero`. ctx: its fp32 path."""
    fn = "int8_quantize"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *px = <const float *>_data(_array(fn, "x", x, np.float32, ndim=4))
    cdef int n = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    if pad < 0:
        raise ValueError(f"{fn}: pad must be >= 0, got {pad}")
    shape = getattr(out, "shape", ())
    if len(shape) != 4 or shape[:3] != (n, H + 2 * pad, W + 2 * pad) or shape[3] < C:
        raise ValueError(f"{fn}: out must have shape ({n}, {H + 2 * pad}, {W + 2 * pad}, "
                         f"C >= {C}), got {shape}")
    cdef int Cout = shape[3]
    cdef uint8_t *po = <uint8_t *>_data(_array(fn, "out", out, np.uint8, shape, out=True))
    if not 0 <= zero <= 255:
        raise ValueError(f"{fn}: zero point must be in 0..255, got {zero}")
    _no_overlap(fn, [("out", out)], [("x", x)])
    cdef int nt = _nthreads()
    with nogil:
        ac_i8_quantize(po, px, n, C, H, W, pad, Cout, mul, <uint8_t>zero, &cx.c, nt)


def int8_lrn(out, x, int size, float alpha, float beta, float k, float mul, work=None,
             ctx=None):
    """out (n, H, W, C) uint8 = clip(rint(LRN(x) * mul), 0, 255) of float32 NHWC x
    (n, H, W, C) (lrn_forward's formula and, on the same path, its bits, across the C
    channels of each pixel). ctx: its fp32 path. Returns the scratch array; pass it back as
    `work` to reuse it."""
    fn = "int8_lrn"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *px = <const float *>_data(_array(fn, "x", x, np.float32, ndim=4))
    cdef uint8_t *po = <uint8_t *>_data(_array(fn, "out", out, np.uint8, x.shape, out=True))
    if size < 1:
        raise ValueError(f"{fn}: size must be >= 1, got {size}")
    _no_overlap(fn, [("out", out)], [("x", x)])
    cdef int n = x.shape[0], C = x.shape[3], nt = _nthreads()
    cdef ptrdiff_t HW = x.shape[1] * x.shape[2]
    work = _workspace(work, ac_i8_lrn_work_floats(C, nt))
    _no_overlap(fn, [("work", work)], [("out", out), ("x", x)])
    cdef float *pw = <float *>_data(work)
    with nogil:
        ac_i8_lrn(po, px, n, C, HW, size, alpha, beta, k, mul, pw, &cx.c, nt)
    return work
