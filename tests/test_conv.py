"""conv2d_forward / conv2d_backward vs a float64 NumPy reference, finite differences,
thread and ISA independence, and torch.nn.functional.conv2d."""
import numpy as np
import pytest

from alexnet_cpu import _C
from gradcheck import assert_close, numerical_grad
from references import conv_ref, conv_ref_backward

# (N, C, H, W, O, KH, KW, stride, pad, groups)
CASES = [
    (1, 1, 7, 7, 1, 1, 1, 1, 0, 1),
    (3, 3, 7, 13, 5, 3, 3, 1, 1, 1),
    (2, 4, 13, 7, 6, 3, 3, 2, 1, 2),
    (3, 5, 11, 11, 3, 5, 5, 1, 2, 1),
    (1, 6, 13, 13, 9, 3, 5, 2, 2, 3),
    (2, 3, 31, 31, 5, 11, 11, 4, 2, 1),     # AlexNet conv1-like: 11x11 s4 p2
    (1, 4, 7, 7, 6, 3, 3, 4, 0, 2),
    (3, 1, 7, 13, 1, 2, 3, 3, 1, 1),
    (2, 2, 5, 5, 4, 5, 5, 1, 0, 2),         # 1x1 output
    (1, 3, 5, 7, 3, 1, 1, 1, 2, 1),         # border rows entirely in the padding
    (10, 2, 5, 6, 3, 3, 3, 1, 1, 1),        # more images than weight-gradient slots
    (3, 4, 13, 13, 6, 3, 3, 1, 1, 2),       # AlexNet conv4-like: 3x3 p1, groups 2
    # Column matrices big enough to be cut into column blocks:
    (2, 3, 127, 127, 4, 11, 11, 4, 2, 1),   # conv1-like, blocks end mid-row
    (1, 1, 171, 173, 2, 3, 3, 1, 1, 1),     # stride 1, long blocks
    (1, 128, 27, 27, 6, 5, 5, 1, 2, 2),     # conv2-like, minimum-width blocks
    # Fused packing: micro-tile tails, many row runs, depth blocks, stride phases:
    (2, 2, 3, 11, 13, 1, 1, 1, 0, 1),       # 33 pixels: one past a 32-wide panel; 13 rows
    (1, 1, 300, 1, 25, 1, 1, 1, 0, 1),      # 1-pixel output rows: more runs than one flush
    (1, 64, 6, 6, 13, 2, 2, 1, 0, 1),       # depth 256 + bias row: the ones cross a K block
    (3, 2, 30, 20, 5, 3, 3, 1, 1, 1),       # 600 pixels: weight-gradient depth across images
    (2, 3, 31, 29, 5, 11, 11, 4, 2, 1),     # stride 4, padded sizes not multiples of 4
    (2, 6, 10, 11, 9, 3, 3, 3, 2, 3),       # stride 3, groups 3, padding past a phase
    (2, 3, 6, 6, 4, 3, 3, 1, 2, 1),         # stride 1, pad = K-1: flipped conv has pad 0
    (2, 3, 8, 9, 4, 3, 5, 1, 1, 1),         # stride 1, non-square kernel: col2im path
    (5, 3, 12, 22, 4, 3, 3, 1, 0, 1),       # 200 pixels: 2-image gemms, weights packed once
]
IDS = ["N{}C{}H{}W{}O{}k{}x{}s{}p{}g{}".format(*c) for c in CASES]



# ------------------------------------------------------------------- helpers

def _make(rng, case):
    N, C, H, W, O, KH, KW, stride, pad, groups = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C // groups, KH, KW)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    dout = rng.standard_normal((N, O, OH, OW)).astype(np.float32)
    return x, w, b, dout, (stride, pad, groups)


def _forward(x, w, b, hp):
    N, O = x.shape[0], w.shape[0]
    stride, pad, _ = hp
    OH = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    OW = (x.shape[3] + 2 * pad - w.shape[3]) // stride + 1
    out = np.full((N, O, OH, OW), np.nan, np.float32)   # must be overwritten
    _C.conv2d_forward(out, x, w, b, *hp)
    return out


