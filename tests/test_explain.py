"""Grad-CAM: against PyTorch hooks on the same weights, the heat where a hand-wired net's
class evidence lies, and `alexnet-cpu explain` (pictures, bf16, one-line errors)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import alexnet_cpu as ac
from alexnet_cpu import explain
from alexnet_cpu.checkpoint import save

from test_bf16 import HAS_BF16


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def torch_cam(net, x, index, target):
    """Grad-CAM by the book in PyTorch: a forward hook keeps the activation of module
    features[index] and its gradient; alpha = the gradient's spatial mean."""
    torch = pytest.importorskip("torch")
    from references import torch_alexnet
    model = torch_alexnet(net.variant, net.num_classes).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    kept = {}

    def hook(module, inputs, output):
        output.retain_grad()
        kept["a"] = output

    model.features[index].register_forward_hook(hook)
    logits = model(torch.from_numpy(x))
    t = logits.argmax(1) if target is None else torch.full((len(x),), target)
    logits[torch.arange(len(x)), t].sum().backward()
    a, g = kept["a"], kept["a"].grad
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    return cam.detach().numpy(), t.numpy()


@pytest.mark.parametrize("variant,layer,index,size,target", [
    ("paper", "conv5", 13, 67, None), ("paper", "conv2", 5, 99, 3),
    ("owt", "conv5", 11, 131, None), ("owt", "conv1", 1, 67, 7)])
def test_matches_pytorch_hooks(variant, layer, index, size, target):
    pytest.importorskip("torch")
    net = ac.alexnet(variant, num_classes=10, seed=3)
    assert explain.resolve_layer(net, layer) == f"features.{index}"
    x = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
    cams, probs, targets = explain.grad_cam(net, x, layer, target)
    ref, t_ref = torch_cam(net, x, index, target)
    np.testing.assert_array_equal(targets, t_ref)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert cams.shape == ref.shape and ref.max() > 0
    # float32 rounding: both sum the same products in other orders (GEMM blocking, Winograd)
    np.testing.assert_allclose(cams, ref, rtol=0, atol=2e-5 * float(ref.max()))


