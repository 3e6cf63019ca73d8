# bf16 rounding and the vdpbf16ps peak (the precision is a field of the context: ctx.pxi).
from libc.stdint cimport uint16_t

cdef extern from "ac_bf16.h":
    void ac_bf16_round_floats(float *dst, const float *src, size_t n) nogil
    double ac_bf16_peak_gflops(double seconds, int nthreads) nogil


def bf16_round(x):
    """float32 array -> float32 array of its values rounded to bf16 (nearest even; NaN stays
    NaN; denormals to signed zero): the operands a bf16 GEMM multiplies."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(a)
    cdef float[::1] s = a.reshape(-1)
    cdef float[::1] d = out.reshape(-1)
    cdef size_t n = a.size
    if n:
        with nogil:
            ac_bf16_round_floats(&d[0], &s[0], n)
    return out


def bf16_peak_gflops(double seconds=0.2):
    """Measured vdpbf16ps peak (GFLOP/s, 2 flops per bf16 product) on all kernel threads."""
    if not bf16_supported():
        raise RuntimeError("this CPU lacks AVX512_BF16: no vdpbf16ps peak to measure")
    cdef int nt = _nthreads()
    cdef double r
    with nogil:
        r = ac_bf16_peak_gflops(seconds, nt)
    return r
