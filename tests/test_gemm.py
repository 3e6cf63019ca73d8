"""sgemm against a float64 NumPy reference: every transpose combination, alpha/beta, edge
tiles of each ISA's micro-kernel and blocking, 1 and 2 threads (bitwise identical), errors.
Also the FMA peak meter."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from references import gemm_ref as reference

# M or N at most this take the small-output path (AC_SMALL_MAX, csrc/gemm/gemm_internal.h),
# not the blocked driver.
SMALL_MAX = 8


def operands(rng, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    return a, b


def assert_gemm_close(c, ref, K):
    # float32 accumulation over K terms of unit-variance products
    tol = 2e-6 * max(K, 1) ** 0.5 * max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(c.astype(np.float64) - ref).max(initial=0.0))
    assert err <= tol, f"max abs error {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 37, 5), (29, 1, 31), (7, 11, 1), (13, 17, 19),
                                   (97, 61, 300), (64, 64, 64)])
def test_transposes_and_odd_shapes(isa, nthreads, rng, ta, tb, shape):
    M, N, K = shape
    a, b = operands(rng, M, N, K, ta, tb)
    c = ac.sgemm(a, b, trans_a=ta, trans_b=tb)
    assert c.shape == (M, N) and c.dtype == np.float32
    assert_gemm_close(c, reference(a, b, ta, tb), K)


def edge_shapes(isa):
    """Around the micro-tile edges (a multiple of MR, NR +- 1, past the small-output path)
    and the KC block boundary of the path's blocking (_C.gemm_blocking)."""
    b = _C.gemm_blocking(isa)
    mr, nr, kc = b["mr"], b["nr"], b["kc"]
    m0, n0 = (SMALL_MAX // mr + 1) * mr, (SMALL_MAX // nr + 1) * nr  # first above SMALL_MAX
    ms = sorted({m0 - 1, m0, m0 + 1, m0 + mr + 1} - set(range(SMALL_MAX + 1)))
    ns = sorted({n0 - 1, n0, n0 + 1, n0 + nr // 2 + 1, 2 * n0 - 1} - set(range(SMALL_MAX + 1)))
    ks = [kc - 1, kc, kc + 1, 2 * kc + 3]
    return [(m, n, 7) for m in ms for n in ns] + [(m0 + 1, n0 + 1, k) for k in ks]


def test_gemm_blocking_describes_each_path():
    assert _C.gemm_blocking() == _C.gemm_blocking(_C.get_isa())
    for name in filter(_C.isa_built, _C.ISA_NAMES):   # another architecture's: no row
        b = _C.gemm_blocking(name)
        assert b["isa"] == name
        assert all(b[k] >= 1 for k in ("mr", "nr", "kc", "mc", "nc", "mb")), b
        assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0, b
    with pytest.raises(ValueError, match="unknown ISA"):
        _C.gemm_blocking("sse2")


def test_micro_tile_and_block_edges(isa, nthreads, rng):
    for M, N, K in edge_shapes(isa):
        for ta, tb in ((False, False), (True, True)):
            a, b = operands(rng, M, N, K, ta, tb)
            c = ac.sgemm(a, b, trans_a=ta, trans_b=tb)
            assert_gemm_close(c, reference(a, b, ta, tb), K)


def test_blocking_edges_large(isa, nthreads, rng):
    """Several MB/MC/NC/KC blocks with tails in every dimension and both thread splits."""
    for M, N, K in [(301, 1043, 517), (1031, 67, 263), (37, 2100, 90), (2061, 45, 37)]:
        a, b = operands(rng, M, N, K, False, True)
        c = ac.sgemm(a, b, trans_b=True)
        assert_gemm_close(c, reference(a, b, False, True), K)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (-0.5, 1.0), (1.0, -2.0),
                                        (0.0, 0.5), (0.0, 0.0)])
def test_alpha_beta(isa, nthreads, rng, alpha, beta):
    M, N, K = 45, 70, 300
    a, b = operands(rng, M, N, K, False, False)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    c = ac.sgemm(a, b, out=c0.copy(), alpha=alpha, beta=beta)
    assert_gemm_close(c, reference(a, b, False, False, alpha, beta, c0), K)


def test_beta_zero_ignores_nan_in_out(isa, nthreads, rng):
    M, N, K = 25, 33, 600  # two K blocks: the second adds to what the first wrote
    a, b = operands(rng, M, N, K, True, False)
    out = np.full((M, N), np.nan, dtype=np.float32)
    c = ac.sgemm(a, b, out=out, trans_a=True, beta=0.0)
    assert c is out
    assert np.isfinite(c).all()
    assert_gemm_close(c, reference(a, b, True, False), K)


def test_out_is_returned_and_written_in_place(rng):
    a, b = operands(rng, 5, 6, 7, False, False)
    out = np.zeros((5, 6), dtype=np.float32)
    assert ac.sgemm(a, b, out=out) is out
    assert_gemm_close(out, reference(a, b, False, False), 7)


def test_zero_sized(isa):
    for M, N, K in [(0, 5, 3), (4, 0, 3), (0, 0, 0)]:
        c = ac.sgemm(np.ones((M, K), np.float32), np.ones((K, N), np.float32))
        assert c.shape == (M, N)
    # K == 0: C = beta * C, A and B not read
    out = np.full((3, 4), 2.0, dtype=np.float32)
    ac.sgemm(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32), out=out, beta=0.5)
    assert (out == 1.0).all()
    c = ac.sgemm(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32))
    assert (c == 0.0).all()


