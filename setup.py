"""Build the one C extension, alexnet_cpu._C, from csrc/**/*.c and alexnet_cpu/_C.pyx.

Sources are chosen by architecture inside the C files (csrc/include/ac_simd.h): on x86-64
the SIMD kernels select their instruction set per function (target attributes), so the
extension as a whole is compiled for baseline x86-64 and runs on any x86-64 CPU; on aarch64
NEON is baseline and the NEON kernels compile in. The same flags serve gcc and clang.
OpenMP: -fopenmp where the compiler takes it; on macOS (Apple's clang has no -fopenmp)
Homebrew's libomp when installed; otherwise one thread, said once here and in cpu_info().
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def compiles(cflags, ldflags):
    """True if the compiler builds and links an OpenMP program with these flags."""
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "t.c")
        with open(c, "w") as f:
            f.write(src)
        r = subprocess.run([cc, *cflags, c, "-o", os.path.join(d, "t"), *ldflags],
                           capture_output=True)
    return r.returncode == 0


def libomp_prefix():
    """Homebrew's libomp (macOS), or None. Untested here: no Mac in CI (docs/PLATFORMS.md)."""
    try:
        r = subprocess.run(["brew", "--prefix", "libomp"], capture_output=True, text=True)
        candidates = [r.stdout.strip()] if r.returncode == 0 else []
    except OSError:
        candidates = []
    candidates += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return next((p for p in candidates if p and os.path.isfile(p + "/include/omp.h")), None)


def openmp_flags():
    """(compile flags, link flags) for OpenMP, or None if this compiler cannot have it."""
    if compiles(["-fopenmp"], []):
        return ["-fopenmp"], ["-fopenmp"]
    prefix = libomp_prefix() if sys.platform == "darwin" else None
    if prefix:
        cflags = ["-Xpreprocessor", "-fopenmp", "-I" + prefix + "/include"]
        ldflags = ["-L" + prefix + "/lib", "-lomp"]
        if compiles(cflags, ldflags):
            return cflags, ldflags
    return None


# ALEXNET_CPU_OPENMP=0 builds without OpenMP even where the compiler has it (CI checks that
# build; a compiler without it gets the same).
omp = openmp_flags() if os.environ.get("ALEXNET_CPU_OPENMP", "1") != "0" else None
if omp is None:
    hint = " (macOS: brew install libomp, then rebuild)" if sys.platform == "darwin" else ""
    sys.stderr.write("\n*** alexnet-cpu: building without OpenMP; "
                     f"every kernel will run on ONE thread{hint}. ***\n\n")
    omp = [], []
omp_cflags, omp_ldflags = omp

sources = ["alexnet_cpu/_C.pyx"] + sorted(glob.glob("csrc/**/*.c", recursive=True))
cflags = ["-O3", "-std=gnu11", "-fno-math-errno", "-Wall", "-Wno-unused-function",
          "-Wno-unknown-pragmas"] + omp_cflags

ext = Extension(
    "alexnet_cpu._C",
    sources=sources,
    include_dirs=["csrc/include", numpy.get_include()],
    extra_compile_args=cflags,
    extra_link_args=omp_ldflags,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True)
                   + glob.glob("alexnet_cpu/_kernels/*.pxi")),
)

setup(ext_modules=cythonize([ext], language_level=3,
                            compiler_directives={"boundscheck": False,
                                                 "wraparound": False,
                                                 "cdivision": True,
                                                 "initializedcheck": False}))
