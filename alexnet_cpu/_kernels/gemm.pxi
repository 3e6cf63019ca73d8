# sgemm bindings (public: alexnet_cpu.sgemm)

cdef extern from "ac_gemm.h":
    size_t ac_sgemm_work_floats(int nthreads) nogil
    void ac_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc, float *work, int nthreads) nogil


def sgemm(a, b, out=None, bint trans_a=False, bint trans_b=False,
          float alpha=1.0, float beta=0.0):
    """C = alpha * op(a) @ op(b) + beta * out, float32 2-D C-contiguous arrays."""
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, np.ndarray) or m.dtype != np.float32 or m.ndim != 2 \
                or not m.flags.c_contiguous:
            raise TypeError(f"sgemm: {name} must be a 2-D C-contiguous float32 array")
    cdef int M = a.shape[1] if trans_a else a.shape[0]
    cdef int K = a.shape[0] if trans_a else a.shape[1]
    cdef int Kb = b.shape[1] if trans_b else b.shape[0]
    cdef int N = b.shape[0] if trans_b else b.shape[1]
    if K != Kb:
        raise ValueError(f"sgemm: inner dimensions differ: op(a) is {M}x{K}, op(b) is {Kb}x{N}")
    if out is None:
        out = np.zeros((M, N), dtype=np.float32)
        beta = 0.0
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 \
            or not out.flags.c_contiguous or out.shape != (M, N):
        raise ValueError(f"sgemm: out must be a C-contiguous float32 array of shape {(M, N)}")
    cdef int nt = _nthreads()
    work = _workspace(None, ac_sgemm_work_floats(nt))
    cdef float[:, ::1] A = a
    cdef float[:, ::1] B = b
    cdef float[:, ::1] C = out
    cdef float[::1] W = work
    with nogil:
        ac_sgemm(trans_a, trans_b, M, N, K, alpha, &A[0, 0] if A.shape[0] * A.shape[1] else NULL,
                 A.shape[1], &B[0, 0] if B.shape[0] * B.shape[1] else NULL, B.shape[1],
                 beta, &C[0, 0] if M * N else NULL, N, &W[0], nt)
    return out
