"""Softmax and softmax cross-entropy (csrc/loss.c)."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from gradcheck import assert_close, numerical_grad


def log_softmax_ref(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ce_ref(z, labels):
    return -log_softmax_ref(z)[np.arange(len(labels)), labels].mean()


def ce_grad_ref(z, labels):
    p = np.exp(log_softmax_ref(z))
    p[np.arange(len(labels)), labels] -= 1
    return p / len(labels)


def run_ce(z, labels, with_grad=True):
    d = np.full_like(z, np.nan) if with_grad else None
    loss = _C.softmax_cross_entropy(z, labels, d)
    return loss, d


SHAPES = [(1, 1), (1, 5), (3, 7), (5, 10), (128, 1000), (2, 33), (64, 1001)]


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax(nthreads, rng, shape):
    z = (3 * rng.standard_normal(shape)).astype(np.float32)
    out = np.full_like(z, np.nan)
    _C.softmax(out, z)
    ref = np.exp(log_softmax_ref(z))
    assert_close(out, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    _C.softmax(z, z)                           # in place
    np.testing.assert_array_equal(z, out)


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_value_and_gradient(nthreads, rng, shape):
    z = (3 * rng.standard_normal(shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss, d = run_ce(z, labels)
    assert isinstance(loss, float)
    assert abs(loss - ce_ref(z, labels)) <= 1e-5 * max(1.0, abs(ce_ref(z, labels)))
    assert_close(d, ce_grad_ref(z, labels), rtol=1e-5, atol=1e-7)
    loss2, _ = run_ce(z, labels, with_grad=False)
    assert loss2 == loss


def test_cross_entropy_gradient_matches_finite_differences(rng):
    z = rng.standard_normal((4, 6))
    labels = np.array([0, 5, 2, 2], np.int64)
    num = numerical_grad(lambda v: ce_ref(v, labels), z)
    _, d = run_ce(z.astype(np.float32), labels)
    assert_close(d, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scale,offset", [(1e4, 0.0), (1.0, 1e4), (1.0, -1e4), (3e4, -2e4)])
def test_huge_logits_are_stable(rng, scale, offset):
    z = (scale * rng.standard_normal((16, 100)) + offset).astype(np.float32)
    labels = rng.integers(0, 100, 16).astype(np.int64)
    loss, d = run_ce(z, labels)
    assert np.isfinite(loss) and np.isfinite(d).all()
    ref = ce_ref(z, labels)
    assert abs(loss - ref) <= 1e-5 * max(1.0, abs(ref))
    assert_close(d, ce_grad_ref(z, labels), rtol=1e-5, atol=1e-7)
    out = np.empty_like(z)
    _C.softmax(out, z)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_threads_give_identical_results(rng):
    z = (3 * rng.standard_normal((128, 1000))).astype(np.float32)
    labels = rng.integers(0, 1000, 128).astype(np.int64)
    res = []
    old = ac.get_num_threads()
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            loss, d = run_ce(z, labels)
            s = np.empty_like(z)
            _C.softmax(s, z)
            res.append((loss, d, s))
    finally:
        ac.set_num_threads(old)
    assert res[0][0] == res[1][0]
    np.testing.assert_array_equal(res[0][1], res[1][1])
    np.testing.assert_array_equal(res[0][2], res[1][2])


def test_bad_labels_are_rejected():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels\[1\] = 4"):
        _C.softmax_cross_entropy(z, np.array([0, 4, 1], np.int64), None)
    with pytest.raises(ValueError, match=r"labels\[2\] = -1"):
        _C.softmax_cross_entropy(z, np.array([0, 3, -1], np.int64), np.empty_like(z))
    with pytest.raises(TypeError, match="labels must have dtype int64"):
        _C.softmax_cross_entropy(z, np.array([0, 1, 1], np.int32), None)
    with pytest.raises(ValueError, match="labels must have shape"):
        _C.softmax_cross_entropy(z, np.array([0, 1], np.int64), None)
    with pytest.raises(ValueError, match="dlogits must have shape"):
        _C.softmax_cross_entropy(z, np.array([0, 1, 1], np.int64), np.empty((3, 5), np.float32))


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    z = (4 * rng.standard_normal((32, 1000))).astype(np.float32)
    labels = rng.integers(0, 1000, 32).astype(np.int64)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(labels))
    lt.backward()
    loss, d = run_ce(z, labels)
    assert abs(loss - lt.item()) <= 1e-4 * abs(lt.item())
    assert_close(d, zt.grad.numpy())
    out = np.empty_like(z)
    _C.softmax(out, z)
    assert_close(out, torch.softmax(zt, 1).detach().numpy())
