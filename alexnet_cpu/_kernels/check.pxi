# The one array checker of the bindings: every argument array is checked here, where it
# enters, with a one-line message naming the function, the argument, what was expected and
# what came.


def _array(str fn, str name, object a, object dtype=np.float32, object shape=None,
           int ndim=-1, bint out=False):
    """`a` after checking that it is a numpy.ndarray of `dtype`, with `ndim` dimensions
    (-1: any) and `shape` (None: any), C-contiguous, and writeable when it is an output
    (out); raises TypeError (type, dtype) or ValueError otherwise. Its data pointer comes
    from _data: `<float *>_data(_array(...))`. (A def: cdef functions take no keywords.)"""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{fn}: {name} must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    if ndim >= 0 and a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous")
    if out and not a.flags.writeable:
        raise ValueError(f"{fn}: {name} is an output and must be writeable")
    return a


cdef inline void *_data(cnp.ndarray a):
    """The data of an array _array has checked (typed: only an ndarray gets here). A
    zero-size array may have a NULL data pointer; kernels do not touch it then."""
    return cnp.PyArray_DATA(a)


cdef int _no_overlap(str fn, object outs, object ins=()) except -1:
    """Raise if an output overlaps another output or an input: outs and ins are lists of
    (name, array or None); None is skipped; inputs may share memory with each other."""
    outs = [(n, a) for n, a in outs if a is not None]
    others = outs + [(n, a) for n, a in ins if a is not None]
    cdef Py_ssize_t i, j
    for i in range(len(outs)):
        for j in range(i + 1, len(others)):
            if np.may_share_memory(outs[i][1], others[j][1]):
                raise ValueError(f"{fn}: {outs[i][0]} and {others[j][0]} must not overlap")
    return 0


cdef int _same_or_distinct(str fn, str na, object a, str nb, object b) except -1:
    """Raise if a and b overlap without being the very same buffer (in place is fine)."""
    if np.may_share_memory(a, b) and not (
            cnp.PyArray_DATA(<cnp.ndarray>a) == cnp.PyArray_DATA(<cnp.ndarray>b)
            and a.size == b.size):
        raise ValueError(f"{fn}: {na} and {nb} overlap partially (only exact in-place is allowed)")
    return 0
