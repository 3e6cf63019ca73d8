"""Build the one C extension, alexnet_cpu._C, from csrc/**/*.c and alexnet_cpu/_C.pyx.

SIMD kernels select their instruction set per function (target attributes), so the
extension as a whole is compiled for baseline x86-64 and runs on any CPU.
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def openmp_flags():
    """Return the OpenMP compile/link flag if the compiler accepts it, else None."""
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "t.c")
        with open(c, "w") as f:
            f.write(src)
        r = subprocess.run([cc, "-fopenmp", c, "-o", os.path.join(d, "t")],
                           capture_output=True)
    return ["-fopenmp"] if r.returncode == 0 else None


# ALEXNET_CPU_OPENMP=0 builds without OpenMP even where the compiler has it (CI checks that
# build; a compiler without it gets the same).
omp = openmp_flags() if os.environ.get("ALEXNET_CPU_OPENMP", "1") != "0" else None
if omp is None:
    sys.stderr.write("\n*** alexnet-cpu: building without OpenMP; "
                     "every kernel will run on ONE thread. ***\n\n")
    omp = []

sources = ["alexnet_cpu/_C.pyx"] + sorted(glob.glob("csrc/**/*.c", recursive=True))
cflags = ["-O3", "-std=gnu11", "-fno-math-errno", "-Wall", "-Wno-unused-function",
          "-Wno-unknown-pragmas"] + omp

ext = Extension(
    "alexnet_cpu._C",
    sources=sources,
    include_dirs=["csrc/include", numpy.get_include()],
    extra_compile_args=cflags,
    extra_link_args=omp,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True)
                   + glob.glob("alexnet_cpu/_kernels/*.pxi")),
)

setup(ext_modules=cythonize([ext], language_level=3,
                            compiler_directives={"boundscheck": False,
                                                 "wraparound": False,
                                                 "cdivision": True,
                                                 "initializedcheck": False}))
