"""bf16 compute precision: the rounding, the bf16 GEMM on every path (the portable reference
on all machines, vdpbf16ps where the CPU has AVX512_BF16) against float64 of the
bf16-rounded operands (tight) and against fp32 (loose), 1 and 2 threads (bitwise equal),
odd shapes and tails, and the run-time choice (refused without AVX512_BF16)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C

U32 = 2.0 ** -24      # fp32 unit roundoff
UBF = 2.0 ** -8       # bf16 unit roundoff (8 significant bits)
HAS_BF16 = _C.bf16_supported()
NO_BF16 = "this CPU lacks AVX512_BF16 (vdpbf16ps)"
BF16_ISA = "avx512" if HAS_BF16 else "generic"   # the fastest path with a bf16 kernel

# test_bf16_layers.py and test_bf16_net.py compare with PyTorch: without it only those
# comparisons skip, saying why (CI installs torch, .ci/run: there none of them skips).
try:
    import torch
except ImportError:
    torch = None
NEEDS_TORCH = pytest.mark.skipif(torch is None, reason="compares with PyTorch, which is not "
                                 "installed: pip install torch==2.13.0 (CI installs it)")

# bf16 kernels: the reference (portable path) never skips; vdpbf16ps needs the CPU. Tests
# marked BF16_PATHS run on each, through conftest's `isa` fixture.
PATHS = ["generic", pytest.param("avx512", marks=pytest.mark.skipif(not HAS_BF16, reason=NO_BF16))]
BF16_PATHS = pytest.mark.parametrize("isa", PATHS, indirect=True)


def bf16_numpy(x):
    """Independent RNE to bf16 on the bit patterns (NaN quiet, denormals to signed zero)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32)
    nan = ((u & 0x7F800000) == 0x7F800000) & ((u & 0x7FFFFF) != 0)
    r = np.where(nan, (u >> 16) | 0x40, r)
    r = np.where((u & 0x7F800000) == 0, (u >> 16) & 0x8000, r)
    return (r.astype(np.uint32) << 16).view(np.float32)


def test_round_matches_bit_reference(rng):
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40,
                        3.3895314e38, 3.4e38, -3.4e38, 1.00390625, 1.01171875, 1.0078125,
                        1.0 + 2 ** -8 + 2 ** -20], np.float32)
    x = np.concatenate([special, rng.standard_normal(10000).astype(np.float32) * 100,
                        rng.integers(0, 2 ** 32, 10000, dtype=np.uint64)
                           .astype(np.uint32).view(np.float32)])
    got, want = _C.bf16_round(x), bf16_numpy(x)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # ties go to even; overflow rounds to infinity; denormals flush; NaN stays NaN
    assert got[12] == 1.0 and got[13] == 1.015625 and got[14] == 1.0078125
    assert got[15] == 1.0078125
    assert np.isinf(got[10]) and got[10] > 0 and got[9] == np.float32(3.3895314e38)
    assert got[7] == 0 and np.signbit(got[8]) and np.isnan(got[6])


def reference64(a, b, ta, tb, alpha=1.0, beta=0.0, c=None):
    """float64 product of the bf16-rounded operands, and |alpha||A||B| + |beta||C| to scale
    error bounds by."""
    A = _C.bf16_round(a.T if ta else a).astype(np.float64)
    B = _C.bf16_round(b.T if tb else b).astype(np.float64)
    r, s = alpha * (A @ B), abs(alpha) * (np.abs(A) @ np.abs(B))
    if beta != 0.0:
        r += beta * c.astype(np.float64)
        s += abs(beta) * np.abs(c.astype(np.float64))
    return r, s


def check(c, a, b, ta, tb, alpha=1.0, beta=0.0, c0=None):
    K = a.shape[0] if ta else a.shape[1]
    ref, scale = reference64(a, b, ta, tb, alpha, beta, c0)
    # Tight: the products of bf16 values are exact in fp32, so all error is fp32 summation,
    # at most (K + 3) u32 |A||B| (K adds, alpha, the beta term) in the worst case.
    err = np.abs(c.astype(np.float64) - ref)
    assert np.all(err <= (K + 3) * U32 * scale + 1e-30), float((err / (scale + 1e-30)).max())
    # Loose, against the unrounded fp32 operands: each operand moves by at most UBF relative,
    # so each product by 2 UBF + UBF^2, plus the summation above (bf16 vs fp32 error bound).
    A = (a.T if ta else a).astype(np.float64)
    B = (b.T if tb else b).astype(np.float64)
    ref32 = alpha * (A @ B) + (beta * c0.astype(np.float64) if beta != 0.0 else 0.0)
    scale32 = abs(alpha) * (np.abs(A) @ np.abs(B)) + (abs(beta) * np.abs(c0) if beta else 0)
    err32 = np.abs(c.astype(np.float64) - ref32)
    assert np.all(err32 <= (2 * UBF + UBF ** 2 + (K + 3) * U32) * scale32 + 1e-30)
    # ... and the bound is not vacuous: bf16 is really used (fp32 would be ~1000x closer)
    return float((err32 / (scale32 + 1e-30)).max())


def operands(rng, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    return a, b


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 37, 5), (29, 1, 31), (7, 11, 1), (13, 17, 19),
                                   (6, 64, 2), (7, 65, 3), (97, 61, 300), (5, 130, 769)])
