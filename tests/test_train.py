"""Training end to end on tiny data: the loss falls, weights round-trip through files,
a resumed run equals an uninterrupted one, bad weight files are refused."""
import os

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu.checkpoint import load
from alexnet_cpu.synthetic import make_dataset
from alexnet_cpu.train import TrainConfig, checkpoint_path, fit
from alexnet_cpu.weights import WeightFileError


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(str(root), num_classes=3, train_per_class=16, val_per_class=4,
                 image_size=48, seed=0)
    return str(root)


def _cfg(data, save, **kw):
    base = dict(train_dir=data, save=save, variant="owt", size=63, batch_size=8, epochs=2,
                lr=0.01, schedule="constant", seed=3, workers=2, quiet=True, cache=True)
    base.update(kw)
    return TrainConfig(**base)


def test_sgd_step_lowers_loss_on_a_fixed_batch():
    net = ac.alexnet("paper", num_classes=4, seed=0)
    net.eval()                                    # no dropout: a deterministic objective
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 3, 63, 63)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    opt = ac.SGD(net, lr=0.001, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(12):
        loss, d = ac.softmax_cross_entropy(net.forward(x), y)
        net.backward(d)
        opt.step()
        losses.append(loss)
    assert losses[-1] < 0.5 * losses[0], losses


def test_fit_learns_and_writes_files(tiny_data, tmp_path):
    save = str(tmp_path / "m.safetensors")
    history = fit(_cfg(tiny_data, save, epochs=4))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for path in (save, checkpoint_path(save), str(tmp_path / "m.log.jsonl"),
                 str(tmp_path / "m.png")):
        assert os.path.getsize(path) > 0, path
    net, meta = load(save)
    assert meta["classes"] == ["circle", "square", "triangle"] or len(meta["classes"]) == 3
    assert meta["input_size"] == 63 and len(meta["preprocess"]["mean"]) == 3


def test_save_load_round_trip_identical_outputs(tmp_path):
    net = ac.alexnet("paper", num_classes=6, seed=5)
    path = str(tmp_path / "w.safetensors")
    ac.save(path, net, classes=list("abcdef"))
    net2, meta = ac.load(path)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 70, 70)).astype(np.float32)
    assert np.array_equal(net.eval().forward(x), net2.forward(x))
    assert meta["variant"] == "paper" and meta["classes"] == list("abcdef")


def test_corrupt_weight_file_is_refused(tmp_path):
    net = ac.alexnet("owt", num_classes=2)
    path = tmp_path / "w.safetensors"
    ac.save(str(path), net)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="checksum"):
        ac.load(str(path))


def test_resume_equals_uninterrupted_run(tiny_data, tmp_path):
    full = str(tmp_path / "full.safetensors")
    fit(_cfg(tiny_data, full, epochs=3))
    part = str(tmp_path / "part.safetensors")
    fit(_cfg(tiny_data, part, epochs=1))
    fit(_cfg(tiny_data, part, epochs=3, resume=checkpoint_path(part)))
    a, _ = load(full)
    b, _ = load(part)
    for (name, p, _), (_, q, _) in zip(a.parameters(), b.parameters()):
        assert np.array_equal(p, q), name
