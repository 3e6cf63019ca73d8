"""int8 kernels (ac_int8.h) on every int8 path this CPU has, 1 and 2 threads: the s32 sums
exactly against NumPy integers, every SIMD path bitwise against the portable reference,
the requantization against a float64 model of it, im2col convolutions with groups,
padding and a zero point, max-pooling on u8. AVX512-VNNI runs where the CPU has it; its
micro-kernel is also checked through SIMDe on every machine (test_int8_simde.py)."""
import numpy as np
import pytest

from alexnet_cpu import _C
from alexnet_cpu._threads import cpu_info

NO_VNNI = ("this CPU lacks AVX512-VNNI (vpdpbusd); its micro-kernel is checked through SIMDe "
           "by test_int8_simde.py")
PATHS = ["generic",
         pytest.param("avx2", marks=pytest.mark.skipif(not _C.isa_supported("avx2"),
                                                       reason="this CPU lacks AVX2")),
         pytest.param("avx512", marks=pytest.mark.skipif(not _C.vnni_supported(),
                                                         reason=NO_VNNI)),
         pytest.param("amx", marks=pytest.mark.skipif(
             not _C.amx_supported(), reason="this CPU (or its OS) offers no AMX-INT8 tiles"))]
# odd shapes: tails of every tile (4x16, 6x64, 32x32), depth not a multiple of 4 nor of
# AMX's 64, one row/column, depth in several chunks of 512 (s32 tiles carried between them),
# padded to 2048 (the AMX row's A rows then a line further apart)
SHAPES = [(1, 1, 1), (3, 17, 5), (5, 33, 70), (13, 100, 257), (9, 65, 3), (64, 37, 300),
          (45, 70, 1100), (37, 40, 2000)]


def ctx(path):
    """The int8 row `path` names: an ISA path without AMX, or the AVX-512 path's AMX row."""
    return (_C.Context(isa="avx512", amx=True) if path == "amx" else
            _C.Context(isa=path, amx=False))


def linear(path, x, w, comp=None, mul=None, add=None, out_dtype=np.float32, relu=False):
    n = w.shape[0]
    out = np.empty((x.shape[0], n), out_dtype)
    mul = np.ones(n, np.float32) if mul is None else mul
    add = np.zeros(n, np.float32) if add is None else add
    _C.int8_linear(out, x, _C.int8_pack(w, ctx(path)), n, comp, mul, add, relu, ctx(path))
    return out


def operands(rng, M, N, K):
    return (rng.integers(0, 256, (M, K), dtype=np.uint8),
            rng.integers(-128, 128, (N, K), dtype=np.int8))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_sums_exact(path, M, N, K, nthreads, rng):
    """With mul 1, add 0, float output the store writes the sums themselves (exact in
    float below 2^24): they equal NumPy's integer product, extreme values included."""
    x, w = operands(rng, M, N, K)
    x[0, :] = 255
    w[0, :] = -128
    comp = rng.integers(-1000, 1000, N, dtype=np.int32)
    want = x.astype(np.int64) @ w.astype(np.int64).T - comp
    assert np.array_equal(linear(path, x, w, comp), want.astype(np.float32))


@pytest.mark.parametrize("path", PATHS[1:])
@pytest.mark.parametrize("M,N,K", SHAPES[2:] + [(70, 96, 2051)])
def test_simd_bitwise_equals_reference(path, M, N, K, nthreads, rng):
    """Requantized u8 and float (ReLU) outputs, sums beyond 2^24: bitwise the reference's."""
    x, w = operands(rng, M, N, K)
    comp = rng.integers(-5000, 5000, N, dtype=np.int32)
    mul = (rng.random(N) * 1e-4).astype(np.float32)
    add = rng.normal(0, 50, N).astype(np.float32)
    for dtype, relu in ((np.uint8, False), (np.float32, True), (np.float32, False)):
        want = linear("generic", x, w, comp, mul, add, dtype, relu)
        got = linear(path, x, w, comp, mul, add, dtype, relu)
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dtype, relu)


def test_requantization_against_float64(rng):
    """u8 output = clamp(round(((acc - comp) mul + add)), 0, 255) in exact arithmetic, but
    for the fp32 roundings: off by one at most, and only near a half (|frac - .5| < 1e-4)."""
    x, w = operands(rng, 200, 48, 700)
    comp = rng.integers(-3000, 3000, 48, dtype=np.int32)
    mul = (rng.random(48) * 2e-3).astype(np.float32)
    add = rng.normal(0, 40, 48).astype(np.float32)
    acc = x.astype(np.int64) @ w.astype(np.int64).T - comp
    y = acc * mul.astype(np.float64) + add.astype(np.float64)
    want = np.clip(np.rint(y), 0, 255)
    got = linear("generic", x, w, comp, mul, add, np.uint8).astype(np.float64)
    diff = np.abs(got - want)
    assert diff.max() <= 1
    near_half = np.abs(np.abs(y - np.floor(y)) - 0.5) < 1e-4
    assert not (diff > 0)[~near_half].any()
    assert 0.2 < (got == 0).mean() < 0.8 and (got == 255).any()   # both clamps were hit
    f = linear("generic", x, w, comp, mul, add, np.float32, relu=True).astype(np.float64)
    assert np.allclose(f, np.maximum(y, 0), rtol=1e-6, atol=1e-3)


