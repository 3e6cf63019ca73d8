# The one extension module: each kernel group's bindings live in _kernels/<group>.pxi.
# Bindings are thin: check the arrays (_kernels/check.pxi), then call C without the GIL.
cimport numpy as cnp
import numpy as np
cnp.import_array()

include "_kernels/check.pxi"
include "_kernels/cpu.pxi"
include "_kernels/ctx.pxi"
include "_kernels/gemm.pxi"
include "_kernels/bf16.pxi"
include "_kernels/conv.pxi"
include "_kernels/pool.pxi"
include "_kernels/lrn.pxi"
include "_kernels/eltwise.pxi"
include "_kernels/loss.pxi"
include "_kernels/sgd.pxi"
include "_kernels/int8.pxi"
include "_kernels/image.pxi"

_env_defaults()
