"""The layer graph and both AlexNet variants: shapes, parameter counts, gradients by
finite differences, and parity with an identical PyTorch model."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu.layers import (LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear,
                                MaxPool2d, ReLU)
from alexnet_cpu.model import Net
from gradcheck import assert_close
from tiny import tiny_alexnet


def test_parameter_counts_and_names():
    paper = ac.alexnet("paper")
    owt = ac.alexnet("owt")
    assert paper.num_parameters() == 60_965_224
    assert owt.num_parameters() == 61_100_840
    names = [n for n, _, _ in owt.parameters()]
    assert names[:2] == ["features.0.weight", "features.0.bias"]
    assert {n.rsplit(".", 1)[0] for n in names} == {
        "features.0", "features.3", "features.6", "features.8", "features.10",
        "classifier.1", "classifier.4", "classifier.6"}
    pnames = {n.rsplit(".", 1)[0] for n, _, _ in paper.parameters()}
    assert {"features.0", "features.4", "features.8", "features.10", "features.12"} <= pnames
    assert paper.state_dict()["features.4.weight"].shape == (256, 48, 5, 5)


@pytest.mark.parametrize("variant", ["paper", "owt"])
@pytest.mark.parametrize("size", [63, 67, 224])
def test_output_shapes(variant, size):
    net = ac.alexnet(variant, num_classes=7)
    rows = net.summary(size)
    assert rows[-1][2] == (7,)
    assert [r for r in rows if r[0] == "avgpool"][0][2] == (256, 6, 6)
    if size == 224:
        assert rows[0][2] == ((96 if variant == "paper" else 64), 55, 55)


def test_rejects_bad_input():
    net = ac.alexnet("owt", num_classes=3)
    with pytest.raises(ValueError, match="too small"):
        net.forward(np.zeros((1, 3, 62, 62), np.float32))
    with pytest.raises(ValueError, match="channels"):
        net.forward(np.zeros((1, 1, 64, 64), np.float32))
    with pytest.raises(ValueError, match="float32"):
        net.forward(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(ValueError, match="variant"):
        ac.alexnet("vgg")


def test_paper_init_biases():
    net = ac.alexnet("paper", num_classes=10, init="paper", bias_value=0.1)
    sd = net.state_dict()
    for name in ("features.4", "features.10", "features.12", "classifier.1", "classifier.4"):
        assert np.all(sd[f"{name}.bias"] == np.float32(0.1))
    for name in ("features.0", "features.8", "classifier.6"):
        assert np.all(sd[f"{name}.bias"] == 0)
    assert abs(sd["classifier.1.weight"].std() - 0.01) < 1e-3


def _tiny_net(seed=0):
    """Every layer kind of AlexNet, small enough for finite differences."""
    layers = [Conv2d(3, 4, 3, 2, 1), ReLU(), LRN(3, 1e-2, 0.75, 2.0), MaxPool2d(3, 2),
              Conv2d(4, 6, 3, 1, 1, groups=2), ReLU(), AdaptiveAvgPool2d(2), Flatten(),
              Dropout(0.5, seed=3), Linear(24, 5), ReLU(), Linear(5, 3)]
    net = Net([(f"l{i}", l) for i, l in enumerate(layers)], num_classes=3)
    rng = np.random.default_rng(seed)
    for _, p, _ in net.parameters():
        p[...] = rng.normal(0, 0.5, p.shape)
    return net


def _loss_fn(net, x, r):
    """Sum(logits * r) with dropout's mask frozen at call 0."""
    def f():
        for _, layer in net.layers:
            if isinstance(layer, Dropout):
                layer.calls = 0
        return float(np.sum(net.forward(x).astype(np.float64) * r))
    return f


def test_layer_graph_gradients_by_finite_differences(monkeypatch):
    import alexnet_cpu.model as model
    monkeypatch.setattr(model, "MIN_INPUT", 8)
    rng = np.random.default_rng(0)
    net = _tiny_net()
    net.layers[0][1].need_input_grad = True       # check d loss / d input too
    x = rng.normal(0, 1, (2, 3, 13, 13)).astype(np.float32)
    r = rng.normal(0, 1, (2, 3))
    f = _loss_fn(net, x, r)
    f()
    net.zero_grad()
    net.backward(r.astype(np.float32))
    eps = 1e-3
    for name, p, g in net.parameters():
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            v = flat[i]
            flat[i] = v + eps
            fp = f()
            flat[i] = v - eps
            fm = f()
            flat[i] = v
            num = (fp - fm) / (2 * eps)
            assert abs(num - gflat[i]) <= 2e-2 * max(1.0, abs(num)), (name, i, num, gflat[i])


