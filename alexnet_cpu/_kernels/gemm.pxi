# sgemm bindings (public: alexnet_cpu.sgemm) and the FMA peak meter.
import threading

cdef extern from "ac_gemm.h":
    size_t ac_sgemm_work_floats(int nthreads) nogil
    void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc, float *work, const ac_ctx *ctx, int nthreads) nogil

    size_t ac_sgemm_packed_b_floats(int N, int K) nogil
    void ac_sgemm_pack_b(float *packed, int trans_b, int N, int K, const float *B, int ldb,
                         const ac_ctx *ctx, int nthreads) nogil
    int ac_sgemm_packed_b(int trans_a, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *packed, float beta, float *C, int ldc,
                          float *work, const ac_ctx *ctx, int nthreads) nogil
    ctypedef struct ac_gemm_kernel:
        int isa, precision, mr, nr, kc, mc, nc, mb
    const ac_gemm_kernel *ac_gemm_kernel_for(const ac_ctx *ctx) nogil

cdef extern from "ac_peak.h":
    double ac_fma_peak_gflops(int path, double seconds, int nthreads) nogil

# One sgemm scratch buffer per Python thread, grown on demand, so calls don't allocate.
_gemm_tls = threading.local()
# Packed blocks sit best in 2 MiB pages: over-allocate (NumPy asks the OS for huge pages for
# buffers of 4 MiB and more) and hand C a 2 MiB-aligned start.
cdef enum:
    _HUGE = 2 * 1024 * 1024


cdef object _gemm_work(size_t nfloats):
    nfloats += _HUGE // 4
    if nfloats < _HUGE // 2:
        nfloats = _HUGE // 2
    work = _workspace(getattr(_gemm_tls, "work", None), nfloats)
    _gemm_tls.work = work
    return work


cdef float *_huge_aligned(object work) noexcept:
    cdef size_t p = <size_t>cnp.PyArray_DATA(work)
    return <float *>((p + _HUGE - 1) // _HUGE * _HUGE)


def sgemm(a, b, out=None, bint trans_a=False, bint trans_b=False,
          float alpha=1.0, float beta=0.0, precision=None, ctx=None):
    """out = alpha * op(a) @ op(b) + beta * out on float32 2-D C-contiguous arrays.

    op(x) is x or x.T (trans_a / trans_b). out=None allocates (beta is then ignored);
    with beta == 0 out is write-only; out must not overlap a or b. Returns out.
    precision: "fp32" or "bf16" (operands rounded to bf16, fp32 sums) for this call;
    None: the context's. ctx: a Context (None: default_context()).
    """
    cdef Context cx = _resolve("sgemm", ctx)
    if precision is not None and precision != cx.precision:
        cx = cx.replace(precision=precision)
    cdef const float *A = <const float *>_data(_array("sgemm", "a", a, ndim=2))
    cdef const float *B = <const float *>_data(_array("sgemm", "b", b, ndim=2))
    cdef int M = a.shape[1] if trans_a else a.shape[0]
    cdef int K = a.shape[0] if trans_a else a.shape[1]
    cdef int Kb = b.shape[1] if trans_b else b.shape[0]
    cdef int N = b.shape[0] if trans_b else b.shape[1]
    if K != Kb:
        raise ValueError(f"sgemm: inner dimensions differ: op(a) is {M}x{K}, op(b) is {Kb}x{N}")
    if out is None:
        out = np.empty((M, N), dtype=np.float32)
        beta = 0.0
    cdef float *C = <float *>_data(_array("sgemm", "out", out, shape=(M, N), out=True))
    _no_overlap("sgemm", [("out", out)], [("a", a), ("b", b)])
    if M == 0 or N == 0:
        return out
    cdef int nt = _nthreads()
    work = _gemm_work(ac_sgemm_work_floats(nt))
    cdef float *W = _huge_aligned(work)
    cdef int lda = a.shape[1], ldb = b.shape[1]
    with nogil:
        ac_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, N, W, &cx.c, nt)
    return out


