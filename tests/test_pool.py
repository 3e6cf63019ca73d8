"""maxpool2d and adaptive_avgpool2d, forward and backward, vs float64 NumPy references,
finite differences, thread independence and torch."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from gradcheck import assert_close, numerical_grad
from references import avgpool_ref, avgpool_ref_backward, maxpool_ref, maxpool_ref_backward


# ----------------------------------------------------------------- helpers

def _maxpool(x, k, stride):
    N, C, H, W = x.shape
    shape = (N, C, (H - k) // stride + 1, (W - k) // stride + 1)
    out = np.full(shape, np.nan, np.float32)
    argmax = np.full(shape, -5, np.int32)
    _C.maxpool2d_forward(out, argmax, x, k, stride)
    return out, argmax


def _maxpool_back(dout, argmax, shape):
    dx = np.full(shape, np.nan, np.float32)
    _C.maxpool2d_backward(dx, dout, argmax)
    return dx


def _avgpool(x, OH, OW):
    out = np.full(x.shape[:2] + (OH, OW), np.nan, np.float32)
    _C.adaptive_avgpool2d_forward(out, x)
    return out


def _avgpool_back(dout, shape):
    dx = np.full(shape, np.nan, np.float32)
    _C.adaptive_avgpool2d_backward(dx, dout)
    return dx


# (N, C, H, W, k, stride)
MAX_CASES = [(1, 1, 1, 1, 1, 1), (2, 3, 13, 13, 3, 2), (3, 5, 7, 11, 3, 2), (1, 2, 27, 27, 3, 2),
             (2, 1, 8, 9, 2, 2), (1, 3, 7, 13, 5, 1), (2, 2, 13, 7, 4, 3), (1, 1, 6, 6, 1, 4)]
MAX_IDS = ["N{}C{}H{}W{}k{}s{}".format(*c) for c in MAX_CASES]
# (N, C, H, W, OH, OW)
AVG_CASES = [(2, 3, 13, 13, 6, 6), (1, 2, 8, 8, 6, 6), (3, 1, 6, 6, 6, 6), (2, 2, 5, 5, 6, 6),
             (1, 3, 7, 11, 3, 4), (2, 1, 1, 1, 2, 3), (1, 2, 9, 4, 1, 1), (1, 1, 6, 5, 6, 5)]
AVG_IDS = ["N{}C{}H{}W{}->{}x{}".format(*c) for c in AVG_CASES]


# ------------------------------------------------------------------ max pool

@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_maxpool_matches_reference(case, isa, nthreads, rng):
    N, C, H, W, k, s = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    out, argmax = _maxpool(x, k, s)
    rout, rarg = maxpool_ref(x, k, s)
    np.testing.assert_array_equal(out, rout.astype(np.float32))
    np.testing.assert_array_equal(argmax, rarg)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    assert_close(_maxpool_back(dout, argmax, x.shape), maxpool_ref_backward(dout, rarg, x.shape),
                 what="dx")


def test_maxpool_ties_take_first_max_and_nan_wins(isa, nthreads):
    x = np.zeros((1, 1, 5, 5), np.float32)      # every window all ties
    out, argmax = _maxpool(x, 3, 2)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 2], [10, 12]])
    x = np.array([[[[1, 3, 3], [3, 2, 0], [0, 0, 0]]]], np.float32)
    assert _maxpool(x, 3, 1)[1].item() == 1
    x[0, 0, 2, 1] = np.nan
    out, argmax = _maxpool(x, 3, 1)
    assert np.isnan(out.item()) and argmax.item() == 7
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    assert _maxpool(x, 2, 1)[1].item() == 0


@pytest.mark.parametrize("W", [3, 5, 33, 34, 35, 55, 67])
def test_maxpool_3s2_ties_and_nans_on_wide_rows(isa, W, rng):
    """AlexNet's 3/2 window across the SIMD path's 16-column chunks and their tails:
    quantised values make ties common; NaNs must win as in the reference."""
    x = rng.integers(0, 3, (2, 3, 7, W)).astype(np.float32)
    x[:, :, 1::5, 3::7] = np.nan                 # at most one NaN per window
    out, argmax = _maxpool(x, 3, 2)
    rout, rarg = maxpool_ref(x, 3, 2)
    np.testing.assert_array_equal(out, rout.astype(np.float32))
    np.testing.assert_array_equal(argmax, rarg)


def test_maxpool_overlapping_windows_accumulate_and_dx_overwrites():
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1.0                          # the max of all four 3x3/2 windows
    out, argmax = _maxpool(x, 3, 2)
    assert (argmax == 12).all()
    dx = _maxpool_back(np.ones_like(out), argmax, x.shape)
    expect = np.zeros_like(x)
    expect[0, 0, 2, 2] = 4.0
    np.testing.assert_array_equal(dx, expect)


def test_maxpool_backward_matches_finite_differences(rng):
    # Distinct, well-separated values so no max changes within the difference step.
    x = (rng.permutation(2 * 3 * 7 * 9).reshape(2, 3, 7, 9) * 0.1).astype(np.float32)
    out, argmax = _maxpool(x, 3, 2)
    r = rng.standard_normal(out.shape)
    g = numerical_grad(lambda v: float(np.sum(maxpool_ref(v, 3, 2)[0] * r)), x)
    assert_close(_maxpool_back(r.astype(np.float32), argmax, x.shape), g, what="dx")


def test_maxpool_argmax_none_skips_indices(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    out = np.empty((2, 3, 4, 4), np.float32)
    _C.maxpool2d_forward(out, None, x, 3, 2)
    np.testing.assert_array_equal(out, _maxpool(x, 3, 2)[0])


# ------------------------------------------------------- adaptive average pool

@pytest.mark.parametrize("case", AVG_CASES, ids=AVG_IDS)
def test_avgpool_matches_reference(case, nthreads, rng):
    N, C, H, W, OH, OW = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    assert_close(_avgpool(x, OH, OW), avgpool_ref(x, OH, OW), what="out")
    dout = rng.standard_normal((N, C, OH, OW)).astype(np.float32)
    assert_close(_avgpool_back(dout, x.shape), avgpool_ref_backward(dout, x.shape), what="dx")


def test_avgpool_identity_is_an_exact_copy(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(_avgpool(x, 6, 6), x)
    np.testing.assert_array_equal(_avgpool_back(x, x.shape), x)


def test_avgpool_backward_matches_finite_differences(rng):
    x = rng.standard_normal((2, 2, 7, 5))
    r = rng.standard_normal((2, 2, 3, 4))
    g = numerical_grad(lambda v: float(np.sum(avgpool_ref(v, 3, 4) * r)), x)
    assert_close(_avgpool_back(r.astype(np.float32), x.shape), g, what="dx")


# ---------------------------------------------------------- shared properties

def test_results_do_not_depend_on_thread_count(rng):
    x = rng.standard_normal((3, 5, 13, 11)).astype(np.float32)
    dm = rng.standard_normal((3, 5, 6, 5)).astype(np.float32)
    da = rng.standard_normal((3, 5, 6, 6)).astype(np.float32)
    old = ac.get_num_threads()
    got = []
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            out, argmax = _maxpool(x, 3, 2)
            got.append((out, argmax, _maxpool_back(dm, argmax, x.shape),
                        _avgpool(x, 6, 6), _avgpool_back(da, x.shape)))
    finally:
        ac.set_num_threads(old)
    for a1, a2 in zip(*got):
        np.testing.assert_array_equal(a1, a2)


def test_bad_arguments_raise(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    out = np.empty((2, 3, 4, 4), np.float32)
    am = np.empty((2, 3, 4, 4), np.int32)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 4, 4\), got \(2, 3, 3, 3\)"):
        _C.maxpool2d_forward(np.empty((2, 3, 3, 3), np.float32), am, x, 3, 2)
    with pytest.raises(TypeError, match="argmax must have dtype int32, got int64"):
        _C.maxpool2d_forward(out, am.astype(np.int64), x, 3, 2)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        _C.maxpool2d_forward(out, am, x.astype(np.float64), 3, 2)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _C.maxpool2d_forward(out, am, np.asfortranarray(x), 3, 2)
    with pytest.raises(ValueError, match="window 10 larger"):
        _C.maxpool2d_forward(out, am, x, 10, 2)
    with pytest.raises(ValueError, match="argmax has 1 entries outside"):
        am[:] = 0
        am[1, 2, 3, 3] = 81
        _C.maxpool2d_backward(np.empty_like(x), out, am)
    with pytest.raises(ValueError, match="argmax must have shape"):
        _C.maxpool2d_backward(np.empty_like(x), out, am[:1].copy())
    with pytest.raises(ValueError, match="dout must have shape"):
        _C.maxpool2d_backward(np.empty_like(x), out[:, :2].copy(), am)
    with pytest.raises(ValueError, match="out must have shape"):
        _C.adaptive_avgpool2d_forward(np.empty((2, 2, 6, 6), np.float32), x)
    with pytest.raises(ValueError, match="x must be 4-D"):
        _C.adaptive_avgpool2d_forward(out, x[0])
    with pytest.raises(ValueError, match="dout must have shape"):
        _C.adaptive_avgpool2d_backward(np.empty_like(x), np.empty((1, 3, 6, 6), np.float32))
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is an output and must be writeable"):
        _C.maxpool2d_forward(ro, am, x, 3, 2)
    with pytest.raises(ValueError, match="out and x must not overlap"):
        _C.adaptive_avgpool2d_forward(x, x)


# ----------------------------------------------------------------------- torch

@pytest.mark.parametrize("hw", [(13, 13), (27, 27), (55, 55), (8, 11)])
def test_maxpool_matches_torch(hw, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(tx, 3, 2, return_indices=True)
    dout = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dout))
    out, argmax = _maxpool(x, 3, 2)
    np.testing.assert_array_equal(out, ty.detach().numpy())
    np.testing.assert_array_equal(argmax, tidx.numpy())
    assert_close(_maxpool_back(dout, argmax, x.shape), tx.grad.numpy(), what="dx")


@pytest.mark.parametrize("h", [13, 8, 6, 5])
def test_avgpool_matches_torch(h, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, h, h)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, (6, 6))
    dout = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dout))
    assert_close(_avgpool(x, 6, 6), ty.detach().numpy(), what="out")
    assert_close(_avgpool_back(dout, x.shape), tx.grad.numpy(), what="dx")