def _torch_alexnet(variant, num_classes):
    torch = pytest.importorskip("torch")
    from references import torch_alexnet
    return torch, torch_alexnet(variant, num_classes)


@pytest.mark.parametrize("variant,size", [("paper", 67), ("owt", 99)])
def test_matches_pytorch(variant, size):
    torch, tnet = _torch_alexnet(variant, 10)
    net = ac.alexnet(variant, num_classes=10, seed=1)
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    tnet.eval()
    net.eval()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 3, size, size)).astype(np.float32)
    labels = np.array([1, 5, 9])
    logits = net.forward(x)
    loss, d = ac.softmax_cross_entropy(logits, labels)
    net.backward(d)
    tlogits = tnet(torch.from_numpy(x))
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(labels))
    tloss.backward()
    assert_close(logits, tlogits.detach().numpy(), rtol=1e-4, what="logits")
    assert abs(loss - tloss.item()) <= 1e-4 * max(1.0, abs(loss))
    tgrads = dict(tnet.named_parameters())
    for name, _, g in net.parameters():
        assert_close(g, tgrads[name].grad.numpy(), rtol=1e-4, atol=1e-6, what=name)


def test_train_eval_modes_and_dropout_reproducible():
    net = ac.alexnet("owt", num_classes=4, seed=0)
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 63, 63)).astype(np.float32)
    net.eval()
    a, b = net.forward(x), net.forward(x)
    assert np.array_equal(a, b)                     # dropout off in eval
    net.train()
    c = net.forward(x)
    d = net.forward(x)
    assert not np.array_equal(c, d)                 # a fresh mask each step
    net2 = ac.alexnet("owt", num_classes=4, seed=0).train()
    assert np.array_equal(net2.forward(x), c)       # same seed, same first mask


def test_state_dict_round_trip():
    a = ac.alexnet("owt", num_classes=5, seed=1)
    b = ac.alexnet("owt", num_classes=5, seed=2)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 63, 63)).astype(np.float32)
    assert np.array_equal(a.eval().forward(x), b.eval().forward(x))
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({})


def test_torchvision_state_dict_files_load_both_ways(tmp_path):
    """owt weights move between torchvision-style PyTorch and us as safetensors files."""
    torch, tnet = _torch_alexnet("owt", 10)
    st = pytest.importorskip("safetensors.torch")
    tnet.eval()
    path = str(tmp_path / "tv.safetensors")
    st.save_file({k: v.contiguous() for k, v in tnet.state_dict().items()}, path)
    net, meta = ac.load(path)
    assert net.variant == "owt" and net.num_classes == 10
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 63, 63)).astype(np.float32)
    with torch.no_grad():
        expected = tnet(torch.from_numpy(x)).numpy()
    assert_close(net.forward(x), expected, rtol=1e-4, what="logits from a torch file")
    ours = str(tmp_path / "ours.safetensors")
    ac.save(ours, net)
    _, tnet2 = _torch_alexnet("owt", 10)
    tnet2.load_state_dict(st.load_file(ours), strict=True)
    tnet2.eval()
    with torch.no_grad():
        assert_close(tnet2(torch.from_numpy(x)).numpy(), expected, rtol=1e-4, what="reverse")


def test_eval_packed_weights_follow_loads_and_training_steps():
    """Eval mode packs conv weights once; nothing that changes the parameters may leave a
    stale pack behind: load_state_dict, a training step in eval or in train mode."""
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 63, 63)).astype(np.float32)
    y = np.array([0, 3])

    def fresh(net):
        other = ac.alexnet("owt", num_classes=4, seed=9)
        other.load_state_dict(net.state_dict())
        return other.eval().forward(x)

    net = ac.alexnet("owt", num_classes=4, seed=0).eval()
    first = net.forward(x)
    net.load_state_dict(ac.alexnet("owt", num_classes=4, seed=1).state_dict())
    second = net.forward(x)
    assert not np.array_equal(first, second)
    assert np.array_equal(second, fresh(net))
    opt = ac.SGD(net, lr=0.01)
    for mode in (False, True):                      # a step in eval mode, then in train mode
        net.train(mode)
        _, d = ac.softmax_cross_entropy(net.forward(x), y)
        net.backward(d)
        opt.step()
        net.eval()
        assert np.array_equal(net.forward(x), fresh(net)), f"after a step, training={mode}"
    with pytest.raises(ValueError, match="read-only"):
        net.named_params()[0][1][...] = 0.0          # no silent in-place write while packed
    net.invalidate()
    for _, p in net.named_params():
        p *= 0.5
    assert np.array_equal(net.forward(x), fresh(net))


