"""bf16 convolutions (forward, packed inference forward, input and weight gradients,
Winograd) and linear layers against float64 PyTorch of their bf16-rounded operands, on
every bf16 path (the portable reference always; vdpbf16ps where the CPU has AVX512_BF16),
1 and 2 threads, bitwise equal across thread counts. Without PyTorch only the comparisons
with it skip (marked NEEDS_TORCH, with the reason)."""

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from alexnet_cpu.layers import Linear

from test_bf16 import BF16_PATHS, NEEDS_TORCH, U32, UBF, torch

F = torch.nn.functional if torch is not None else None


@pytest.fixture
def bf16(isa):
    """bf16 as the default precision on the path of conftest's `isa` (parametrised with
    BF16_PATHS): the calls below pass no context, so they take it."""
    _C.set_precision("bf16")
    yield isa
    _C.set_precision("fp32")


def t64(a):
    return torch.from_numpy(np.asarray(a, np.float64)).requires_grad_(True)


def bf(a):
    return _C.bf16_round(a)


def assert_tight(got, ref, scale, K, what):
    """Operands rounded identically, products exact in fp32: only fp32 summation error is
    left, at most (K + 3) u32 (|A||B| + |C|) in the worst case (K adds, the epilogue)."""
    err = np.abs(got.astype(np.float64) - ref)
    bound = (K + 3) * U32 * scale + 1e-30
    assert np.all(err <= bound), f"{what}: {float((err / bound).max()):.3g} x the bound"


# (N, C, H, O, k, stride, pad, groups): odd sizes, tails of every tile, grouped, strided
CONVS = [(2, 5, 11, 7, 3, 1, 1, 1), (3, 6, 13, 10, 5, 2, 2, 2), (2, 3, 23, 9, 11, 4, 2, 1),
         (1, 4, 9, 6, 1, 1, 0, 1), (2, 8, 7, 12, 3, 1, 1, 4)]