def _per_thread_count(a, b, c0, ta, tb):
    """sgemm(alpha=0.7, beta=0.3) on a copy of c0 with 1, 2 and 3 threads."""
    results = []
    for n in (1, 2, 3):
        ac.set_num_threads(n)
        results.append(ac.sgemm(a, b, out=c0.copy(), trans_a=ta, trans_b=tb,
                                alpha=0.7, beta=0.3))
    return results


def test_bitwise_identical_across_thread_counts(isa, rng):
    old = ac.get_num_threads()
    shapes = [(96, 363, 300, False, True), (200, 150, 531, True, False),
              (37, 1000, 260, False, False), (600, 40, 100, True, True)]
    try:
        for M, N, K, ta, tb in shapes:
            a, b = operands(rng, M, N, K, ta, tb)
            c0 = rng.standard_normal((M, N)).astype(np.float32)
            results = _per_thread_count(a, b, c0, ta, tb)
            for r in results[1:]:
                assert np.array_equal(r, results[0]), (M, N, K, ta, tb)
    finally:
        ac.set_num_threads(old)


def test_isa_paths_agree(rng):
    M, N, K = 50, 70, 530
    a, b = operands(rng, M, N, K, False, False)
    ref = reference(a, b, False, False)
    old = _C.get_isa()
    try:
        for name in _C.ISA_NAMES:
            if _C.isa_supported(name):
                _C.set_isa(name)
                assert_gemm_close(ac.sgemm(a, b), ref, K)
    finally:
        _C.set_isa(old)


def test_workspace_reused_across_calls(rng):
    a, b = operands(rng, 30, 40, 50, False, False)
    ac.sgemm(a, b)
    w = _C._gemm_tls.work
    ac.sgemm(a, b)
    assert _C._gemm_tls.work is w