def _backward(dout, x, w, hp, want_dx=True, want_db=True, dw0=None, db0=None):
    dx = np.full(x.shape, np.nan, np.float32) if want_dx else None
    dw = np.zeros_like(w) if dw0 is None else dw0.copy()
    db = (np.zeros(w.shape[0], np.float32) if db0 is None else db0.copy()) if want_db else None
    _C.conv2d_backward(dx, dw, db, dout, x, w, *hp)
    return dx, dw, db


# --------------------------------------------------------------------- tests

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward_match_reference(case, isa, nthreads, rng):
    x, w, b, dout, hp = _make(rng, case)
    assert_close(_forward(x, w, b, hp), conv_ref(x, w, b, *hp), what="out")
    assert_close(_forward(x, w, None, hp), conv_ref(x, w, None, *hp), what="out, no bias")
    dx, dw, db = _backward(dout, x, w, hp)
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    assert_close(dx, rdx, what="dx")
    assert_close(dw, rdw, what="dweight")
    assert_close(db, rdb, what="dbias")


def test_reference_backward_matches_finite_differences(rng):
    x, w, b, dout, hp = _make(rng, (2, 4, 5, 4, 4, 3, 2, 2, 1, 2))
    f = lambda x_, w_, b_: float(np.sum(conv_ref(x_, w_, b_, *hp) * dout))
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    assert_close(rdx, numerical_grad(lambda v: f(v, w, b), x), rtol=1e-7, what="ref dx")
    assert_close(rdw, numerical_grad(lambda v: f(x, v, b), w), rtol=1e-7, what="ref dw")
    assert_close(rdb, numerical_grad(lambda v: f(x, w, v), b), rtol=1e-7, what="ref db")


@pytest.mark.parametrize("case", [(2, 4, 5, 4, 4, 3, 2, 2, 1, 2), (1, 2, 6, 5, 3, 3, 3, 1, 2, 1)])
def test_backward_matches_finite_differences(case, isa, rng):
    x, w, b, dout, hp = _make(rng, case)
    f = lambda x_, w_, b_: float(np.sum(conv_ref(x_, w_, b_, *hp) * dout))
    dx, dw, db = _backward(dout, x, w, hp)
    assert_close(dx, numerical_grad(lambda v: f(v, w, b), x), what="dx")
    assert_close(dw, numerical_grad(lambda v: f(x, v, b), w), what="dweight")
    assert_close(db, numerical_grad(lambda v: f(x, w, v), b), what="dbias")


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[5], CASES[10], CASES[12],
                                  CASES[15], CASES[18], CASES[20], CASES[23],
                                  (1, 3, 9, 9, 4, 3, 3, 1, 1, 1)],
                         ids=[IDS[1], IDS[2], IDS[5], IDS[10], IDS[12], IDS[15], IDS[18],
                              IDS[20], IDS[23], "N1"])
def test_results_do_not_depend_on_thread_count(case, isa, rng):
    import alexnet_cpu as ac
    x, w, b, dout, hp = _make(rng, case)
    dw0 = rng.standard_normal(w.shape).astype(np.float32)
    db0 = rng.standard_normal(w.shape[0]).astype(np.float32)
    old = ac.get_num_threads()
    got = []
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            got.append((_forward(x, w, b, hp),) + _backward(dout, x, w, hp, dw0=dw0, db0=db0))
    finally:
        ac.set_num_threads(old)
    for name, a1, a2 in zip(("out", "dx", "dweight", "dbias"), *got):
        np.testing.assert_array_equal(a1, a2, err_msg=name)


def test_gradients_accumulate_and_dx_overwrites(nthreads, rng):
    x, w, b, dout, hp = _make(rng, CASES[2])
    dw0 = rng.standard_normal(w.shape).astype(np.float32)
    db0 = rng.standard_normal(w.shape[0]).astype(np.float32)
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    dx = np.full(x.shape, 7.0, np.float32)
    dw, db = dw0.copy(), db0.copy()
    work = None
    for k in (1, 2):
        work = _C.conv2d_backward(dx, dw, db, dout, x, w, *hp, work=work)
        assert_close(dx, rdx, what=f"dx after call {k}")
        assert_close(dw, dw0 + k * rdw, what=f"dweight after call {k}")
        assert_close(db, db0 + k * rdb, what=f"dbias after call {k}")


