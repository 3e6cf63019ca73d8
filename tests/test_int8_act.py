"""Floats to u8 activations (csrc/int8_act.c) on every path this CPU has, 1 and 2 threads:
the input batch NCHW float -> NHWC u8 exactly against a float64 model of NumPy's
clip(rint(x * mul) + zero, 0, 255); LRN of NHWC floats -> u8 exactly equal to the fp32 LRN
layer's output (lrn_forward, same path) quantized, and within one level of a float64 LRN
where float32 rounding can flip a value across a rounding boundary."""
import numpy as np
import pytest

from alexnet_cpu import _C
from references import lrn_ref


def quant_ref(v, mul, zero=0):
    """float64 model of the kernels' rounding: the product rounded to float32 (a float64
    product of two float32 is exact, so this is the float32 product), rint half to even,
    then the zero point, then the clamp; NaN -> 0."""
    p = (np.asarray(v, np.float64) * np.float64(np.float32(mul))).astype(np.float32)
    y = np.rint(p.astype(np.float64)) + zero
    return np.nan_to_num(np.clip(y, 0, 255), nan=0.0).astype(np.uint8)


def quantize(x, mul, zero=0, pad=0, cout=None):
    n, c, h, w = x.shape
    out = np.full((n, h + 2 * pad, w + 2 * pad, cout or c), 77, np.uint8)
    _C.int8_quantize(out, x, mul, zero, pad)
    return out


# C = 1, 3 (images), 5, 17; rows: 1, odd, across the 1024-position steps (1100, 2500)
Q_SHAPES = [(1, 1, 1, 1), (2, 3, 7, 9), (3, 5, 33, 35), (1, 17, 4, 1100), (5, 3, 31, 37),
            (1, 2, 2, 2500)]


@pytest.mark.parametrize("shape", Q_SHAPES)
@pytest.mark.parametrize("zero", [0, 1, 117, 255])
def test_quantize_matches_reference(isa, nthreads, rng, shape, zero):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    mul = 1.0 / 0.0213
    got = quantize(x, mul, zero)
    assert np.array_equal(got, quant_ref(x, mul, zero).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 5, 3), (3, 3, 17, 19), (1, 2, 2, 1100)])
@pytest.mark.parametrize("pad,extra", [(0, 1), (2, 0), (1, 1), (3, 5)])
def test_quantize_pads_with_the_zero_point(isa, nthreads, rng, shape, pad, extra):
    # the border and the extra channels (4-byte pixels of RGB: extra 1) read the zero point
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    zero, mul = 101, 1.0 / 0.0213
    want = np.pad(quant_ref(x, mul, zero).transpose(0, 2, 3, 1),
                  ((0, 0), (pad, pad), (pad, pad), (0, extra)), constant_values=zero)
    assert np.array_equal(quantize(x, mul, zero, pad, shape[1] + extra), want)


def test_quantize_ties_and_specials(isa, nthreads):
    # x * 0.5 exactly k + 1/2: half to even; 0.50000006 + 128 rounds to 128.5 in float32,
    # so the zero point must come after rint (129, not 128); huge, infinite, NaN, -0
    ties = np.arange(-9, 10, dtype=np.float32)
    special = np.array([np.nextafter(np.float32(0.5), np.float32(1)), 1e30, -1e30, np.inf,
                        -np.inf, np.nan, -0.0, 510.9, 511.1], np.float32)
    for x, mul, zero in [(ties, 0.5, 0), (ties, 0.5, 5), (special, 1.0, 128),
                         (special, 0.5, 0)]:
        xx = np.ascontiguousarray(x.reshape(1, 1, 1, -1))
        want = quant_ref(xx, mul, zero).transpose(0, 2, 3, 1)
        assert np.array_equal(quantize(xx, mul, zero), want), (x, mul, zero)
        assert np.array_equal(quantize(xx, mul, zero, cout=4)[..., :1], want)  # word path
    assert quantize(ties.reshape(1, 1, 1, -1), 0.5)[0, 0, :, 0].tolist() == \
        [0] * 9 + [0, 0, 1, 2, 2, 2, 3, 4, 4, 4]
    assert quantize(special.reshape(1, 1, 1, -1), 1.0, 128)[0, 0, 0, 0] == 129


def run_lrn(x, size, alpha, beta, k, mul, work=None, ctx=None):
    out = np.full(x.shape, 77, np.uint8)
    work = _C.int8_lrn(out, x, size, alpha, beta, k, mul, work, ctx)
    return out, work


def fp32_layer_u8(x, size, alpha, beta, k, mul):
    """The fp32 LRN kernel on the NCHW copy, quantized: what Int8Net computed before."""
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out, scale = np.empty_like(nchw), np.empty_like(nchw)
    _C.lrn_forward(out, scale, nchw, size, alpha, beta, k)
    return quant_ref(out, mul).transpose(0, 2, 3, 1)


# NHWC (n, H, W, C): tiles are about 16384 / C positions, multiples of 16 (C = 5: 3264,
# C = 17: 960, C = 96: 160, C = 300: 48); positions 1, odd, a few tiles with a short last one
# (61 x 59 = 3599 for C = 5, 37 x 41 = 1517 for C = 17, 13 x 17 = 221 for C = 96), C not a
# multiple of 16
L_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (2, 61, 59, 5), (1, 37, 41, 17), (3, 13, 17, 96),
            (2, 7, 9, 300), (17, 5, 5, 2)]