def test_bad_arguments():
    f = np.ones((3, 4), np.float32)
    g = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="a must have dtype float32"):
        ac.sgemm(f.astype(np.float64), g)
    with pytest.raises(TypeError, match="b must be a numpy.ndarray"):
        ac.sgemm(f, [[1.0]])
    with pytest.raises(ValueError, match="b must be 2-D"):
        ac.sgemm(f, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="a must be C-contiguous"):
        ac.sgemm(np.ones((4, 3), np.float32).T, g)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        ac.sgemm(f, g, trans_a=True)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 5\)"):
        ac.sgemm(f, g, out=np.empty((5, 3), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        ac.sgemm(f, g, out=np.empty((3, 5), np.float64))
    sq = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        ac.sgemm(sq, np.ones((4, 4), np.float32), out=sq, beta=1.0)


def test_fma_peak_gflops():
    g = _C.fma_peak_gflops(0.05)
    assert g > 1.0
    for name in _C.ISA_NAMES:
        if _C.isa_supported(name):
            assert _C.fma_peak_gflops(0.02, isa=name) > 0.1


def test_concurrent_calls_from_python_threads(rng):
    """The GIL is released and each Python thread has its own workspace."""
    import threading
    cases = []
    for i in range(4):
        a, b = operands(rng, 70 + i, 90, 300, bool(i & 1), bool(i & 2))
        cases.append((a, b, bool(i & 1), bool(i & 2)))
    expected = [ac.sgemm(a, b, trans_a=ta, trans_b=tb) for a, b, ta, tb in cases]
    errors = []

    def worker(j):
        try:
            for _ in range(20):
                a, b, ta, tb = cases[j]
                if not np.array_equal(ac.sgemm(a, b, trans_a=ta, trans_b=tb), expected[j]):
                    errors.append(j)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ---- small-output path (M or N <= 8: no packing, the big operand streamed once) ----

SMALL_MAX = 8


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_small_m_and_small_n(isa, nthreads, rng, ta, tb):
    """s = 1..9 (9 takes the packed path) against odd big dimensions and vector/K tails."""
    for s in range(1, SMALL_MAX + 2):
        for big, K in [(1, 7), (37, 1), (131, 45), (67, 300)]:
            for M, N in ((s, big), (big, s)):
                a, b = operands(rng, M, N, K, ta, tb)
                c = ac.sgemm(a, b, trans_a=ta, trans_b=tb)
                assert_gemm_close(c, reference(a, b, ta, tb), K)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (-0.5, 1.0), (1.0, -2.0)])
def test_small_alpha_beta_and_nan_out(isa, nthreads, rng, alpha, beta):
    for M, N, K, ta, tb in [(1, 70, 33, False, True), (3, 130, 17, False, False),
                            (90, 5, 41, False, False), (77, 2, 19, True, True)]:
        a, b = operands(rng, M, N, K, ta, tb)
        c0 = rng.standard_normal((M, N)).astype(np.float32)
        ref = reference(a, b, ta, tb, alpha, beta, c0)
        if beta == 0.0:
            c0[:] = np.nan  # write-only
        c = ac.sgemm(a, b, out=c0, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta)
        assert_gemm_close(c, ref, K)


def test_small_bitwise_identical_across_thread_counts(isa, rng):
    """Shapes big enough to run threaded on the small path, every transpose."""
    old = ac.get_num_threads()
    try:
        for M, N, K in [(1, 1000, 300), (5, 777, 260), (700, 3, 301), (8, 2000, 97)]:
            for ta in (False, True):
                for tb in (False, True):
                    a, b = operands(rng, M, N, K, ta, tb)
                    c0 = rng.standard_normal((M, N)).astype(np.float32)
                    results = _per_thread_count(a, b, c0, ta, tb)
                    assert_gemm_close(results[0], reference(a, b, ta, tb, 0.7, 0.3, c0), K)
                    for r in results[1:]:
                        assert np.array_equal(r, results[0]), (M, N, K, ta, tb)
    finally:
        ac.set_num_threads(old)


def test_small_linear_shapes(isa, nthreads, rng):
    """Linear layer at batch 1..3: forward X.W^T, dX = dY.W, dW += dY^T.X (and W.X^T)."""
    B, I, O = 3, 1100, 517
    x = rng.standard_normal((B, I)).astype(np.float32)
    w = rng.standard_normal((O, I)).astype(np.float32)
    dy = rng.standard_normal((B, O)).astype(np.float32)
    for b in (1, B):
        assert_gemm_close(ac.sgemm(x[:b], w, trans_b=True), reference(x[:b], w, 0, 1), I)
        assert_gemm_close(ac.sgemm(w, x[:b], trans_b=True), reference(w, x[:b], 0, 1), I)
        assert_gemm_close(ac.sgemm(dy[:b], w), reference(dy[:b], w, 0, 0), O)
        g0 = rng.standard_normal((O, I)).astype(np.float32)
        g = ac.sgemm(dy[:b], x[:b], out=g0.copy(), trans_a=True, beta=1.0)
        assert_gemm_close(g, reference(dy[:b], x[:b], 1, 0, 1.0, 1.0, g0), b)


def test_small_long_k_falls_back(isa, rng):
    """K too long for the small path's scratch copy of a transposed small operand."""
    M, N, K = 8, 20, 90001
    a, b = operands(rng, M, N, K, True, True)
    assert_gemm_close(ac.sgemm(a, b, trans_a=True, trans_b=True), reference(a, b, 1, 1), K)