def test_optional_dx_and_dbias(nthreads, rng):
    x, w, b, dout, hp = _make(rng, CASES[3])
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    for want_dx, want_db in ((False, True), (True, False), (False, False)):
        dx, dw, db = _backward(dout, x, w, hp, want_dx=want_dx, want_db=want_db)
        assert (dx is None) != want_dx and (db is None) != want_db
        assert_close(dw, rdw, what="dweight")
        if want_dx:
            assert_close(dx, rdx, what="dx")
        if want_db:
            assert_close(db, rdb, what="dbias")


def test_workspace_is_returned_and_reused(rng):
    x, w, b, dout, hp = _make(rng, CASES[1])
    out = np.empty((x.shape[0], w.shape[0], 7, 13), np.float32)
    work = _C.conv2d_forward(out, x, w, b, *hp)
    assert isinstance(work, np.ndarray) and work.dtype == np.float32
    assert _C.conv2d_forward(out, x, w, b, *hp, work=work) is work
    assert_close(out, conv_ref(x, w, b, *hp), what="out with reused work")
    need = _C.conv2d_backward(None, np.zeros_like(w), None, dout, x, w, *hp).size
    big = np.empty(need + 100, np.float32)
    assert _C.conv2d_backward(None, np.zeros_like(w), None, dout, x, w, *hp, work=big) is big


def test_bad_arguments_raise(rng):
    x, w, b, dout, hp = _make(rng, (2, 4, 7, 7, 6, 3, 3, 1, 1, 2))
    out = np.empty((2, 6, 7, 7), np.float32)
    fwd = _C.conv2d_forward
    with pytest.raises(TypeError, match="x must have dtype float32"):
        fwd(out, x.astype(np.float64), w, b, *hp)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 6, 7, 7\), got \(2, 6, 7, 6\)"):
        fwd(out[..., :6].copy(), x, w, b, *hp)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        fwd(np.empty((2, 6, 7, 14), np.float32)[..., ::2], x, w, b, *hp)
    with pytest.raises(ValueError, match="bias must have shape"):
        fwd(out, x, w, b[:5].copy(), *hp)
    with pytest.raises(ValueError, match="weight must have shape"):
        fwd(out, x, w, b, 1, 1, 1)
    with pytest.raises(ValueError, match="groups=4 must divide"):
        fwd(out, x, w, b, 1, 1, 4)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        fwd(out, x, w, b, 0, 1, 2)
    with pytest.raises(ValueError, match="does not fit"):
        fwd(out, x[:, :, :1, :1].copy(), w, b, 1, 0, 2)
    with pytest.raises(ValueError, match="x must be 4-D"):
        fwd(out, x[0], w, b, *hp)
    bwd = _C.conv2d_backward
    with pytest.raises(ValueError, match="dout must have shape"):
        bwd(None, np.zeros_like(w), None, dout[:1].copy(), x, w, *hp)
    with pytest.raises(ValueError, match="dweight must have shape"):
        bwd(None, np.zeros((6, 4, 3, 3), np.float32), None, dout, x, w, *hp)
    with pytest.raises(ValueError, match="dx must have shape"):
        bwd(np.empty((2, 4, 7, 6), np.float32), np.zeros_like(w), None, dout, x, w, *hp)
    with pytest.raises(TypeError, match="dbias must have dtype float32"):
        bwd(None, np.zeros_like(w), np.zeros(6), dout, x, w, *hp)
    with pytest.raises(ValueError, match="dx and x must not overlap"):
        bwd(x, np.zeros_like(w), None, dout, x, w, *hp)
    with pytest.raises(ValueError, match="dweight and weight must not overlap"):
        bwd(None, w, None, dout, x, w, *hp)
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is an output and must be writeable"):
        fwd(ro, x, w, b, *hp)
    with pytest.raises(ValueError, match="out and bias must not overlap"):
        big = np.zeros(out.size + 8, np.float32)
        fwd(big[:out.size].reshape(out.shape), x, w, big[out.size - 3:out.size + 3], *hp)


