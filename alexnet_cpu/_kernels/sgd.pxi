# sgd kernel bindings (csrc/sgd.c): the paper's momentum update over flat parameter arrays.

cdef extern from "ac_sgd.h":
    void ac_sgd_update(float *w, float *v, float *g, ptrdiff_t n, float lr,
                       float momentum, float weight_decay, int nthreads) nogil


def sgd_update(w, g, v, float lr, float momentum, float weight_decay):
    """v = momentum * v - weight_decay * lr * w - lr * g;  w = w + v;  g = 0  (all in place).

    w, g, v: C-contiguous float32 arrays of equal size (any shapes)."""
    cdef float *pw = <float *>_data(_array("sgd_update", "w", w, np.float32, None, out=True))
    cdef float *pg = <float *>_data(_array("sgd_update", "g", g, np.float32, None, out=True))
    cdef float *pv = <float *>_data(_array("sgd_update", "v", v, np.float32, None, out=True))
    if g.size != w.size or v.size != w.size:
        raise ValueError(f"sgd_update: w, g and v must have the same size, got "
                         f"{w.size}, {g.size} and {v.size}")
    _no_overlap("sgd_update", [("w", w), ("g", g), ("v", v)])
    cdef ptrdiff_t n = w.size
    cdef int nt = _nthreads()
    with nogil:
        ac_sgd_update(pw, pv, pg, n, lr, momentum, weight_decay, nt)
