"""The kernel context (_C.Context: ISA path, precision, Winograd choice) is an argument of
each call, not a process-wide setting: nets with different contexts run at once in two
Python threads and each gives, bitwise, what it gives alone; the defaults only seed new
contexts."""
import threading

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C
from alexnet_cpu.layers import LRN, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from alexnet_cpu.model import Net

# bf16 runs on AVX-512 with AVX512_BF16, and as the portable reference on the generic path
BF16_ISA = "avx512" if _C.bf16_supported() else "generic"


def _net(ctx=None):
    """A small net of every layer kind whose kernels have variants (AlexNet's own, scaled
    down so that the test takes seconds): strided conv, LRN, max-pool, a 3x3 conv that
    Winograd may take, linear layers."""
    layers = [Conv2d(3, 16, 11, 4, 2), ReLU(), LRN(), MaxPool2d(3, 2), Conv2d(16, 32, 3, 1, 1),
              ReLU(), MaxPool2d(3, 2), Flatten(), Linear(288, 64), ReLU(), Linear(64, 10)]
    net = Net([(f"l{i}", layer) for i, layer in enumerate(layers)], num_classes=10)
    rng = np.random.default_rng(7)
    for _, p in net.named_params():
        p[...] = rng.standard_normal(p.shape) * 0.2
    if ctx is not None:
        net.ctx = ctx
    return net


def _run(net, x, y, rounds):
    """rounds x (an eval forward, a training forward and backward): every output."""
    outs = []
    for _ in range(rounds):
        outs.append(net.eval().forward(x))
        logits = net.train().forward(x)
        _, d = ac.softmax_cross_entropy(logits, y)
        net.zero_grad()
        net.backward(d)
        outs += [logits] + [g.copy() for _, _, g in net.parameters()]
    return outs


def test_nets_of_different_contexts_run_at_once_bitwise():
    """An fp32 net on the best path, a bf16 one, and an fp32 one on the portable path with
    Winograd forced on, each in its own thread: on a process-wide setting each would run, at
    times, the others' path or precision (this crashed or silently differed before)."""
    contexts = [_C.Context(precision="fp32"),
                _C.Context(isa=BF16_ISA, precision="bf16", winograd="off"),
                _C.Context(isa="generic", precision="fp32", winograd="on")]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 63, 63)).astype(np.float32)
    y = rng.integers(0, 10, 4).astype(np.int32)
    alone = [_run(_net(c), x, y, 1) for c in contexts]
    assert not np.array_equal(alone[0][0], alone[1][0])   # the contexts do differ
    results = [None] * 3

    def work(i):
        results[i] = _run(_net(contexts[i]), x, y, 40)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in enumerate(results):
        assert outs is not None, f"thread {i} failed"
        per_round = len(alone[i])
        for k, out in enumerate(outs):
            assert np.array_equal(out, alone[i][k % per_round]), \
                f"net {i} ({contexts[i]}), output {k} differs from the net alone"


def test_defaults_seed_new_contexts_only():
    old = _C.get_conv_winograd()
    net = _net()
    try:
        _C.set_conv_winograd("on")
        assert _C.Context().winograd == "on" and _C.default_context().winograd == "on"
        assert net.ctx.winograd == old                     # an existing net keeps its own
        assert _net().ctx.winograd == "on"
    finally:
        _C.set_conv_winograd(old)


def test_context_is_checked():
    c = _C.Context(isa="generic", precision="bf16", winograd="off")
    assert (c.isa, c.precision, c.winograd) == ("generic", "bf16", "off")
    assert c == _C.Context(isa="generic", precision="bf16", winograd="off") and hash(c)
    assert c.replace(precision="fp32").precision == "fp32" and c.precision == "bf16"
    with pytest.raises(ValueError, match="unknown ISA 'sse'"):
        _C.Context(isa="sse")
    with pytest.raises(ValueError, match="unknown precision"):
        _C.Context(precision="fp16")
    with pytest.raises(ValueError, match="unknown Winograd mode"):
        _C.Context(winograd="maybe")
    with pytest.raises(TypeError, match="sgemm: ctx must be an alexnet_cpu Context"):
        ac.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), ctx="avx2")
    for name in _C.ISA_NAMES:
        if not _C.isa_supported(name):
            with pytest.raises(RuntimeError, match=f"does not support the {name} path"):
                _C.Context(isa=name)
    if not _C.bf16_supported():
        with pytest.raises(RuntimeError, match="AVX512_BF16"):
            _C.Context(isa=[n for n in _C.ISA_NAMES if _C.isa_supported(n)][-1],
                       precision="bf16")


@pytest.mark.parametrize("name", [n for n in _C.ISA_NAMES if _C.isa_supported(n)])
def test_call_context_overrides_default(name, rng):
    """A call's context wins over the default: the result is the one of its path."""
    a = rng.standard_normal((67, 129)).astype(np.float32)
    b = rng.standard_normal((129, 45)).astype(np.float32)
    old = _C.get_isa()
    try:
        _C.set_isa(name)
        own = ac.sgemm(a, b)
        _C.set_isa("generic")
        assert np.array_equal(ac.sgemm(a, b, ctx=_C.Context(isa=name)), own)
    finally:
        _C.set_isa(old)