TORCH_CASES = [
    (2, 3, 31, 31, 8, 11, 11, 4, 2, 1),
    (2, 4, 9, 9, 6, 5, 5, 1, 2, 2),
    (3, 6, 7, 7, 4, 3, 3, 1, 1, 2),
    (1, 5, 13, 11, 3, 3, 3, 2, 0, 1),
    (3, 4, 13, 13, 34, 3, 3, 1, 1, 2),      # 169 pixels, 17 outputs per group: tile tails
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=["N{}C{}H{}W{}O{}k{}x{}s{}p{}g{}".format(*c)
                                                    for c in TORCH_CASES])
def test_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, dout, hp = _make(rng, case)
    stride, pad, groups = hp
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=pad, groups=groups)
    ty.backward(torch.from_numpy(dout))
    assert_close(_forward(x, w, b, hp), ty.detach().numpy(), what="out")
    dx, dw, db = _backward(dout, x, w, hp)
    assert_close(dx, tx.grad.numpy(), what="dx")
    assert_close(dw, tw.grad.numpy(), what="dweight")
    assert_close(db, tb.grad.numpy(), what="dbias")


def test_large_input_planes_split_into_chunks(rng):
    """Phase planes over half of CHUNK_PHASE_FLOATS (2**20): each weight-gradient gemm takes one image of a
    two-image slot, and the forward runs image by image."""
    import alexnet_cpu as ac
    case = (9, 1, 730, 730, 2, 3, 3, 4, 1, 1)
    x, w, b, dout, hp = _make(rng, case)
    rdx, rdw, rdb = conv_ref_backward(dout, x, w, *hp)
    old = ac.get_num_threads()
    got = []
    try:
        for nt in (1, 2):
            ac.set_num_threads(nt)
            got.append((_forward(x, w, b, hp),) + _backward(dout, x, w, hp))
    finally:
        ac.set_num_threads(old)
    assert_close(got[0][0], conv_ref(x, w, b, *hp), what="out")
    assert_close(got[0][1], rdx, what="dx")
    assert_close(got[0][2], rdw, what="dweight")
    for name, a1, a2 in zip(("out", "dx", "dweight", "dbias"), *got):
        np.testing.assert_array_equal(a1, a2, err_msg=name)


# ------------------------------------------------------- inference: packed weights

def _forward_packed(x, w, b, hp, packed=None):
    stride, pad, groups = hp
    OH = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    OW = (x.shape[3] + 2 * pad - w.shape[3]) // stride + 1
    out = np.full((x.shape[0], w.shape[0], OH, OW), np.nan, np.float32)
    packed = _C.conv2d_pack_weights(w, b, groups, packed)
    _C.conv2d_forward_packed(out, x, packed, w.shape, *hp)
    return out, packed


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_packed_forward_is_bitwise_the_forward(case, isa, nthreads, rng):
    x, w, b, dout, hp = _make(rng, case)
    out, packed = _forward_packed(x, w, b, hp)
    np.testing.assert_array_equal(out, _forward(x, w, b, hp))
    out, again = _forward_packed(x, w, None, hp, packed)   # no bias; buffer reused
    assert again is packed
    np.testing.assert_array_equal(out, _forward(x, w, None, hp))


@pytest.mark.parametrize("n", [1, 3])
def test_packed_forward_takes_winograd_like_the_forward(n, isa, nthreads, rng, conv_winograd):
    """3x3 stride-1 pad-1 layers: the packed forward (weights transformed at packing) gives
    exactly what conv2d_forward gives when both take Winograd (forced for one image, where
    conv2d_forward would not), close to the float64 reference; 1 image: threads split the
    output channels."""
    if n == 1:
        conv_winograd("on")
    x, w, b, dout, hp = _make(rng, (n, 32, 13, 13, 34, 3, 3, 1, 1, 2))
    for bias in (b, None):
        out, _ = _forward_packed(x, w, bias, hp)
        np.testing.assert_array_equal(out, _forward(x, w, bias, hp))
        assert_close(out, conv_ref(x, w, bias, *hp), what="out")