def conv_case(rng, N, C, H, O, k, s, p, g):
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((O, C // g, k, k)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    OH = (H + 2 * p - k) // s + 1
    dy = rng.standard_normal((N, O, OH, OH)).astype(np.float32)
    return x, w, b, dy


@NEEDS_TORCH
@pytest.mark.parametrize("case", CONVS)
@BF16_PATHS
def test_conv_forward_and_backward(bf16, nthreads, rng, case):
    N, C, H, O, k, s, p, g = case
    x, w, b, dy = conv_case(rng, *case)
    OH = dy.shape[2]
    # reference: float64 on bf16(x), bf16(w), bf16(dy); the bias stays fp32 (an epilogue)
    X, Wt, DY = t64(bf(x)), t64(bf(w)), t64(bf(dy))
    ref = F.conv2d(X, Wt, t64(b), s, p, 1, g)
    (ref * DY).sum().backward()
    aX, aW = t64(np.abs(bf(x))), t64(np.abs(bf(w)))
    scale = F.conv2d(aX, aW, t64(np.abs(b)), s, p, 1, g)
    (scale * t64(np.abs(bf(dy)))).sum().backward()
    Kf = C // g * k * k

    out = np.empty((N, O, OH, OH), np.float32)
    _C.conv2d_forward(out, x, w, b, s, p, g)
    assert_tight(out, ref.detach().numpy(), scale.detach().numpy(), Kf, "forward")
    packed = _C.conv2d_pack_weights(w, b, g)
    out2 = np.empty_like(out)
    _C.conv2d_forward_packed(out2, x, packed, w.shape, s, p, g)
    assert np.array_equal(out, out2)

    dx = np.empty_like(x)
    dw0 = rng.standard_normal(w.shape).astype(np.float32)
    dw, db = dw0.copy(), np.zeros(O, np.float32)
    _C.conv2d_backward(dx, dw, db, dy, x, w, s, p, g)
    assert_tight(dx, X.grad.numpy(), aX.grad.numpy(), O // g * k * k, "dx")
    assert_tight(dw, dw0 + Wt.grad.numpy(), np.abs(dw0) + aW.grad.numpy(), N * OH * OH, "dw")
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)  # fp32 sums


@BF16_PATHS
def test_conv_bitwise_across_threads(bf16, rng):
    old = ac.get_num_threads()
    try:
        for case in CONVS[:3] + [(4, 32, 13, 32, 3, 1, 1, 1)]:
            x, w, b, dy = conv_case(rng, *case)
            res = []
            for nt in (1, 2):
                ac.set_num_threads(nt)
                out = np.empty(dy.shape, np.float32)
                _C.conv2d_forward(out, x, w, b, case[5], case[6], case[7])
                dx, dw = np.empty_like(x), np.zeros_like(w)
                _C.conv2d_backward(dx, dw, None, dy, x, w, case[5], case[6], case[7])
                res.append((out, dx, dw))
            for a, c in zip(*res):
                assert np.array_equal(a, c)
    finally:
        ac.set_num_threads(old)


@BF16_PATHS
def test_conv_bf16_differs_from_fp32(isa, rng):
    """The tight checks above would pass an fp32 conv on pre-rounded data: this one would not."""
    x, w, b, dy = conv_case(rng, *CONVS[0])
    outs = []
    for prec in ("fp32", "bf16"):
        out = np.empty(dy.shape, np.float32)
        _C.conv2d_forward(out, x, w, b, 1, 1, 1, ctx=_C.Context(precision=prec))
        outs.append(out)
    assert np.abs(outs[0] - outs[1]).max() > 1e-3


@NEEDS_TORCH
@pytest.mark.parametrize("N,C,H,O,g", [(2, 32, 13, 48, 1), (1, 32, 9, 32, 2)])
@BF16_PATHS
def test_winograd_bf16_error(bf16, nthreads, rng, conv_winograd, N, C, H, O, g):
    """Winograd rounds its transformed operands (U = G w G^T, V = B^T x B) to bf16, not w and
    x: no tight reference. Its error against the exact (float64) convolution of the fp32
    operands measured 1.65x that of the direct bf16 convolution (3.9e-3 vs 2.35e-3 relative,
    3x3 layers of 64..384 channels): accepted, and held here to 2.5x the direct one."""
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C // g, 3, 3)) / np.sqrt(9 * C // g)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    ref = F.conv2d(t64(x), t64(w), t64(b), 1, 1, 1, g).detach().numpy()
    err = {}
    for wino in ("off", "on"):
        conv_winograd(wino)
        out = np.empty(ref.shape, np.float32)
        _C.conv2d_forward(out, x, w, b, 1, 1, g)
        err[wino] = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    packed = _C.conv2d_pack_weights(w, b, g)  # the packed forward takes Winograd at any batch
    out2 = np.empty(ref.shape, np.float32)
    _C.conv2d_forward_packed(out2, x, packed, w.shape, 1, 1, g)
    assert np.array_equal(out2, out)
    assert 1e-4 < err["off"] < 4 * UBF and err["on"] < 2.5 * err["off"], err


@pytest.mark.parametrize("batch", [1, 3, 9, 130])
@BF16_PATHS
def test_linear_forward_backward(bf16, nthreads, rng, batch):
    lin = Linear(37, 21)
    lin.params["weight"][...] = rng.standard_normal((21, 37))
    lin.params["bias"][...] = rng.standard_normal(21)
    x = rng.standard_normal((batch, 37)).astype(np.float32)
    dy = rng.standard_normal((batch, 21)).astype(np.float32)
    y = lin.forward(x).copy()
    dx = lin.backward(dy)
    W, b = lin.params["weight"], lin.params["bias"]
    bx, bw, bdy = (bf(a).astype(np.float64) for a in (x, W, dy))
    assert_tight(y, bx @ bw.T + b, np.abs(bx) @ np.abs(bw.T) + np.abs(b), 37, "linear y")
    assert_tight(dx, bdy @ bw, np.abs(bdy) @ np.abs(bw), 21, "linear dx")
    assert_tight(lin.grads["weight"], bdy.T @ bx, np.abs(bdy.T) @ np.abs(bx), batch, "dW")
    lin.training = False  # weights packed once (sgemm_packed_b): the training forward's bits
    assert np.array_equal(lin.forward(x), y)
    assert not lin.params["weight"].flags.writeable


def test_packed_b_refused_for_another_precision(rng):
    """Weights packed in fp32 are not read as bf16 panels (nor the other way round)."""
    w = rng.standard_normal((70, 33)).astype(np.float32)
    x = rng.standard_normal((3, 33)).astype(np.float32)
    out = np.empty((3, 70), np.float32)
    fp32, bf16 = _C.Context(isa="generic"), _C.Context(isa="generic", precision="bf16")
    packed = _C.sgemm_pack_b(w, trans_b=True, ctx=fp32)  # the generic path has bf16 anywhere
    np.testing.assert_allclose(_C.sgemm_packed_b(x, packed, 70, out, ctx=fp32), x @ w.T,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pack again"):
        _C.sgemm_packed_b(x, packed, 70, out, ctx=bf16)
