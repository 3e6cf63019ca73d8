# GEMM precision (fp32 | bf16), AVX512_BF16 detection, bf16 rounding and the vdpbf16ps peak.
from libc.stdint cimport uint16_t

cdef extern from "ac_bf16.h":
    int ac_bf16_supported() nogil
    void ac_bf16_hide(int hide) nogil
    int ac_set_precision(int precision) nogil
    int ac_get_precision() nogil
    void ac_bf16_round_floats(float *dst, const float *src, size_t n) nogil
    double ac_bf16_peak_gflops(double seconds, int nthreads) nogil

PRECISIONS = ("fp32", "bf16")


def bf16_supported():
    """True if this CPU has AVX512_BF16 (vdpbf16ps) beside the AVX-512 path."""
    return bool(ac_bf16_supported())


def _precision_index(str name):
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
    return PRECISIONS.index(name)


def set_precision(str name):
    """Select what every GEMM (sgemm, convolutions, Winograd, linear layers) multiplies in:
    fp32, or bf16 operands with fp32 sums. Process-wide, like set_isa."""
    if ac_set_precision(_precision_index(name)) != 0:
        raise RuntimeError(
            f"bf16 precision needs AVX512_BF16, which this CPU lacks"
            f"{' (hidden by ALEXNET_CPU_BF16=0)' if os.environ.get('ALEXNET_CPU_BF16') == '0' else ''}"
            f"; the {get_isa()} path has no bf16 kernel (the portable reference runs with "
            f"ALEXNET_CPU_ISA=generic)")


def get_precision():
    return PRECISIONS[ac_get_precision()]


def check_precision(str name):
    """Raise as set_precision would, without changing the current precision."""
    old = get_precision()
    set_precision(name)
    set_precision(old)


class precision_scope:
    """with precision_scope("bf16"): ...  (None: leave the current one)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.old = get_precision()
        if self.name is not None:
            set_precision(self.name)

    def __exit__(self, *exc):
        ac_set_precision(PRECISIONS.index(self.old))


def _hide_bf16(bint hide):
    """Play a CPU without AVX512_BF16 (tests); falls back to fp32 if bf16 was in use."""
    ac_bf16_hide(hide)
    if hide and ac_get_precision() == 1 and ac_set_precision(1) != 0:
        ac_set_precision(0)


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
    if not ac_bf16_supported():
        raise RuntimeError("this CPU lacks AVX512_BF16: no vdpbf16ps peak to measure")
    cdef int nt = _nthreads()
    cdef double r
    with nogil:
        r = ac_bf16_peak_gflops(seconds, nt)
    return r


if os.environ.get("ALEXNET_CPU_BF16") == "0":
    _hide_bf16(True)
_env_precision = os.environ.get("ALEXNET_CPU_PRECISION")
if _env_precision:
    set_precision(_env_precision)
