"""The procedural data set: layout, idempotence, determinism, distinct classes, and that the
data pipeline reads it."""
import json
import os

import numpy as np
import pytest

from alexnet_cpu import synthetic
from alexnet_cpu.data import DataLoader, ImageFolder, load_image
from alexnet_cpu.synthetic import CLASSES, default_root, make_dataset, render


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def _digest(root):
    return {f: (root / f).read_bytes() for f in _files(root) if f != "synthetic.json"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "set"
    return make_dataset(root, num_classes=4, train_per_class=6, val_per_class=2, image_size=32, seed=1)


def test_structure(small):
    assert sorted(os.listdir(small)) == ["synthetic.json", "train", "val"]
    for split, n in (("train", 6), ("val", 2)):
        assert sorted(os.listdir(small / split)) == sorted(CLASSES[:4])
        for c in CLASSES[:4]:
            names = sorted(os.listdir(small / split / c))
            assert len(names) == n
            assert all(x.endswith((".png", ".jpg")) for x in names)
    exts = {f.rsplit(".", 1)[1] for f in _files(small) if not f.endswith(".json")}
    assert exts == {"png", "jpg"}  # a mix of both
    meta = json.loads((small / "synthetic.json").read_text())
    assert meta["num_classes"] == 4 and meta["classes"] == list(CLASSES[:4])
    assert not [p for p in os.listdir(small.parent) if p.startswith(".")]  # no temp folders left


def test_image_folder_reads_it(small):
    tr, va = ImageFolder(small / "train"), ImageFolder(small / "val")
    assert tr.classes == va.classes == sorted(CLASSES[:4])
    assert len(tr) == 24 and len(va) == 8
    a = load_image(tr.samples[0][0], 32)
    assert a.shape == (32, 32, 3)
    x, y = next(iter(DataLoader(tr, 8, 28, train=True, lighting=False, seed=0)))
    assert x.shape == (8, 3, 28, 28) and y.shape == (8,)


def test_idempotent_and_regenerates(small, monkeypatch):
    before = _digest(small)
    mtime = (small / "synthetic.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(synthetic, "_write_all", lambda *a: calls.append(a))
    assert make_dataset(small, num_classes=4, train_per_class=6, val_per_class=2, image_size=32,
                        seed=1) == small
    assert calls == [] and (small / "synthetic.json").stat().st_mtime_ns == mtime
    assert _digest(small) == before


def test_regenerates_when_parameters_differ(tmp_path):
    root = tmp_path / "s"
    make_dataset(root, num_classes=2, train_per_class=3, val_per_class=1, image_size=16, seed=0)
    first = _digest(root)
    make_dataset(root, num_classes=3, train_per_class=2, val_per_class=1, image_size=16, seed=0)
    assert len(os.listdir(root / "train")) == 3
    assert all(len(os.listdir(root / "train" / c)) == 2 for c in CLASSES[:3])
    again = _digest(root)
    # per-image generators: images that exist in both sets are identical
    for f in again:
        if f in first:
            assert again[f] == first[f], f
    assert sorted(os.listdir(tmp_path)) == ["s"]


def test_deterministic_by_seed(tmp_path):
    kw = dict(num_classes=3, train_per_class=3, val_per_class=1, image_size=24)
    a = _digest(make_dataset(tmp_path / "a", seed=5, **kw))
    b = _digest(make_dataset(tmp_path / "b", seed=5, workers=1, **kw))
    c = _digest(make_dataset(tmp_path / "c", seed=6, **kw))
    assert a == b
    assert a.keys() != c.keys() or any(a[k] != c[k] for k in a)


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="refusing"):
        make_dataset(tmp_path / "mine", num_classes=2, train_per_class=1, val_per_class=1)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    (tmp_path / "empty").mkdir()
    make_dataset(tmp_path / "empty", num_classes=2, train_per_class=1, val_per_class=1, image_size=16)
    assert (tmp_path / "empty" / "synthetic.json").exists()
    with pytest.raises(ValueError, match="num_classes"):
        make_dataset(tmp_path / "x", num_classes=len(CLASSES) + 1)


def test_classes_distinct():
    """Class means over many renders differ, and a nearest-class-mean classifier on simple
    orientation/shape features beats chance by far (the classes are learnable)."""
    n, size = 40, 32
    feats, labels = [], []
    for c, name in enumerate(CLASSES):
        for i in range(n):
            img = render(name, size, np.random.default_rng([9, c, i])).astype(np.float64)
            g = img.mean(2)
            g = (g - g.mean()) / (g.std() + 1e-6)
            # energy of horizontal / vertical / diagonal gradients, plus centre vs border
            dx, dy = np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1]
            spec = np.abs(np.fft.rfft2(g))
            spec[0, 0] = 0
            radial = [spec[:k, :k].sum() for k in (2, 4, 8, 16)]
            f = [np.abs(dx).mean(), np.abs(dy).mean(), np.abs(dx + dy).mean(), np.abs(dx - dy).mean(),
                 *(r / spec.sum() for r in radial)]
            feats.append(f)
            labels.append(c)
    feats, labels = np.array(feats), np.array(labels)
    mu = np.array([feats[labels == c].mean(0) for c in range(len(CLASSES))])
    for a in range(len(CLASSES)):
        for b in range(a):
            assert np.abs(mu[a] - mu[b]).max() > 1e-3, (CLASSES[a], CLASSES[b])
    sd = feats.std(0)
    pred = np.argmin((((feats[:, None] - mu[None]) / sd) ** 2).sum(2), axis=1)
    acc = (pred == labels).mean()
    assert acc > 3.0 / len(CLASSES), acc  # chance is 1/12


def test_render_properties():
    a = render("circle", 48, np.random.default_rng(0))
    b = render("circle", 48, np.random.default_rng(0))
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown"):
        render("hexagon", 32)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_root() == tmp_path / "alexnet-cpu" / "synthetic-v1"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "alexnet-cpu" / "synthetic-v1"
