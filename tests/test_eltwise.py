"""Element-wise kernels (csrc/eltwise.c): ReLU, inverted dropout, bias add and bias gradient."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from gradcheck import assert_close, numerical_grad

# odd sizes and vector tails; the last ones are big enough to run on 2 threads
SHAPES = [(1,), (7,), (3, 5), (2, 3, 5, 7), (17, 33), (1, 96, 55, 55), (128, 4097)]


def with_threads(n, f):
    old = ac.get_num_threads()
    ac.set_num_threads(n)
    try:
        return f()
    finally:
        ac.set_num_threads(old)


# ---------------------------------------------------------------- ReLU

@pytest.mark.parametrize("shape", SHAPES)
def test_relu_forward_and_in_place(nthreads, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    out = np.full_like(x, np.nan)
    _C.relu_forward(out, x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    y = x.copy()
    _C.relu_forward(y, y)
    np.testing.assert_array_equal(y, out)


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_backward_and_in_place(nthreads, rng, shape):
    y = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    dx = np.full_like(y, np.nan)
    _C.relu_backward(dx, dout, y)
    np.testing.assert_array_equal(dx, np.where(y > 0, dout, 0))
    d2 = dout.copy()
    _C.relu_backward(d2, d2, y)
    np.testing.assert_array_equal(d2, dx)


def test_relu_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 0.05] = 0.5                  # stay away from the kink
    r = rng.standard_normal(x.shape)
    num = numerical_grad(lambda z: (np.maximum(z, 0) * r).sum(), x, eps=1e-3)
    y = np.empty(x.shape, np.float32)
    _C.relu_forward(y, x.astype(np.float32))
    dx = np.empty_like(y)
    _C.relu_backward(dx, r.astype(np.float32), y)
    assert_close(dx, num)


def test_relu_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 9, 5)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(dout))
    y, dx = np.empty_like(x), np.empty_like(x)
    _C.relu_forward(y, x)
    _C.relu_backward(dx, dout, y)
    assert_close(y, yt.detach().numpy())
    assert_close(dx, xt.grad.numpy())


# ---------------------------------------------------------------- dropout

def dropout(x, p, seed):
    out = np.full_like(x, np.nan)
    mask = np.full(x.shape, 7, np.uint8)
    _C.dropout_forward(out, mask, x, p, seed)
    return out, mask


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.5, 0.1])
def test_dropout_forward_is_x_times_mask_over_keep(nthreads, rng, shape, p):
    x = rng.standard_normal(shape).astype(np.float32)
    out, mask = dropout(x, p, 42)
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(out, x * mask.astype(np.float32) * np.float32(1 / (1 - p)))


def test_dropout_mask_same_seed_same_mask_any_threads(rng):
    x = rng.standard_normal((64, 9216)).astype(np.float32)
    o1, m1 = with_threads(1, lambda: dropout(x, 0.5, 1234))
    o2, m2 = with_threads(2, lambda: dropout(x, 0.5, 1234))
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(o1, o2)
    _, m3 = dropout(x, 0.5, 1235)
    assert (m3 != m1).mean() > 0.4           # a different seed gives an unrelated mask
    _, m4 = dropout(x[:1000].copy(), 0.5, 1234)
    np.testing.assert_array_equal(m4, m1[:1000])   # a function of (seed, index) only


@pytest.mark.parametrize("p", [0.5, 0.2, 0.9])
def test_dropout_statistics(rng, p):
    n = 1 << 20
    x = np.ones(n, np.float32)
    out, mask = dropout(x, p, 7)
    keep = mask.mean()
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(keep - (1 - p)) < 6 * sd
    assert abs(out.mean() - 1.0) < 6 * sd / (1 - p)          # inverted dropout keeps the mean
    # neighbours are independent: P(both kept) = (1 - p)^2
    both = (mask[:-1] & mask[1:]).mean()
    assert abs(both - (1 - p) ** 2) < 8 * sd
    # every byte position of the index sees the same rate (no striping)
    for stride in (2, 8, 64):
        rates = mask.reshape(-1, stride).mean(axis=0)
        assert abs(rates - (1 - p)).max() < 8 * sd * np.sqrt(stride)


def test_dropout_p0_is_identity_and_p1_drops_all(rng):
    x = rng.standard_normal((5, 301)).astype(np.float32)
    out, mask = dropout(x, 0.0, 3)
    np.testing.assert_array_equal(out, x)
    assert mask.all()
    out, mask = dropout(x, 1.0, 3)
    assert not out.any() and not mask.any()
    dx = np.full_like(x, np.nan)
    _C.dropout_backward(dx, x, mask, 1.0)
    assert not dx.any()


@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_backward_and_in_place(nthreads, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    _, mask = dropout(x, 0.3, 9)
    dout = rng.standard_normal(shape).astype(np.float32)
    dx = np.full_like(x, np.nan)
    _C.dropout_backward(dx, dout, mask, 0.3)
    np.testing.assert_array_equal(dx, dout * mask.astype(np.float32) * np.float32(1 / 0.7))
    d2 = dout.copy()
    _C.dropout_backward(d2, d2, mask, 0.3)
    np.testing.assert_array_equal(d2, dx)


def test_dropout_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((4, 6))
    _, mask = dropout(x.astype(np.float32), 0.5, 11)
    r = rng.standard_normal(x.shape)
    num = numerical_grad(lambda z: (z * mask / 0.5 * r).sum(), x)
    dx = np.empty(x.shape, np.float32)
    _C.dropout_backward(dx, r.astype(np.float32), mask, 0.5)
    assert_close(dx, num)


def test_dropout_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="p must be in"):
        _C.dropout_forward(np.empty_like(x), np.empty(x.shape, np.uint8), x, 1.5, 0)
    with pytest.raises(TypeError, match="mask must have dtype uint8"):
        _C.dropout_forward(np.empty_like(x), np.empty(x.shape, bool), x, 0.5, 0)
    with pytest.raises(ValueError, match="mask must have shape"):
        _C.dropout_backward(np.empty_like(x), x, np.empty((3, 2), np.uint8), 0.5)


# ---------------------------------------------------------------- bias

@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (128, 4096), (7, 300), (2, 3, 5),
                                   (2, 5, 7, 3), (4, 96, 55, 55), (3, 17, 1, 1)])
def test_bias_add(nthreads, rng, shape):
    out = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(shape[1]).astype(np.float32)
    ref = out + bias.reshape((1, -1) + (1,) * (len(shape) - 2))
    _C.bias_add(out, bias)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (128, 4096), (7, 300), (2, 3, 5),
                                   (2, 5, 7, 3), (4, 96, 55, 55), (3, 17, 1, 1)])
def test_bias_grad_accumulates_and_is_thread_independent(rng, shape):
    dout = rng.standard_normal(shape).astype(np.float32)
    init = rng.standard_normal(shape[1]).astype(np.float32)
    ref = init + dout.astype(np.float64).sum(axis=tuple(i for i in range(len(shape)) if i != 1))
    res = []
    for nt in (1, 2):
        db = init.copy()
        with_threads(nt, lambda: _C.bias_grad(db, dout))
        res.append(db)
    np.testing.assert_array_equal(res[0], res[1])
    np.testing.assert_allclose(res[0], ref, rtol=1e-5, atol=1e-5)


def test_bias_bad_arguments():
    out = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="bias must have shape"):
        _C.bias_add(out, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="at least 2 dims"):
        _C.bias_add(np.ones(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="writeable"):
        ro = np.ones(3, np.float32)
        ro.flags.writeable = False
        _C.bias_grad(ro, out)