def test_packed_forward_refuses_other_isa_or_shapes(rng):
    x, w, b, dout, hp = _make(rng, (2, 4, 7, 7, 6, 3, 3, 1, 1, 2))
    out = np.empty((2, 6, 7, 7), np.float32)
    packed = _C.conv2d_pack_weights(w, b, 2)
    _C.conv2d_forward_packed(out, x, packed, w.shape, *hp)
    assert_close(out, conv_ref(x, w, b, *hp), what="out")
    fwd = _C.conv2d_forward_packed
    # another shape: refused by its header or, when it needs more floats, by its size
    refused = "another ISA path, precision or weight shape|packed is too small"
    with pytest.raises(ValueError, match=refused):
        fwd(out, x, packed, (6, 4, 3, 3), 1, 1, 1)          # groups 1: (6, 4, 3, 3) expected
    with pytest.raises(ValueError, match=refused):
        fwd(out, x[:, :2].copy(), packed, (6, 1, 3, 3), 1, 1, 2)
    with pytest.raises(ValueError, match="packed is too small"):
        fwd(out, x, packed[:-1], w.shape, *hp)
    with pytest.raises(TypeError, match="packed must have dtype float32"):
        fwd(out, x, packed.astype(np.float64), w.shape, *hp)
    with pytest.raises(ValueError, match="packed must be 1-D"):
        fwd(out, x, packed.reshape(1, -1), w.shape, *hp)
    with pytest.raises(ValueError, match="weight must have shape"):
        fwd(out, x, packed, (6, 3, 3, 3), *hp)
    with pytest.raises(ValueError, match="out must have shape"):
        fwd(out[:1].copy(), x, packed, w.shape, *hp)
    with pytest.raises(ValueError, match="groups=4 must divide out channels"):
        _C.conv2d_pack_weights(w, b, 4)
    with pytest.raises(ValueError, match="bias must have shape"):
        _C.conv2d_pack_weights(w, b[:5].copy(), 2)
    old = _C.get_isa()
    other = [n for n in _C.ISA_NAMES if _C.isa_supported(n) and n != old]
    try:
        for name in other:
            _C.set_isa(name)
            with pytest.raises(ValueError, match=f"another ISA path.* on {name}"):
                fwd(out, x, packed, w.shape, *hp)
            repacked = _C.conv2d_pack_weights(w, b, 2)
            fwd(out, x, repacked, w.shape, *hp)
            assert_close(out, conv_ref(x, w, b, *hp), what=f"out on {name}")
    finally:
        _C.set_isa(old)


def _relu(a):
    return np.where(a > 0, a, 0).astype(np.float32)   # NaN -> 0, as relu_forward


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[11], CASES[15], CASES[23],
                                  (1, 3, 9, 9, 4, 3, 3, 1, 1, 1), (2, 4, 9, 9, 40, 3, 3, 1, 1, 2),
                                  (3, 32, 13, 13, 34, 3, 3, 1, 1, 2)],
                         ids=[IDS[1], IDS[5], IDS[11], IDS[15], IDS[23], "N1", "N2manyO",
                              "winograd"])
def test_packed_forward_fused_relu_any_thread_count(case, isa, rng):
    """relu=True is the forward then relu_forward, bitwise, on 1, 2 and 3 threads (3: several
    images left over after the whole-image share, run with threaded gemms)."""
    import alexnet_cpu as ac
    x, w, b, dout, hp = _make(rng, case)
    x[0, 0, 0, :2] = np.nan                               # NaNs rectify to 0, as relu_forward
    expected = _relu(_forward(x, w, b, hp))
    packed = _C.conv2d_pack_weights(w, b, hp[2])
    old = ac.get_num_threads()
    try:
        for nt in (1, 2, 3):
            ac.set_num_threads(nt)
            out = np.full_like(expected, np.nan)
            _C.conv2d_forward_packed(out, x, packed, w.shape, *hp, relu=True)
            np.testing.assert_array_equal(out, expected, err_msg=f"{nt} threads")
            out = np.full_like(expected, np.nan)
            _C.conv2d_forward_packed(out, x, packed, w.shape, *hp)
            np.testing.assert_array_equal(out, _forward(x, w, b, hp), err_msg=f"{nt} threads")
    finally:
        ac.set_num_threads(old)