def test_eval_forward_fuses_relu_and_equals_training_forward():
    """Eval mode: packed weights and each Conv2d+ReLU fused; the training-mode forward
    (dropout off) gives the same logits bitwise when both take the same convolution
    algorithm, and backward still sees the ReLU outputs. (By default packed 3x3 layers take
    Winograd at any batch, the training forward only from 2 images: equal to rounding.)"""
    net = ac.alexnet("paper", num_classes=5, seed=3)
    x = np.random.default_rng(2).normal(0, 1, (3, 3, 67, 67)).astype(np.float32)
    for _, layer in net.layers:
        if isinstance(layer, Dropout):
            layer.p = 0.0
    default = net.eval().forward(x)
    net.ctx = net.ctx.replace(winograd="off")  # a net keeps the context it was built with
    np.testing.assert_allclose(default, net.forward(x), rtol=0, atol=1e-5 * np.abs(default).max())
    for _, layer in net.layers:
        if isinstance(layer, Dropout):
            layer.p = 0.0
    x = np.random.default_rng(2).normal(0, 1, (3, 3, 67, 67)).astype(np.float32)
    trained = net.train().forward(x)
    net.backward(np.ones_like(trained))
    g_train = [g.copy() for _, _, g in net.parameters()]
    net.zero_grad()
    assert np.array_equal(net.eval().forward(x), trained)
    net.backward(np.ones_like(trained))
    for (name, _, g), gt in zip(net.parameters(), g_train):
        assert np.array_equal(g, gt), name


# torchvision.models.alexnet(num_classes=10).state_dict(), written out from torchvision's
# source (features: Conv2d(3, 64, 11, 4, 2), Conv2d(64, 192, 5, padding=2),
# Conv2d(192, 384, 3, padding=1), Conv2d(384, 256, 3, padding=1), Conv2d(256, 256, 3,
# padding=1); classifier: Linear(9216, 4096), Linear(4096, 4096), Linear(4096, 10)),
# independent of our model code.
TORCHVISION_ALEXNET_10 = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (10, 4096), "classifier.6.bias": (10,),
}


def test_owt_names_and_shapes_are_torchvisions():
    net = ac.alexnet("owt", num_classes=10)
    assert {k: v.shape for k, v in net.state_dict().items()} == TORCHVISION_ALEXNET_10
    tv = pytest.importorskip("torchvision.models", reason="torchvision not installed: "
                                                          "the literal table stands alone")
    theirs = tv.alexnet(num_classes=10).state_dict()
    assert {k: tuple(v.shape) for k, v in theirs.items()} == TORCHVISION_ALEXNET_10


def test_file_with_torchvisions_names_loads_as_owt(tmp_path):
    """A plain safetensors file (no metadata of ours) laid out as the table says."""
    from alexnet_cpu.weights import write_file
    rng = np.random.default_rng(0)
    tensors = {k: rng.normal(0, 0.01, s).astype(np.float32)
               for k, s in TORCHVISION_ALEXNET_10.items()}
    path = tmp_path / "tv.safetensors"
    write_file(path, tensors)
    raw = bytearray(path.read_bytes())     # strip our metadata: a foreign file
    n = int.from_bytes(raw[:8], "little")
    import json
    h = json.loads(raw[8:8 + n])
    h.pop("__metadata__")
    hb = json.dumps(h).encode()
    path.write_bytes(len(hb).to_bytes(8, "little") + hb + bytes(raw[8 + n:]))
    net, meta = ac.load(str(path))
    assert meta == {} and net.variant == "owt" and net.num_classes == 10
    for name, p in net.named_params():
        assert np.array_equal(p, tensors[name]), name