def wired_net(variant):
    """A net whose class 0 counts red pixels and class 1 blue ones, at their place: conv1's
    centre tap detects red (channel s0) and blue (s1), every later convolution's centre tap
    carries those two channels on, fc6..fc8 sum each over its positions."""
    net = ac.alexnet(variant, num_classes=2, dropout=0.0)
    for _, p in net.named_params():
        p[...] = 0
    carry = {"paper": [(0, 48), (0, 128), (0, 192), (0, 192), (0, 128)],
             "owt": [(0, 1)] * 5}[variant]
    convs = [layer for _, layer in net.layers if isinstance(layer, ac.layers.Conv2d)]
    c = convs[0].k // 2
    convs[0].params["weight"][carry[0][0], :, c, c] = (1, -1, -1)     # red
    convs[0].params["weight"][carry[0][1], :, c, c] = (-1, -1, 1)     # blue
    for conv, ins, outs in zip(convs[1:], carry, carry[1:]):
        per_in, per_out = conv.in_channels // conv.groups, conv.out_channels // conv.groups
        for i, o in zip(ins, outs):
            assert i // per_in == o // per_out            # same group
            conv.params["weight"][o, i % per_in, conv.k // 2, conv.k // 2] = 1
    fc6, fc7, fc8 = [layer for _, layer in net.layers if isinstance(layer, ac.layers.Linear)]
    for unit, ch in enumerate(carry[-1]):
        fc6.params["weight"][unit, ch * 36:(ch + 1) * 36] = 1
        fc7.params["weight"][unit, unit] = fc8.params["weight"][unit, unit] = 1
    return net


@pytest.mark.parametrize("variant", ["paper", "owt"])
@pytest.mark.parametrize("corner", ["top-left", "bottom-right", "top-right", "bottom-left"])
def test_heat_sits_where_the_evidence_is(variant, corner):
    """Red in `corner`, blue in the opposite one, grey elsewhere: class 0's heat lies in
    the red quarter, class 1's in the blue one."""
    net = wired_net(variant)
    s, q = 128, 40
    img = np.full((s, s, 3), 128.0, np.float32)
    top, left = corner.startswith("bottom"), corner.endswith("right")
    for colour, (r, c) in (((255, 0, 0), (top, left)), ((0, 0, 255), (1 - top, 1 - left))):
        img[r * (s - q):r * (s - q) + q, c * (s - q):c * (s - q) + q] = colour
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None])
    for cls, (r, c) in ((0, (top, left)), (1, (1 - top, 1 - left))):
        cams, probs, _ = explain.grad_cam(net, x, "conv5", cls)
        heat = explain.upsample(cams[0], s)
        quarter = heat[r * s // 2:(r + 1) * s // 2, c * s // 2:(c + 1) * s // 2]
        assert quarter.max() == 1.0                       # the peak is in that quarter
        assert quarter.sum() > 0.9 * heat.sum(), (cls, corner)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("explain")
    net = ac.alexnet("paper", num_classes=3, seed=1)
    path = d / "m.safetensors"
    save(str(path), net, classes=["cat", "dog", "sun/moon"], input_size=67)
    imgs = d / "imgs"
    (imgs / "a").mkdir(parents=True)
    (imgs / "b").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a/1.png", "b/1.png", "b/2.jpg"):
        Image.fromarray(rng.integers(0, 255, (90, 80, 3), np.uint8)).save(imgs / name)
    return d, path, imgs


def test_cli_writes_one_picture_per_image(model):
    d, path, imgs = model
    out = d / "out"
    r = run("explain", "-input", str(imgs), "-load", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(out))
    assert len(files) == 3 and len(r.stdout.splitlines()) == 3
    assert files[0].startswith("a_1.gradcam.") and files[1].startswith("b_1.gradcam.")
    for f in files:                                  # class and probability in the name
        cls, p = f.rsplit(".", 1)[0].split(".gradcam.")[1].rsplit("-", 1)
        assert cls in ("cat", "dog", "sun_moon") and 0 < float(p) <= 1
        with Image.open(out / f) as im:
            assert im.size[0] > 2 * explain.DISPLAY and im.mode == "RGB"


def test_cli_class_and_layer(model):
    d, path, imgs = model
    r = run("explain", "-input", str(imgs / "a" / "1.png"), "-load", str(path), "-o",
            str(d / "one"), "-class", "sun/moon", "-layer", "conv3")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(d / "one")) == 1 and "sun_moon-" in os.listdir(d / "one")[0]


def test_cli_bf16(model):
    d, path, imgs = model
    env = {} if HAS_BF16 else {"ALEXNET_CPU_ISA": "generic"}   # the portable bf16 path
    r = run("explain", "-input", str(imgs / "b"), "-load", str(path), "-o", str(d / "bf"),
            "-precision", "bf16", env=env)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(d / "bf")) == 2


@pytest.mark.parametrize("args,message", [
    (["-layer", "conv9"], "-layer conv9: the model has no such layer"),
    (["-layer", "classifier.1"], "-layer classifier.1: classifier.1 is not a convolutional"),
    (["-class", "horse"], "-class horse: not a class of the model (cat, dog, sun/moon)"),
    (["-input", "BAD"], "cannot decode image"),
    (["-input", "MISSING"], "no such file or folder"),
    (["-load", "MISSING"], "no such file")])
def test_cli_bad_input_is_one_line(model, args, message):
    d, path, imgs = model
    (d / "bad.png").write_bytes(b"not a png")
    base = {"-input": str(imgs / "a" / "1.png"), "-load": str(path)}
    extra = dict(zip(args[::2], args[1::2]))
    subs = {"BAD": str(d / "bad.png"), "MISSING": str(d / "missing")}
    argv = [a for k, v in {**base, **extra}.items() for a in (k, subs.get(v, v))]
    r = run("explain", *argv, "-o", str(d / "err"))
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
