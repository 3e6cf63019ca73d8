"""alexnet-cpu: train and run AlexNet on CPUs with our own SIMD kernels."""
from ._threads import cpu_info, get_num_threads, set_num_threads
from ._C import sgemm

__version__ = "0.1.0"
__all__ = ["cpu_info", "get_num_threads", "set_num_threads", "sgemm"]
