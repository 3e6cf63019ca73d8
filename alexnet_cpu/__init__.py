"""alexnet-cpu: train and run AlexNet on CPUs with our own SIMD kernels."""
import os

# Idle OpenMP threads sleep instead of spinning: under any other load (our own image
# decoding threads included) spinning made parallel regions up to 8x slower, while on a
# quiet machine the two policies measured within noise. Set before the runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

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
