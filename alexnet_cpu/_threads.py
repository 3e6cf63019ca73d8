"""Threads and ISA: what the kernels will use, in one place.

The thread count is OpenMP's (omp_get_max_threads), so ``set_num_threads``,
``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits`` all govern it.
"""
import os
import platform

import warnings

from . import _C

if not _C.have_openmp():
    warnings.warn("alexnet-cpu was built without OpenMP: every kernel runs on ONE thread "
                  "(rebuild with a compiler that supports -fopenmp)", RuntimeWarning)


def get_num_threads():
    """Threads every kernel call will use now."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Use n threads in every kernel from now on."""
    _C.set_num_threads(int(n))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_info():
    """The machine and what the engine uses on it."""
    return {
        "cpu": _cpu_model(),
        # macOS says arm64, Windows AMD64: one name per architecture
        "arch": {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(),
                                                            platform.machine()),
        "cores": os.cpu_count(),
        "isa": _C.get_isa(),
        "isa_supported": [n for n in _C.ISA_NAMES if _C.isa_supported(n)],
        "threads": get_num_threads(),
        "openmp": _C.have_openmp(),
        "bf16": _C.bf16_supported(),        # AVX512_BF16 available (vdpbf16ps)
        "precision": _C.get_precision(),    # what the GEMMs multiply in by default
        "vnni": _C.vnni_supported(),        # AVX512-VNNI available (vpdpbusd, int8)
        "amx": _C.amx_supported(),          # AMX-INT8 tiles usable (int8 GEMMs)
    }