def sgemm_pack_b(b, bint trans_b=False, packed=None, ctx=None):
    """op(b) (K x N) packed once for sgemm_packed_b on the context's ISA path and
    precision, into a 1-D float32 array (`packed` reused when big enough). Returns it."""
    cdef Context cx = _resolve("sgemm_pack_b", ctx)
    cdef const float *B = <const float *>_data(_array("sgemm_pack_b", "b", b, ndim=2))
    cdef int K = b.shape[1] if trans_b else b.shape[0]
    cdef int N = b.shape[0] if trans_b else b.shape[1]
    packed = _workspace(packed, ac_sgemm_packed_b_floats(N, K))
    cdef float *P = <float *>cnp.PyArray_DATA(packed)
    cdef int ldb = b.shape[1], nt = _nthreads()
    with nogil:
        ac_sgemm_pack_b(P, trans_b, N, K, B, ldb, &cx.c, nt)
    return packed


def sgemm_packed_b(a, packed, int N, out, bint trans_a=False, float alpha=1.0,
                   float beta=0.0, ctx=None):
    """out = alpha * op(a) @ op(b) + beta * out with packed = sgemm_pack_b(b, ...) and N its
    columns; what sgemm's blocked driver gives. ValueError when packed was made for another
    ISA path, precision or shape than the context's. Returns out."""
    fn = "sgemm_packed_b"
    cdef Context cx = _resolve(fn, ctx)
    cdef const float *A = <const float *>_data(_array(fn, "a", a, ndim=2))
    cdef int M = a.shape[1] if trans_a else a.shape[0]
    cdef int K = a.shape[0] if trans_a else a.shape[1]
    cdef float *C = <float *>_data(_array(fn, "out", out, shape=(M, N), out=True))
    cdef const float *P = <const float *>_data(_array(fn, "packed", packed, ndim=1))
    if <size_t>packed.size < ac_sgemm_packed_b_floats(N, K):
        raise ValueError(f"{fn}: packed is too small: it must come from sgemm_pack_b")
    _no_overlap(fn, [("out", out)], [("a", a), ("packed", packed)])
    if M == 0 or N == 0:
        return out
    cdef int nt = _nthreads()
    work = _gemm_work(ac_sgemm_work_floats(nt))
    cdef float *W = _huge_aligned(work)
    cdef int lda = a.shape[1], rc
    with nogil:
        rc = ac_sgemm_packed_b(trans_a, M, N, K, alpha, A, lda, P, beta, C, N, W, &cx.c, nt)
    if rc != 0:
        raise ValueError(f"{fn}: packed was made for another ISA path, precision or shape "
                         f"than {K}x{N} on {cx.isa} {cx.precision}; pack again")
    return out


def gemm_blocking(isa=None, precision="fp32"):
    """The blocking of the GEMM kernel of an ISA path (default get_isa()) and precision, as
    the registry has it (csrc/gemm/registry.c, blocking.h): a dict of isa, precision, mr x nr
    (the micro-tile), kc (largest depth block), mc, nc, mb (cache blocks). The driver evens
    blocks out: K is cut into ceil(K/kc) blocks of equal size (the last shorter)."""
    cdef ac_ctx c
    c.isa = _index("ISA", ISA_NAMES, get_isa() if isa is None else isa)
    c.precision = _index("precision", PRECISIONS, precision)
    c.winograd = 0
    cdef const ac_gemm_kernel *k = ac_gemm_kernel_for(&c)
    return {"isa": ISA_NAMES[k.isa], "precision": PRECISIONS[k.precision], "mr": k.mr,
            "nr": k.nr, "kc": k.kc, "mc": k.mc, "nc": k.nc, "mb": k.mb}


def fma_peak_gflops(double seconds=0.2, isa=None):
    """Measured single-precision FMA peak (GFLOP/s) of this machine on all kernel threads,
    with our own register-only FMA loop on the best ISA path (or `isa`)."""
    cdef int i = ac_isa_best() if isa is None else ISA_NAMES.index(isa)
    if not ac_isa_supported(i):
        raise RuntimeError(f"this CPU does not support the {isa} path")
    cdef int nt = _nthreads()
    cdef double r
    with nogil:
        r = ac_fma_peak_gflops(i, seconds, nt)
    return r