def test_geometry_is_checked_and_applied():
    from alexnet_cpu.model import GEOMETRY, check_geometry
    net = ac.alexnet("paper", num_classes=3)
    assert net.geometry == GEOMETRY
    caffe = {"conv1_pad": 0, "pool_ceil": True,
             "lrn": {"size": 5, "alpha": 2e-5, "beta": 0.75, "k": 1.0}}
    net.set_geometry(caffe)
    assert net.geometry == caffe and net.layers[0][1].pad == 0
    assert "ceil" in net.layers[3][1].describe() and net.layers[2][1].k == 1.0
    net.forward(np.zeros((1, 3, 63, 63), np.float32))         # ceil mode keeps 63 px
    with pytest.raises(ValueError, match="too small for this net"):   # floor: 67 px
        net.set_geometry({"pool_ceil": False}).forward(np.zeros((1, 3, 63, 63), np.float32))
    net.set_geometry({"pool_ceil": True})
    for bad, msg in (({**caffe, "conv1_pad": -1}, "conv1_pad"),
                     ({**caffe, "pool_ceil": 1}, "pool_ceil"),
                     ({**caffe, "lrn": {**caffe["lrn"], "size": 4}}, "lrn.size"),
                     ({**caffe, "lrn": {**caffe["lrn"], "k": float("nan")}}, "lrn.k"),
                     ({"conv1_pad": 0}, "expected an object with keys")):
        with pytest.raises(ValueError, match=msg):
            check_geometry(bad)
    assert ac.alexnet("owt", num_classes=2).geometry["lrn"] is None


def test_parameters_gradients_and_momentum_live_in_arenas():
    """Net.flat holds every parameter, last layer first, each on a 64-byte boundary; the
    layers' params and grads and SGD's momentum are views of one arena each; one SGD step
    updates every tensor as the per-tensor formula would."""
    net = tiny_alexnet(5)
    starts = [net.extents[f"{n}.weight"][0] for n, layer in net.layers if layer.params]
    assert starts == sorted(starts, reverse=True)       # backward order: classifier first
    starts = [a for a, _ in net.extents.values()]
    assert all(s % 16 == 0 for s in starts) and net.flat.ctypes.data % 64 == 0
    assert sum(b - a for a, b in net.extents.values()) == net.num_parameters()
    for (name, p, g), v in zip(net.parameters(), ac.SGD(net).velocity.values()):
        a, b = net.extents[name]
        assert np.shares_memory(p, net.flat[a:b]) and np.shares_memory(g, net.grad_flat()[a:b])
    assert net.layer_end[len(net.layers) - 1] == net.extents["classifier.6.bias"][1]

    rng = np.random.default_rng(0)
    opt = ac.SGD(net, lr=0.1, momentum=0.9, weight_decay=0.01)
    for _, _, g in net.parameters():
        g[...] = rng.standard_normal(g.shape)
    for v in opt.velocity.values():
        v[...] = rng.standard_normal(v.shape)
    before = [(p.astype(np.float64), g.astype(np.float64), opt.velocity[n].astype(np.float64))
              for n, p, g in net.parameters()]
    opt.step()
    for (name, p, g), (w0, g0, v0) in zip(net.parameters(), before):
        v = 0.9 * v0 - 0.01 * 0.1 * w0 - 0.1 * g0
        np.testing.assert_allclose(opt.velocity[name], v, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(p, w0 + v, rtol=1e-5, atol=1e-6, err_msg=name)
        assert not g.any(), name                      # zeroed for the next accumulation
    gaps = np.ones(len(net.flat), bool)
    for a, b in net.extents.values():
        gaps[a:b] = False
    assert not net.flat[gaps].any() and not opt.velocity_flat[gaps].any()


def test_sgd_step_drops_packed_weights():
    """SGD writes the arena, not the read-only views a packed eval layer guards: the next
    eval forward must see the new weights."""
    net = tiny_alexnet(3).eval()
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 63, 63)).astype(np.float32)
    before = net.forward(x)
    opt = ac.SGD(net, lr=0.5, momentum=0.0, weight_decay=0.5)   # decay alone moves weights
    opt.step()
    after = net.forward(x)
    fresh = tiny_alexnet(3).eval()
    fresh.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(after, fresh.forward(x))
    assert not np.array_equal(before, after)
