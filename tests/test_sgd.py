"""SGD update (csrc/sgd.c): v = m v - wd lr w - lr g; w = w + v (the AlexNet paper's form)."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 100003])
@pytest.mark.parametrize("momentum,wd", [(0.9, 5e-4), (0.0, 5e-4), (0.9, 0.0), (0.0, 0.0)])
def test_matches_formula_over_steps(nthreads, rng, n, momentum, wd):
    w = rng.standard_normal(n).astype(np.float32)
    v = np.zeros(n, np.float32)
    w64, v64 = w.astype(np.float64), v.astype(np.float64)
    for step, lr in enumerate([0.01, 0.01, 0.005, 0.001, 0.02]):
        g = rng.standard_normal(n).astype(np.float32)
        v64 = momentum * v64 - wd * lr * w64 - lr * g
        w64 = w64 + v64
        _C.sgd_update(w, g, v, lr, momentum, wd)
        assert not g.any(), "the gradient is consumed (zeroed)"
        np.testing.assert_allclose(v, v64, rtol=1e-4, atol=1e-7, err_msg=f"v, step {step}")
        np.testing.assert_allclose(w, w64, rtol=1e-4, atol=1e-6, err_msg=f"w, step {step}")


def test_any_shapes_of_equal_size(rng):
    w = rng.standard_normal((3, 5, 7)).astype(np.float32)
    g = rng.standard_normal(105).astype(np.float32)
    v = rng.standard_normal((105, 1)).astype(np.float32)
    ref_v = 0.9 * v.ravel() - 0.1 * 0.01 * w.ravel() - 0.1 * g
    ref_w = w.ravel() + ref_v
    _C.sgd_update(w, g, v, 0.1, 0.9, 0.01)
    np.testing.assert_allclose(v.ravel(), ref_v, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.ravel(), ref_w, rtol=1e-5, atol=1e-7)


def test_threads_give_identical_results(rng):
    n = 1 << 18
    w0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    res = []
    old = ac.get_num_threads()
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            w, v = w0.copy(), np.full(n, 0.1, np.float32)
            _C.sgd_update(w, g.copy(), v, 0.01, 0.9, 5e-4)
            res.append((w, v))
    finally:
        ac.set_num_threads(old)
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])


def test_matches_torch_sgd_for_constant_lr(rng):
    # torch: buf = m buf + g + wd w; w -= lr buf.  Ours keeps v = -lr buf; equal for constant lr.
    torch = pytest.importorskip("torch")
    lr, m, wd = 0.05, 0.9, 5e-4
    w = rng.standard_normal((4, 6)).astype(np.float32)
    p = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr, momentum=m, weight_decay=wd)
    v = np.zeros_like(w)
    for _ in range(6):
        g = rng.standard_normal(w.shape).astype(np.float32)
        p.grad = torch.tensor(g.copy(), dtype=torch.float64)
        opt.step()
        _C.sgd_update(w, g, v, lr, m, wd)
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(v, -lr * opt.state[p]["momentum_buffer"].numpy(),
                                   rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_rejected():
    w = np.ones(10, np.float32)
    with pytest.raises(ValueError, match="same size"):
        _C.sgd_update(w, np.ones(9, np.float32), np.zeros(10, np.float32), 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="must not overlap"):
        _C.sgd_update(w, w, np.zeros(10, np.float32), 0.1, 0.9, 0.0)
    with pytest.raises(TypeError, match="g must have dtype float32"):
        _C.sgd_update(w, np.ones(10), np.zeros(10, np.float32), 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.sgd_update(w, np.ones(20, np.float32)[::2], np.zeros(10, np.float32), 0.1, 0.9, 0.0)
