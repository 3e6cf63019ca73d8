"""LRN across channels (csrc/lrn.c): the paper's formula, alpha not divided by size."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from gradcheck import assert_close, numerical_grad
from references import lrn_grad_ref, lrn_ref


def run_forward(x, size, alpha, beta, k):
    out = np.empty_like(x)
    scale = np.empty_like(x)
    _C.lrn_forward(out, scale, x, size, alpha, beta, k)
    return out, scale


def run_backward(x, dout, size, alpha, beta, k):
    out, scale = run_forward(x, size, alpha, beta, k)
    dx = np.full_like(x, np.nan)
    _C.lrn_backward(dx, dout, x, out, scale, size, alpha, beta, k)
    return dx


def make_x(rng, shape, amp=3.0):
    return (amp * rng.standard_normal(shape)).astype(np.float32)


# C = 1, 2, 3, 5, 7, 96; H*W odd, not multiples of 16; small batches split planes into tiles,
# batches >= 16 take whole planes, planes over 4096 positions are split in any case
SHAPES = [(2, 1, 3, 3), (1, 2, 5, 7), (3, 3, 1, 1), (2, 5, 4, 5), (1, 7, 23, 29),
          (2, 96, 3, 5), (1, 16, 33, 17), (17, 2, 5, 5), (16, 3, 67, 67)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [1, 3, 5, 4])
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_forward_matches_formula(isa, nthreads, rng, shape, size, beta):
    x = make_x(rng, shape)
    alpha, k = 2e-2, 2.0
    out, scale = run_forward(x, size, alpha, beta, k)
    ref_out, ref_scale = lrn_ref(x, size, alpha, beta, k)
    assert_close(scale, ref_scale, what="scale")
    assert_close(out, ref_out, what="out")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [1, 3, 5, 4])
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_backward_matches_analytic_gradient(isa, nthreads, rng, shape, size, beta):
    x = make_x(rng, shape)
    dout = rng.standard_normal(shape).astype(np.float32)
    alpha, k = 2e-2, 2.0
    dx = run_backward(x, dout, size, alpha, beta, k)
    assert_close(dx, lrn_grad_ref(x, dout, size, alpha, beta, k), what="dx")


@pytest.mark.parametrize("shape,size", [((1, 5, 2, 3), 5), ((2, 3, 1, 3), 3), ((1, 7, 1, 2), 4),
                                        ((1, 4, 1, 3), 1), ((1, 3, 2, 1), 7)])
@pytest.mark.parametrize("beta", [0.75, 1.3])
def test_backward_matches_finite_differences(isa, rng, shape, size, beta):
    x = make_x(rng, shape, amp=2.0)
    r = rng.standard_normal(shape)
    alpha, k = 0.1, 1.5
    num = numerical_grad(lambda z: (lrn_ref(z, size, alpha, beta, k)[0] * r).sum(), x)
    dx = run_backward(x, r.astype(np.float32), size, alpha, beta, k)
    assert_close(dx, num, what="dx vs finite differences")
    assert_close(lrn_grad_ref(x, r, size, alpha, beta, k), num, rtol=1e-7, atol=1e-8,
                 what="analytic reference vs finite differences")


def test_paper_constants_and_large_values(isa, rng):
    # AlexNet's layer: n=5, alpha=1e-4, beta=0.75, k=2, on post-ReLU activations of all scales
    x = np.maximum(make_x(rng, (2, 96, 5, 7), amp=40.0), 0)
    x[0, 10:20] *= 100
    out, scale = run_forward(x, 5, 1e-4, 0.75, 2.0)
    ref_out, ref_scale = lrn_ref(x, 5, 1e-4, 0.75, 2.0)
    assert_close(out, ref_out, what="out")
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-6)   # elementwise, not just to max
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx = run_backward(x, dout, 5, 1e-4, 0.75, 2.0)
    assert_close(dx, lrn_grad_ref(x, dout, 5, 1e-4, 0.75, 2.0), what="dx")


@pytest.mark.parametrize("beta", [0.75, 0.6])
@pytest.mark.parametrize("shape", [(3, 7, 27, 27), (16, 5, 9, 11)])
def test_threads_give_identical_results(isa, rng, beta, shape):
    x = make_x(rng, shape)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    old = ac.get_num_threads()
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            out, scale = run_forward(x, 5, 1e-2, beta, 2.0)
            res.append((out, scale, run_backward(x, dout, 5, 1e-2, beta, 2.0)))
    finally:
        ac.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("alpha", [1e-4, 1e-2])
def test_matches_torch(isa, rng, alpha):
    torch = pytest.importorskip("torch")
    x = np.maximum(make_x(rng, (2, 96, 13, 11), amp=20.0), 0)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.LocalResponseNorm(5, alpha * 5, 0.75, 2.0)(xt)
    yt.backward(torch.tensor(dout, dtype=torch.float64))
    out, _ = run_forward(x, 5, alpha, 0.75, 2.0)
    assert_close(out, yt.detach().numpy(), what="out vs torch")
    dx = run_backward(x, dout, 5, alpha, 0.75, 2.0)
    assert_close(dx, xt.grad.numpy(), what="dx vs torch")


def test_bad_arguments_are_rejected():
    x = np.ones((1, 3, 2, 2), np.float32)
    out, scale = np.empty_like(x), np.empty_like(x)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        _C.lrn_forward(out, scale, x.astype(np.float64), 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.lrn_forward(out, scale, np.ones((1, 3, 2, 4), np.float32)[..., ::2], 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="out must have shape"):
        _C.lrn_forward(out[:, :2], scale, x, 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="4-D"):
        _C.lrn_forward(out, scale, x[0], 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="size must be >= 1"):
        _C.lrn_forward(out, scale, x, 0, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="must not overlap"):
        _C.lrn_forward(x, scale, x, 5, 1e-4, 0.75, 2.0)
    _C.lrn_forward(out, scale, x, 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="dout must have shape"):
        _C.lrn_backward(np.empty_like(x), x[:, :1], x, out, scale, 5, 1e-4, 0.75, 2.0)
