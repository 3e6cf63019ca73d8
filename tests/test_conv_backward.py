"""conv2d_backward's channel-last weight gradient, mostly on strided shapes (conv1): A panels
cut across kernel rows, panel tails, groups, slots, threaded gemms, the fused bias gradient;
vs the float64 reference, across thread counts and ISAs, with a NaN-filled workspace (also
stride 1: the zero borders), and vs torch."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from gradcheck import assert_close
from references import conv_ref_backward
from test_conv import _backward, _make

# (N, C, H, W, O, KH, KW, stride, pad, groups), all strided
CASES = [
    (11, 3, 35, 35, 17, 11, 11, 4, 2, 1),  # more images than slots; Kg 363, rows of 33
    (9, 4, 23, 19, 10, 5, 5, 2, 1, 2),     # groups 2: Cg 2, Og 5, Kg 50
    (2, 1, 100, 100, 9, 3, 3, 2, 1, 1),    # 2500 pixels: many depth blocks
    (3, 1, 10, 40, 2, 2, 33, 2, 0, 1),     # kernel rows of 33 floats, pad 0
    (1, 2, 7, 7, 3, 2, 2, 3, 1, 1),        # N 1: one slot, threaded gemm
    (5, 6, 12, 13, 9, 4, 3, 3, 2, 3),      # groups 3, non-square kernel, stride 3
]
IDS = ["N{}C{}H{}W{}O{}k{}x{}s{}p{}g{}".format(*c) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weight_and_bias_gradients_match_reference(case, isa, nthreads, rng):
    x, w, b, dout, hp = _make(rng, case)
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    dw0 = rng.standard_normal(w.shape).astype(np.float32)
    db0 = rng.standard_normal(w.shape[0]).astype(np.float32)
    dx, dw, db = _backward(dout, x, w, hp, dw0=dw0, db0=db0)
    assert_close(dw, dw0 + rdw, what="dweight (accumulated)")
    assert_close(db, db0 + rdb, what="dbias (accumulated)")
    assert_close(dx, rdx, what="dx")
    _, dw, db = _backward(dout, x, w, hp, want_dx=False, want_db=False)
    assert db is None
    assert_close(dw, rdw, what="dweight without dbias")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_bits_for_any_thread_count_and_with_or_without_dbias(case, isa, rng):
    x, w, b, dout, hp = _make(rng, case)
    old = ac.get_num_threads()
    got = []
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            got.append(_backward(dout, x, w, hp, want_dx=False))
            got.append(_backward(dout, x, w, hp, want_dx=False, want_db=False))
    finally:
        ac.set_num_threads(old)
    for k in (1, 2, 3):
        np.testing.assert_array_equal(got[0][1], got[k][1], err_msg=f"dweight, run {k}")
    np.testing.assert_array_equal(got[0][2], got[2][2], err_msg="dbias")


@pytest.mark.parametrize("O", [64, 96])
def test_conv1_shapes_match_torch(O, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, dout, hp = _make(rng, (4, 3, 67, 67, O, 11, 11, 4, 2, 1))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    F.conv2d(tx, tw, tb, stride=4, padding=2).backward(torch.tensor(dout))
    _, dw, db = _backward(dout, x, w, hp, want_dx=False)
    assert_close(dw, tw.grad.numpy(), rtol=1e-4, what="dweight vs torch")
    assert_close(db, tb.grad.numpy(), rtol=1e-4, what="dbias vs torch")


STRIDE1 = [(3, 4, 13, 13, 6, 3, 3, 1, 1, 2), (10, 2, 5, 6, 3, 3, 3, 1, 1, 1),
           (1, 3, 5, 7, 3, 1, 1, 1, 2, 1), (2, 3, 9, 8, 5, 5, 5, 1, 2, 1)]


@pytest.mark.parametrize("case", CASES + STRIDE1,
                         ids=IDS + ["N{}C{}H{}W{}O{}k{}x{}s{}p{}g{}".format(*c) for c in STRIDE1])
def test_scratch_contents_never_leak(case, isa, nthreads, rng):
    """A workspace full of NaN: everything read from it must have been written first."""
    x, w, b, dout, hp = _make(rng, case)
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    dw, db = np.zeros_like(w), np.zeros(w.shape[0], np.float32)
    need = _C.conv2d_backward(None, dw, db, dout, x, w, *hp).size
    dw[:], db[:] = 0, 0
    _C.conv2d_backward(None, dw, db, dout, x, w, *hp, work=np.full(need, np.nan, np.float32))
    assert_close(dw, rdw, what="dweight")
    assert_close(db, rdb, what="dbias")
