# CPU features, ISA choice and the thread count (decided here, passed to every kernel).
import os

cdef extern from "ac_cpu.h":
    int ac_isa_supported(int isa) nogil
    int ac_isa_best() nogil
    int ac_set_isa(int isa) nogil
    int ac_get_isa() nogil
    int ac_have_openmp() nogil

cdef extern from "ac_common.h":
    int omp_get_max_threads() nogil
    void omp_set_num_threads(int n) nogil

ISA_NAMES = ("generic", "avx2", "avx512")


def isa_supported(str name):
    return bool(ac_isa_supported(ISA_NAMES.index(name)))


def set_isa(str name):
    """Select the SIMD path for every dispatched kernel; refuse one this CPU lacks."""
    if name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {name!r}; expected one of {', '.join(ISA_NAMES)}")
    if ac_set_isa(ISA_NAMES.index(name)) != 0:
        raise RuntimeError(f"this CPU does not support the {name} path "
                           f"(supported: {', '.join(n for n in ISA_NAMES if isa_supported(n))})")


def get_isa():
    return ISA_NAMES[ac_get_isa()]


def have_openmp():
    return bool(ac_have_openmp())


cdef int _nthreads() noexcept nogil:
    # omp_get_max_threads() follows set_num_threads, OMP_NUM_THREADS and threadpoolctl.
    cdef int n = omp_get_max_threads()
    return n if n > 0 else 1


def get_num_threads():
    return _nthreads()


def set_num_threads(int n):
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    omp_set_num_threads(n)


cdef object _workspace(object work, size_t nfloats):
    """A float32 scratch buffer of at least nfloats, reusing `work` when it is big enough."""
    if work is not None and work.dtype == np.float32 and work.size >= nfloats \
            and work.flags.c_contiguous:
        return work
    return np.empty(max(<Py_ssize_t>nfloats, 1), dtype=np.float32)


_env_isa = os.environ.get("ALEXNET_CPU_ISA")
if _env_isa:
    set_isa(_env_isa)