@pytest.mark.parametrize("shape", L_SHAPES)
@pytest.mark.parametrize("size", [1, 3, 5, 4])
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_lrn_matches_fp32_layer_and_float64(isa, nthreads, rng, shape, size, beta):
    x = np.maximum(rng.standard_normal(shape) * 3, 0).astype(np.float32)   # after a ReLU
    alpha, k = 2e-2, 2.0
    ref = lrn_ref(x.transpose(0, 3, 1, 2), size, alpha, beta, k)[0].transpose(0, 2, 3, 1)
    mul = np.float32(280 / max(ref.max(), 1e-3))   # the largest values clamp at 255
    got, _ = run_lrn(x, size, alpha, beta, k, mul)
    assert np.array_equal(got, fp32_layer_u8(x, size, alpha, beta, k, mul))
    want = quant_ref(ref, mul)
    diff = got.astype(int) - want
    assert np.abs(diff).max(initial=0) <= 1
    y = ref * np.float64(mul)   # a flipped level lies within float32 error of a boundary
    assert (np.abs(y - np.floor(y) - 0.5)[diff != 0] < 1e-5 * np.maximum(y, 1)[diff != 0]).all()


def test_lrn_paper_constants_negative_inputs_and_work(isa, nthreads, rng):
    # the paper's layer on activations of all scales, and inputs below 0 (clamped to 0)
    x = (rng.standard_normal((4, 27, 27, 256)) * 40).astype(np.float32)
    x[:, :, :, 10:20] *= 100
    got, work = run_lrn(x, 5, 1e-4, 0.75, 2.0, 10.0)
    assert np.array_equal(got, fp32_layer_u8(x, 5, 1e-4, 0.75, 2.0, 10.0))
    assert (got[x <= 0] == 0).all() and got.max() == 255
    again, work2 = run_lrn(x, 5, 1e-4, 0.75, 2.0, 10.0, work, _C.Context(isa=isa))
    assert work2 is work and np.array_equal(again, got)
    small = np.empty(3, np.float32)   # too small: replaced, not overrun
    assert run_lrn(x, 5, 1e-4, 0.75, 2.0, 10.0, small)[1] is not small


def test_lrn_non_finite(isa, nthreads, rng):
    # NaN and inf spread over their windows: the u8 still equal the fp32 layer's (NaN -> 0)
    x = np.maximum(rng.standard_normal((2, 5, 7, 19)) * 3, 0).astype(np.float32)
    x[0, 1, 2, 3], x[1, 4, 6, 18], x[1, 0, 0, 0] = np.nan, np.inf, 1e30
    got, _ = run_lrn(x, 5, 2e-2, 0.75, 2.0, 40.0)
    assert np.array_equal(got, fp32_layer_u8(x, 5, 2e-2, 0.75, 2.0, 40.0))
    assert got[0, 1, 2, 3] == 0


def test_argument_errors():
    x = np.zeros((2, 3, 4, 5), np.float32)
    out = np.zeros((2, 4, 5, 3), np.uint8)
    with pytest.raises(TypeError, match="int8_quantize: x must have dtype float32"):
        _C.int8_quantize(out, x.astype(np.float64), 1.0)
    with pytest.raises(TypeError, match="int8_quantize: out must have dtype uint8"):
        _C.int8_quantize(out.astype(np.float32), x, 1.0)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 5, C >= 3\)"):
        _C.int8_quantize(np.zeros((2, 3, 4, 5), np.uint8), x, 1.0)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 5, C >= 3\)"):
        _C.int8_quantize(np.zeros((2, 4, 5, 2), np.uint8), x, 1.0)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _C.int8_quantize(out, np.zeros((2, 3, 5, 4), np.float32).transpose(0, 1, 3, 2), 1.0)
    with pytest.raises(ValueError, match="zero point must be in 0..255"):
        _C.int8_quantize(out, x, 1.0, 256)
    with pytest.raises(ValueError, match="x must be 4-D"):
        _C.int8_quantize(out, x[0], 1.0)
    with pytest.raises(TypeError, match="ctx must be an alexnet_cpu Context"):
        _C.int8_quantize(out, x, 1.0, 0, ctx="avx2")
    with pytest.raises(ValueError, match="pad must be >= 0"):
        _C.int8_quantize(out, x, 1.0, 0, -1)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 6, 7, C >= 3\)"):
        _C.int8_quantize(out, x, 1.0, 0, 1)
    base = np.zeros(2 * 3 * 4 * 5 * 4, np.uint8)
    with pytest.raises(ValueError, match="out and x must not overlap"):
        _C.int8_quantize(base[:120].reshape(2, 4, 5, 3), base.view(np.float32).reshape(x.shape),
                         1.0)
    xn = np.zeros((2, 4, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"int8_lrn: out must have shape \(2, 4, 5, 3\)"):
        _C.int8_lrn(np.zeros((2, 3, 4, 5), np.uint8), xn, 5, 1e-4, 0.75, 2.0, 1.0)
    with pytest.raises(ValueError, match="int8_lrn: size must be >= 1, got 0"):
        _C.int8_lrn(out, xn, 0, 1e-4, 0.75, 2.0, 1.0)
    with pytest.raises(TypeError, match="int8_lrn: x must have dtype float32"):
        _C.int8_lrn(out, xn.astype(np.float16), 5, 1e-4, 0.75, 2.0, 1.0)
    with pytest.raises(ValueError, match="int8_lrn: out is an output and must be writeable"):
        ro = np.zeros_like(out)
        ro.flags.writeable = False
        _C.int8_lrn(ro, xn, 5, 1e-4, 0.75, 2.0, 1.0)