@BF16_PATHS
def test_sgemm_bf16_shapes(isa, nthreads, rng, ta, tb, shape):
    a, b = operands(rng, *shape, ta, tb)
    c = ac.sgemm(a, b, trans_a=ta, trans_b=tb, precision="bf16")
    check(c, a, b, ta, tb)
    assert ac.get_precision() == "fp32"  # the call's precision does not stick


@BF16_PATHS
def test_sgemm_bf16_is_bf16(isa, rng):
    """The loose bound above would pass fp32 too: make sure the operands are rounded."""
    a, b = operands(rng, 40, 50, 60, False, False)
    d = np.abs(ac.sgemm(a, b, precision="bf16") - ac.sgemm(a, b)).max()
    assert d > 1e-3


@pytest.mark.parametrize("alpha,beta", [(2.5, 0.0), (-0.5, 1.0), (1.0, -2.0), (0.0, 0.5)])
@BF16_PATHS
def test_sgemm_bf16_alpha_beta(isa, nthreads, rng, alpha, beta):
    M, N, K = 45, 70, 301
    a, b = operands(rng, M, N, K, False, False)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    c = ac.sgemm(a, b, out=c0.copy(), alpha=alpha, beta=beta, precision="bf16")
    check(c, a, b, False, False, alpha, beta, c0)


@BF16_PATHS
def test_sgemm_bf16_blocks_and_threads(isa, rng):
    """Several K blocks (odd last one), M and N splits: bitwise equal on 1 and 2 threads."""
    old = ac.get_num_threads()
    try:
        for M, N, K in [(301, 1043, 1601), (1031, 67, 263), (37, 2100, 90)]:
            a, b = operands(rng, M, N, K, False, True)
            out = []
            for nt in (1, 2):
                ac.set_num_threads(nt)
                out.append(ac.sgemm(a, b, trans_b=True, precision="bf16"))
            assert np.array_equal(out[0], out[1])
            check(out[0], a, b, False, True)
    finally:
        ac.set_num_threads(old)


@pytest.mark.skipif(not HAS_BF16, reason=NO_BF16)
def test_vdpbf16ps_matches_reference_bitwise(rng):
    """Within one K block (K <= 256 on both paths) each element is the same sequence of fp32
    sums in the reference (high product, then low, per pair) and in vdpbf16ps as Intel
    defines it: equal bits also check the packing and the vcvtne2ps2bf16 conversion."""
    for M, N, K in [(13, 70, 33), (7, 129, 256), (50, 3, 255)]:
        a, b = operands(rng, M, N, K, False, False)
        out = {}
        for isa in ("generic", "avx512"):
            _C.set_isa(isa)
            out[isa] = ac.sgemm(a, b, precision="bf16")
        _C.set_isa("avx512")
        assert np.array_equal(out["generic"], out["avx512"])


@BF16_PATHS
def test_nan_and_inf_propagate(isa):
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    a[1, 2] = np.nan
    b[0, 3] = np.inf
    c = ac.sgemm(a, b, precision="bf16")
    assert np.isnan(c[1]).all()
    assert np.isinf(c[[0, 2], 3]).all() and np.isfinite(c[[0, 2]][:, [0, 1, 2, 4]]).all()


@BF16_PATHS
def test_fp32_unchanged_after_bf16(isa, rng):
    a, b = operands(rng, 77, 91, 123, False, False)
    before = ac.sgemm(a, b)
    ac.sgemm(a, b, precision="bf16")
    assert np.array_equal(ac.sgemm(a, b), before)


def test_refused_without_avx512_bf16():
    old_isa = _C.get_isa()
    try:
        _C._hide_bf16(True)
        assert not ac.cpu_info()["bf16"]
        if old_isa != "generic":
            with pytest.raises(RuntimeError, match="AVX512_BF16"):
                _C.set_precision("bf16")
            with pytest.raises(RuntimeError, match="AVX512_BF16"):
                ac.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32),
                         precision="bf16")
        _C.set_isa("generic")  # the portable reference is always there
        c = ac.sgemm(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), precision="bf16")
        assert (c == 3).all()
    finally:
        _C._hide_bf16(False)
        _C.set_isa(old_isa)
    with pytest.raises(ValueError, match="precision"):
        _C.set_precision("fp16")


def run_py(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_env_variables():
    r = run_py("import alexnet_cpu as ac; print(ac.cpu_info()['bf16'])", ALEXNET_CPU_BF16="0")
    assert r.returncode == 0 and r.stdout.strip() == "False"
    r = run_py("import alexnet_cpu", ALEXNET_CPU_BF16="0", ALEXNET_CPU_PRECISION="bf16")
    assert r.returncode != 0 and "AVX512_BF16" in r.stderr
    r = run_py("import alexnet_cpu as ac; print(ac.cpu_info()['precision'])",
               ALEXNET_CPU_PRECISION="bf16")
    if HAS_BF16:
        assert r.returncode == 0 and r.stdout.strip() == "bf16"
    r = run_py("import alexnet_cpu as ac; print(ac.cpu_info()['precision'])",
               ALEXNET_CPU_PRECISION="bf16", ALEXNET_CPU_ISA="generic", ALEXNET_CPU_BF16="0")
    assert r.returncode == 0 and r.stdout.strip() == "bf16", r.stderr


@pytest.mark.skipif(not HAS_BF16, reason=NO_BF16)
def test_bf16_peak_meter():
    assert _C.bf16_peak_gflops(0.02) > 0