def conv_reference(x, w, stride, pad, groups, zero):
    """int64 NHWC convolution of u8 x (n, H, W, C) with s8 w (N, ks, ks, C/groups),
    padding holding `zero`."""
    n, H, W, C = x.shape
    N, ks = w.shape[0], w.shape[1]
    xp = np.full((n, H + 2 * pad, W + 2 * pad, C), zero, np.int64)
    xp[:, pad:pad + H, pad:pad + W] = x
    OH, OW = (H + 2 * pad - ks) // stride + 1, (W + 2 * pad - ks) // stride + 1
    out = np.zeros((n, OH, OW, N), np.int64)
    cg, ng = C // groups, N // groups
    for g in range(groups):
        wg = w[g * ng:(g + 1) * ng].astype(np.int64)
        for ky in range(ks):
            for kx in range(ks):
                patch = xp[:, ky:ky + stride * OH:stride, kx:kx + stride * OW:stride,
                           g * cg:(g + 1) * cg]
                out[..., g * ng:(g + 1) * ng] += patch @ wg[:, ky, kx, :].T
    return out


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n,H,W,C,N,ks,stride,pad,groups", [
    (2, 13, 11, 3, 10, 5, 3, 2, 1),      # conv1-like: strided, padded, 3 channels
    (1, 7, 9, 8, 34, 3, 1, 1, 2),        # grouped 3x3
    (3, 6, 6, 5, 17, 3, 2, 0, 1),        # no padding, tails
    (1, 5, 5, 6, 12, 5, 1, 2, 1),        # kernel as large as the image
    # kernel rows of whole words, unpadded (AMX: straight from the image): conv1 on 4-byte
    # pixels with tails of 32 pixels and columns, the batch's last pixels (read through a
    # copy), a batch of 3 (the third image's columns shared by the threads); 64-byte rows
    # (a batch of one; stride 2); 72-byte rows (im2col rows)
    (3, 47, 152, 4, 70, 11, 4, 0, 1),
    (1, 9, 40, 16, 33, 4, 1, 0, 1),
    (2, 9, 41, 16, 33, 4, 2, 0, 1),
    (2, 12, 37, 8, 20, 9, 2, 0, 1),
    # padded: rows on every path
    (3, 9, 13, 64, 40, 3, 1, 1, 1),
    (1, 6, 7, 128, 70, 5, 1, 2, 2),
    (2, 5, 6, 16, 20, 3, 1, 1, 1)])
def test_conv_exact(path, n, H, W, C, N, ks, stride, pad, groups, nthreads, rng):
    x = rng.integers(0, 256, (n, H, W, C), dtype=np.uint8)
    w = rng.integers(-127, 128, (N, ks, ks, C // groups), dtype=np.int8)
    zero = 117
    ng, cx = N // groups, ctx(path)
    packed = np.concatenate([_C.int8_pack(w[g * ng:(g + 1) * ng].reshape(ng, -1), cx)
                             for g in range(groups)])
    comp = (zero * w.reshape(N, -1).astype(np.int64).sum(1)).astype(np.int32)
    want = conv_reference(x, w, stride, pad, groups, zero) - comp
    out = np.empty(want.shape, np.float32)
    _C.int8_conv2d(out, x, packed, N, ks, stride, pad, groups, comp, np.ones(N, np.float32),
                   np.zeros(N, np.float32), False, zero, cx)
    assert np.array_equal(out, want.astype(np.float32))


@pytest.mark.parametrize("ceil", [False, True])
def test_maxpool_u8(ceil, nthreads, rng):
    x = rng.integers(0, 256, (2, 10, 9, 7), dtype=np.uint8)
    k, s = 3, 2
    OH, OW = [(d - k + (s - 1 if ceil else 0)) // s + 1 for d in (10, 9)]
    out = np.empty((2, OH, OW, 7), np.uint8)
    _C.int8_maxpool(out, x, k, s)
    for oy in range(OH):
        for ox in range(OW):
            win = x[:, oy * s:oy * s + k, ox * s:ox * s + k]
            assert np.array_equal(out[:, oy, ox], win.max(axis=(1, 2)))


def test_bad_arguments(rng):
    x, w = operands(rng, 3, 4, 8)
    packed = _C.int8_pack(w)
    one = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="x must have dtype uint8"):
        _C.int8_linear(np.empty((3, 4), np.uint8), x.astype(np.int8), packed, 4, None, one, one)
    with pytest.raises(ValueError, match="packed weights have"):
        _C.int8_linear(np.empty((3, 40), np.uint8), x, packed, 40, None, one, one)
    with pytest.raises(ValueError, match="out has"):
        _C.int8_linear(np.empty((3, 5), np.uint8), x, packed, 4, None, one, one)


@pytest.mark.parametrize("path,tile,step", [("avx512", 64, 4), ("amx", 32, 64)])
def test_context_picks_the_row(path, tile, step):
    """The C registry packs for the row the context names (int8_path is worked out in
    Python): B rows padded to its tile, depth to its step."""
    if not (_C.amx_supported() if path == "amx" else _C.vnni_supported()):
        pytest.skip(f"this CPU lacks the {path} row")
    w = np.ones((5, 70), np.int8)
    assert _C.int8_pack(w, ctx(path)).size == tile * (-(-70 // step) * step)


def test_cpu_info_reports_vnni():
    assert cpu_info()["vnni"] == _C.vnni_supported()
    assert cpu_info()["amx"] == _C.amx_supported()
    assert _C.int8_path(_C.Context(isa="generic")) == "generic"
    if _C.vnni_supported():
        assert _C.int8_path(_C.Context(isa="avx512", amx=False)) == "avx512"
    if _C.amx_supported():
        assert _C.int8_path(_C.Context(isa="avx512", amx=True)) == "amx"
        assert _C.int8_path(_C.Context(isa="avx2", amx=True)) == "avx2"  # AVX-512's only
    else:
        with pytest.raises(RuntimeError, match="AMX"):
            _C.Context(amx=True)
