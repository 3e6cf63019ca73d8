"""The AVX512-VNNI int8 micro-kernel, verified on any CPU: tests/int8_simde.c builds the
very source of csrc/gemm/int8_vnni.c against SIMDe (header-only portable implementations
of the AVX-512 intrinsics, vpdpbusd included; Debian libsimde-dev) and runs it through the
real int8 driver bitwise against the portable reference, plain and im2col, u8 and float
outputs, tails and extreme values. Skips, saying why, without a C compiler or SIMDe."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")
SIMDE = any(os.path.exists(os.path.join(d, "simde", "x86", "avx512", "dpbusd.h"))
            for d in ("/usr/include", "/usr/local/include"))
SOURCES = ["tests/int8_simde.c", "csrc/gemm/int8_gemm.c", "csrc/gemm/int8_generic.c",
           "csrc/gemm/int8_vnni.c", "csrc/cpu.c", "csrc/parallel.c"]


@pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")
@pytest.mark.skipif(not SIMDE, reason="SIMDe headers missing: apt-get install libsimde-dev")
def test_vnni_kernel_through_simde(tmp_path):
    exe = str(tmp_path / "int8_simde")
    build = subprocess.run([CC, "-O1", "-std=gnu11", "-DAC_I8_SIMDE", "-Icsrc/include",
                            "-Icsrc/gemm", *SOURCES, "-lm", "-o", exe],
                           cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout[-2000:]
