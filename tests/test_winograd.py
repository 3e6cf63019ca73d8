"""Winograd F(2x2, 3x3) (csrc/conv/winograd.c), reached through conv2d_forward and the input
gradient of conv2d_backward (a forward convolution of dY) for 3x3 stride-1 pad-1 layers:
vs a naive float64 NumPy reference, across ISA paths and thread counts (bitwise), vs the
im2col path and vs torch. _C.set_conv_winograd("on") forces it on any size, "off" off."""
import os
import subprocess
import sys

import numpy as np
import pytest

from alexnet_cpu import _C
import alexnet_cpu as ac
from gradcheck import assert_close
from references import conv_ref, conv_ref_backward

# (N, C, H, W, O, groups)
CASES = [
    (1, 1, 1, 1, 1, 1),
    (2, 3, 1, 2, 5, 1),
    (3, 5, 2, 1, 3, 1),
    (1, 3, 3, 3, 7, 1),
    (4, 7, 5, 3, 9, 1),
    (2, 6, 5, 13, 10, 2),       # Cg 3, Og 5
    (5, 9, 13, 13, 11, 1),      # 245 tiles: chunks and panels cut inside images
    (3, 10, 14, 14, 14, 2),     # even sizes: no cropping
    (2, 3, 13, 5, 7, 1),
    (1, 5, 14, 1, 3, 1),
    (2, 3, 9, 31, 5, 1),        # 16 tiles per row: several runs per tile row
    (1, 400, 3, 2, 13, 1),      # depth 400: more than one K block
    (2, 34, 13, 13, 38, 2),     # AlexNet-like grouped 13x13
]
IDS = ["N{}C{}H{}W{}O{}g{}".format(*c) for c in CASES]


@pytest.fixture
def winograd(conv_winograd):
    conv_winograd("on")


def conv3x3_ref(x, w, b, groups):
    """Naive float64 3x3 stride-1 pad-1 convolution (tests/references.py)."""
    return conv_ref(x, w, b, 1, 1, groups)


def dx_ref(dout, x, w, groups):
    """Its input gradient."""
    return conv_ref_backward(dout, x, w, 1, 1, groups)[0]


def _make(rng, case):
    N, C, H, W, O, G = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C // G, 3, 3)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dout = rng.standard_normal((N, O, H, W)).astype(np.float32)
    return x, w, b, dout, G


def _forward(x, w, b, G):
    out = np.full((x.shape[0], w.shape[0]) + x.shape[2:], np.nan, np.float32)
    _C.conv2d_forward(out, x, w, b, 1, 1, G)
    return out


def _dx(dout, x, w, G):
    dx = np.full(x.shape, np.nan, np.float32)
    _C.conv2d_backward(dx, np.zeros_like(w), None, dout, x, w, 1, 1, G)
    return dx


def _with_threads(n, f, *args):
    old = ac.get_num_threads()
    ac.set_num_threads(n)
    try:
        return f(*args)
    finally:
        ac.set_num_threads(old)


def test_reference_matches_direct_sum(rng):
    x, w, b, _, G = _make(rng, (2, 4, 5, 4, 6, 2))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 6, 5, 4))
    for n, o, h, v in np.ndindex(ref.shape):
        g = o // 3
        ref[n, o, h, v] = (xp[n, 2 * g:2 * g + 2, h:h + 3, v:v + 3] * w[o]).sum() + b[o]
    np.testing.assert_allclose(conv3x3_ref(x, w, b, G), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_reference_and_threads_agree(case, isa, rng, winograd):
    x, w, b, dout, G = _make(rng, case)
    for bias in (b, None):
        out1 = _with_threads(1, _forward, x, w, bias, G)
        out2 = _with_threads(2, _forward, x, w, bias, G)
        assert_close(out1, conv3x3_ref(x, w, bias, G), what=f"out (bias {bias is not None})")
        assert np.array_equal(out1, out2), "forward differs between 1 and 2 threads"
    dx1 = _with_threads(1, _dx, dout, x, w, G)
    dx2 = _with_threads(2, _dx, dout, x, w, G)
    assert_close(dx1, dx_ref(dout, x, w, G), what="dx")
    assert np.array_equal(dx1, dx2), "dx differs between 1 and 2 threads"


def test_error_is_small_at_alexnet_size(rng, winograd):
    """Relative to the largest output, as accurate as float32 im2col to a few ulps."""
    x, w, b, dout, G = _make(rng, (2, 64, 13, 13, 48, 1))
    ref = conv3x3_ref(x, w, b, G)
    err = np.abs(_forward(x, w, b, G) - ref).max() / np.abs(ref).max()
    assert err < 2e-6, err


@pytest.mark.parametrize("n, expect", [(2, True), (1, False)])
def test_default_dispatch(n, expect, rng, conv_winograd):
    """AlexNet-sized 3x3 layers take Winograd from 2 images on, and im2col at 1 image."""
    x, w, b, _, G = _make(rng, (n, 32, 13, 13, 32, 2))
    conv_winograd("auto")
    default = _forward(x, w, b, G)
    conv_winograd("on" if expect else "off")
    assert np.array_equal(default, _forward(x, w, b, G))
    conv_winograd("off" if expect else "on")
    assert_close(default, _forward(x, w, b, G), what="other path")


@pytest.mark.parametrize("var", ["ALEXNET_CPU_WINOGRAD", "AC_CONV_WINOGRAD"])
@pytest.mark.parametrize("value, mode", [("0", "off"), ("1", "on"), ("auto", "auto"), ("", "auto"),
                                         ("yes", None)])
def test_environment_variable_is_read_at_import(var, value, mode):
    """ALEXNET_CPU_WINOGRAD (or its old name AC_CONV_WINOGRAD) sets the default once, when
    the extension is imported; a bad value is refused with a one-line error."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_WINOGRAD")}
    env[var] = value
    p = subprocess.run([sys.executable, "-c",
                        "from alexnet_cpu import _C; print(_C.get_conv_winograd())"],
                       capture_output=True, text=True, env=env)
    if mode is None:
        assert p.returncode != 0 and f"{var} must be 0, 1 or auto" in p.stderr
    else:
        assert p.returncode == 0 and p.stdout.split() == [mode], p.stderr


def test_set_conv_winograd_refuses_unknown_modes():
    with pytest.raises(ValueError, match="unknown Winograd mode"):
        _C.set_conv_winograd("1")


@pytest.mark.parametrize("case", [(3, 6, 13, 13, 8, 1), (2, 8, 13, 13, 6, 2), (1, 5, 7, 4, 3, 1)],
                         ids=["N3C6O8", "N2C8O6g2", "N1C5H7W4O3"])
def test_matches_torch(case, rng, winograd):
    torch = pytest.importorskip("torch")
    x, w, b, dout, G = _make(rng, case)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=1, padding=1, groups=G)
    ty.backward(torch.from_numpy(dout))
    assert_close(_forward(x, w, b, G), ty.detach().numpy(), what="out")
    assert_close(_dx(dout, x, w, G), tx.grad.numpy(), what="dx")
