"""alexnet-cpu: train and run AlexNet on CPUs with our own SIMD kernels."""
import os

# Idle OpenMP threads spin briefly, then sleep (set before the runtime loads; the user's
# OMP_WAIT_POLICY or GOMP_SPINCOUNT win). Spinning without end (active) made parallel
# regions up to 8x slower under other load; sleeping at once (passive) cost 1.2 of a 4 ms
# batch-1 int8 forward in wake-ups; libgomp's spin of 10,000 rounds measured as passive
# with two processes sharing the cores and in folder inference, and batch 1 at 2.6 ms.
# LLVM's libomp (clang builds) gets KMP_BLOCKTIME 0, its passive.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"
    os.environ.setdefault("KMP_BLOCKTIME", "0")

from ._C import Context, default_context, get_precision, sgemm  # noqa: E402
from ._threads import cpu_info, get_num_threads, set_num_threads
from . import distributed  # noqa: F401  (mpi4py is imported only when MPI is used)
from .checkpoint import load, save
from .loss import softmax, softmax_cross_entropy
from .model import alexnet
from .onnx_io import export_onnx, import_onnx  # the onnx package only when called
from .optim import SGD
from .step import train_step
from .weights import WeightFileError

__version__ = "0.1.0"
__all__ = ["SGD", "Context", "WeightFileError", "alexnet", "cpu_info", "default_context",
           "export_onnx", "get_num_threads", "get_precision", "import_onnx", "load", "save",
           "set_num_threads", "sgemm", "softmax", "softmax_cross_entropy", "train_step"]
