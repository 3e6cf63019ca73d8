# OpenMP and the thread count (decided here, passed to every kernel).

cdef extern from "ac_cpu.h":
    int ac_have_openmp() nogil

cdef extern from "ac_common.h":
    int omp_get_max_threads() nogil
    void omp_set_num_threads(int n) nogil


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
