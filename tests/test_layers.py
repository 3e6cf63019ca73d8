"""Layer-level behaviour: Conv2d's packed weights in eval mode give the training-mode
forward bitwise, and are never stale (mode switches, backward, ISA, replaced or written
parameters)."""
import numpy as np
import pytest

from alexnet_cpu import _C
from alexnet_cpu.layers import Conv2d, ReLU


def _conv(rng, groups=1):
    layer = Conv2d(6, 8, 3, stride=1, padding=1, groups=groups)
    layer.params["weight"][...] = rng.standard_normal(layer.params["weight"].shape)
    layer.params["bias"][...] = rng.standard_normal(8)
    return layer


def _fresh_forward(layer, x):
    """What a new layer in training mode with the same parameters computes."""
    ref = Conv2d(6, 8, 3, stride=1, padding=1, groups=layer.groups)
    for k, p in layer.params.items():
        ref.params[k][...] = p
    return ref.forward(x).copy()


@pytest.mark.parametrize("groups", [1, 2])
def test_eval_forward_is_the_training_forward(groups, isa, nthreads, rng):
    layer = _conv(rng, groups)
    x = rng.standard_normal((3, 6, 9, 9)).astype(np.float32)
    expected = layer.forward(x).copy()
    layer.training = False
    for _ in range(2):                                  # packs, then reuses the pack
        np.testing.assert_array_equal(layer.forward(x), expected)
    x1 = x[:1].copy()                                   # another batch size, same pack
    np.testing.assert_array_equal(layer.forward(x1), _fresh_forward(layer, x1))


def _packed_layer(rng):
    """A conv layer in eval mode that has packed its weights, and the input it saw."""
    layer = _conv(rng)
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    layer.training = False
    layer.forward(x)
    return layer, x


def test_cached_parameters_are_read_only_until_invalidated(rng):
    layer, x = _packed_layer(rng)
    w = layer.params["weight"]
    with pytest.raises(ValueError, match="read-only"):
        w[...] = 0.0
    layer.invalidate()
    w[...] = rng.standard_normal(w.shape)               # writeable again
    np.testing.assert_array_equal(layer.forward(x), _fresh_forward(layer, x))


def test_mode_switch_and_backward_drop_the_pack(rng):
    layer, x = _packed_layer(rng)
    layer.training = True                               # train mode: writeable, no pack
    layer.params["weight"] *= 2
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), _fresh_forward(layer, x))
    y = layer.forward(x)                                # training in eval mode:
    layer.backward(np.ones_like(y))                     # backward drops the pack, so the
    layer.params["bias"] += 1                           # step may write the parameters
    np.testing.assert_array_equal(layer.forward(x), _fresh_forward(layer, x))


def test_replaced_parameter_arrays_and_isa_change_repack(rng):
    layer, x = _packed_layer(rng)
    old_w = layer.params["weight"]
    layer.params["weight"] = rng.standard_normal(old_w.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x), _fresh_forward(layer, x))
    assert old_w.flags.writeable                        # the replaced array is released
    old = _C.get_isa()
    try:
        for name in [n for n in _C.ISA_NAMES if _C.isa_supported(n)]:
            _C.set_isa(name)
            np.testing.assert_array_equal(layer.forward(x), _fresh_forward(layer, x))
    finally:
        _C.set_isa(old)


def test_read_only_parameters_stay_read_only(rng):
    layer = _conv(rng)
    layer.params["bias"].flags.writeable = False
    x = rng.standard_normal((1, 6, 5, 5)).astype(np.float32)
    layer.training = False
    layer.forward(x)
    layer.training = True
    assert layer.params["weight"].flags.writeable and not layer.params["bias"].flags.writeable


def test_maxpool_eval_skips_argmax_but_backward_still_works(rng):
    from alexnet_cpu.layers import MaxPool2d
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    train, ev = MaxPool2d(3, 2), MaxPool2d(3, 2)
    ev.training = False
    y = train.forward(x).copy()
    np.testing.assert_array_equal(ev.forward(x), y)
    assert ev._argmax is None                           # not written in eval mode
    np.testing.assert_array_equal(ev.backward(dy), train.backward(dy))
    np.testing.assert_array_equal(ev._y, y)


@pytest.mark.parametrize("side, out", [(10, 5), (9, 4), (54, 27)])
def test_maxpool_ceil_mode_matches_torch(rng, side, out):
    """Ceil mode (Caffe's pools): 10 -> 5 where floor gives 4; the last window sees only the
    input inside it. Forward and backward as torch's ceil_mode=True, in both modes."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from alexnet_cpu.layers import MaxPool2d
    x = rng.standard_normal((2, 3, side, side)).astype(np.float32)
    dy = rng.standard_normal((2, 3, out, out)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.max_pool2d(tx, 3, 2, ceil_mode=True)
    ty.backward(torch.from_numpy(dy))
    for training in (True, False):
        layer = MaxPool2d(3, 2, ceil_mode=True)
        layer.training = training
        assert layer.output_shape((3, side, side)) == (3, out, out)
        np.testing.assert_array_equal(layer.forward(x), ty.detach().numpy())
        np.testing.assert_array_equal(layer.backward(dy.copy()), tx.grad.numpy())


def test_relu_takes_the_fused_output(rng):
    """Conv2d.forward(x, relu=True) handed to ReLU.take_fused_output: the ReLU's backward
    then masks the gradient as after its own forward."""
    x = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    dy = rng.standard_normal((2, 8, 7, 7)).astype(np.float32)
    conv, relu = _conv(rng), ReLU()
    y = relu.forward(conv.forward(x)).copy()
    expected = relu.backward(dy.copy()).copy()
    relu2 = ReLU()
    y2 = relu2.take_fused_output(conv.forward(x, relu=True))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(relu2.backward(dy.copy()), expected)
