"""Data pipeline: folder discovery, decoding of every image kind, the paper's preprocessing
(crops, mirrors, PCA lighting, ten crops), statistics, and the prefetching loader's shapes,
determinism, skipping of bad files and clean shutdown."""
import gc
import os
import threading
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from alexnet_cpu import data
from alexnet_cpu.data import (DataLoader, ImageError, ImageFolder, augment, base_size, center_crop,
                              compute_stats, crop_normalize, lighting_shift, load_image, sample_rng,
                              ten_crop)

SIZE = 24
BASE = base_size(SIZE)  # 27


def _img(rng, h, w):
    """A smooth-ish random RGB image (so resizes and crops are meaningful)."""
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return np.asarray(big) // 2 + rng.integers(0, 128, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for c in ("zebra", "ant", "cat"):
        (root / c).mkdir()
    # ant: plain RGB jpegs and pngs, one upper-case extension, one nested
    for i in range(5):
        Image.fromarray(_img(rng, 40, 50)).save(root / "ant" / f"a{i}.jpg", quality=95)
    Image.fromarray(_img(rng, 30, 30)).save(root / "ant" / "b.PNG")
    Image.fromarray(_img(rng, 35, 45)).save(root / "ant" / "c.JPEG")
    (root / "ant" / "sub").mkdir()
    Image.fromarray(_img(rng, 33, 29)).save(root / "ant" / "sub" / "d.png")
    # cat: grayscale png, RGBA, palette (with transparency), CMYK jpeg, large jpeg for draft mode
    Image.fromarray(_img(rng, 40, 40)[..., 0]).save(root / "cat" / "gray.png")
    rgba = np.dstack([_img(rng, 30, 40), rng.integers(0, 256, (30, 40), dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "cat" / "rgba.png")
    Image.fromarray(_img(rng, 30, 30)).convert("P").save(root / "cat" / "pal.png")
    pt = Image.fromarray(_img(rng, 30, 30)).convert("P")
    pt.info["transparency"] = 0
    pt.save(root / "cat" / "pal_t.png", transparency=0)
    Image.fromarray(_img(rng, 32, 32)).convert("CMYK").save(root / "cat" / "cmyk.jpg")
    smooth = rng.integers(0, 256, (7, 10, 3), dtype=np.uint8)
    Image.fromarray(smooth).resize((1000, 700), Image.BICUBIC).save(root / "cat" / "large.jpg", quality=90)
    # zebra: good images plus a corrupt jpeg, a truncated png, and files to ignore
    for i in range(4):
        Image.fromarray(_img(rng, 28, 36)).save(root / "zebra" / f"z{i}.png")
    (root / "zebra" / "corrupt.jpg").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    Image.fromarray(_img(rng, 60, 60)).save(root / "zebra" / "trunc_src.bmp")
    buf = root / "zebra" / "truncated.png"
    Image.open(root / "zebra" / "trunc_src.bmp").save(buf)
    raw = buf.read_bytes()
    buf.write_bytes(raw[: len(raw) // 2])
    (root / "zebra" / "notes.txt").write_text("not an image")
    (root / "zebra" / ".hidden.jpg").write_bytes(b"x")
    (root / ".git").mkdir()
    return root


BAD = {"corrupt.jpg", "truncated.png"}


def _good(ds):
    return [(p, l) for p, l in ds.samples if os.path.basename(p) not in BAD]


# ---------------------------------------------------------------- ImageFolder

def test_image_folder(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["ant", "cat", "zebra"]
    names = [(os.path.relpath(p, folder), l) for p, l in ds.samples]
    assert names[:8] == [("ant/a0.jpg", 0), ("ant/a1.jpg", 0), ("ant/a2.jpg", 0), ("ant/a3.jpg", 0),
                         ("ant/a4.jpg", 0), ("ant/b.PNG", 0), ("ant/c.JPEG", 0), ("ant/sub/d.png", 0)]
    assert sum(l == 1 for _, l in ds.samples) == 6
    assert sorted(os.path.basename(p) for p, l in ds.samples if l == 2) == \
        ["corrupt.jpg", "truncated.png", "z0.png", "z1.png", "z2.png", "z3.png"]
    assert len(ds) == 20 and list(ds.class_counts()) == [8, 6, 6]


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(ValueError, match="no such directory"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("")
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="not in the given classes"):
        ImageFolder(folder, classes=["ant", "cat"])
    ds = ImageFolder(folder, classes=["zebra", "ant", "cat", "dog"])
    assert ds.classes[0] == "zebra" and {l for _, l in ds.samples} == {0, 1, 2}


def test_split(folder):
    ds = ImageFolder(folder)
    tr, va = ds.split(0.25, seed=3)
    assert tr.classes == va.classes == ds.classes
    assert sorted(tr.samples + va.samples) == sorted(ds.samples)
    assert not set(tr.samples) & set(va.samples)
    assert list(va.class_counts()) == [2, 2, 2]  # round(8/4), round(6/4) per class
    tr2, va2 = ds.split(0.25, seed=3)
    assert tr2.samples == tr.samples and va2.samples == va.samples
    assert ds.split(0.25, seed=4)[1].samples != va.samples
    assert list(ds.split(0.01, seed=0)[1].class_counts()) == [1, 1, 1]  # at least one each
    with pytest.raises(ValueError):
        ds.split(1.5)


# ---------------------------------------------------------------- decoding

def test_base_size():
    assert base_size(224) == 256 and base_size(227) == 259 and base_size(64) == 73


def test_load_every_kind(folder):
    ds = ImageFolder(folder)
    for p, _ in _good(ds):
        a = load_image(p, BASE)
        assert a.shape == (BASE, BASE, 3) and a.dtype == np.uint8, p
    g = load_image(folder / "cat" / "gray.png", BASE)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])
    for bad in ("corrupt.jpg", "truncated.png"):
        with pytest.raises(ImageError, match=bad):
            load_image(folder / "zebra" / bad, BASE)
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(folder / "nothing.jpg", BASE)


def test_resize_and_centre_crop_exact(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (BASE, 2 * BASE + 4, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "wide.png")
    got = load_image(tmp_path / "wide.png", BASE)  # height already BASE: pure centre crop
    np.testing.assert_array_equal(got, a[:, 16:16 + BASE])  # round(31 / 2) = 16, as torchvision
    b = rng.integers(0, 256, (BASE, BASE, 3), dtype=np.uint8)
    Image.fromarray(b).save(tmp_path / "same.png")
    np.testing.assert_array_equal(load_image(tmp_path / "same.png", BASE), b)
    # tall image at twice the size: shorter side halves, centre square kept
    c = np.repeat(np.repeat(rng.integers(0, 256, (BASE + 6, BASE, 3), dtype=np.uint8), 2, 0), 2, 1)
    Image.fromarray(c).save(tmp_path / "tall.png")
    ref = np.asarray(Image.fromarray(c).resize((BASE, BASE + 6), Image.BILINEAR))[3:3 + BASE]
    assert np.abs(load_image(tmp_path / "tall.png", BASE).astype(int) - ref).max() <= 1


def test_large_jpeg_uses_draft(folder, monkeypatch):
    seen = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        r = real(self, mode, size)
        seen.append(self.size)
        return r

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    p = folder / "cat" / "large.jpg"
    got = load_image(p, BASE)
    assert seen == [(125, 88)]  # 1000x700 decoded at 1/8 scale, both sides still >= 27
    full = Image.open(p).convert("RGB")
    ref = np.asarray(full.resize((38, BASE), Image.BILINEAR))[:, 6:6 + BASE]  # 27*1000/700 -> 38
    assert np.abs(got.astype(float) - ref).mean() < 2.0


# ---------------------------------------------------------------- statistics

def test_compute_stats_vs_numpy(folder):
    ds = ImageFolder(folder)
    with pytest.warns(RuntimeWarning, match="skipping"):
        st = compute_stats(ds, SIZE, max_images=None)
    px = np.concatenate([load_image(p, BASE).reshape(-1, 3) for p, _ in _good(ds)]).astype(np.float64)
    assert st["num_images"] == len(_good(ds)) and st["base"] == BASE
    np.testing.assert_allclose(st["mean"], px.mean(0), rtol=1e-10)
    np.testing.assert_allclose(st["std"], px.std(0), rtol=1e-8)
    cov = np.cov((px / 255).T, bias=True)
    w, v = st["eigval"], st["eigvec"]
    assert np.all(np.diff(w) <= 0)
    np.testing.assert_allclose(cov @ v, v * w, atol=1e-10)
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[::-1], w, rtol=1e-8)


def test_compute_stats_subset_deterministic(folder):
    ds = ImageFolder(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = compute_stats(ds, SIZE, max_images=7, seed=5)
        b = compute_stats(ds, SIZE, max_images=7, seed=5, workers=1)
    assert a["num_images"] <= 7
    for k in ("mean", "std", "eigval", "eigvec"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12)


# ---------------------------------------------------------------- transforms

MEAN, STD = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 40.0])
EIGVAL = np.array([0.2, 0.02, 0.004])
EIGVEC = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]


def _ref(img, t, l, flip=False, shift=0.0):
    c = img[t:t + SIZE, l:l + SIZE].astype(np.float64)
    if flip:
        c = c[:, ::-1]
    return ((c + shift - MEAN) / STD).transpose(2, 0, 1)


def test_center_and_ten_crop():
    img = np.random.default_rng(2).integers(0, 256, (BASE, BASE, 3), dtype=np.uint8)
    c = center_crop(img, SIZE, MEAN, STD)
    assert c.dtype == np.float32 and c.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(c, _ref(img, 2, 2), rtol=1e-6, atol=1e-6)  # round(3/2) = 2
    t = ten_crop(img, SIZE, MEAN, STD)
    assert t.shape == (10, 3, SIZE, SIZE) and t.dtype == np.float32
    d = BASE - SIZE
    for k, (tt, ll) in enumerate([(0, 0), (0, d), (d, 0), (d, d), (2, 2)]):
        np.testing.assert_allclose(t[k], _ref(img, tt, ll), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(t[5 + k], t[k][:, :, ::-1])
    np.testing.assert_array_equal(t[4], c)


def test_augment_crop_flip_lighting():
    img = np.random.default_rng(3).integers(0, 256, (BASE, BASE, 3), dtype=np.uint8)
    for i in range(10):
        r = np.random.default_rng(i)
        t, l = int(r.integers(0, BASE - SIZE + 1)), int(r.integers(0, BASE - SIZE + 1))
        flip = r.random() < 0.5
        alpha = r.normal(0, 0.1, 3)
        shift = 255 * EIGVEC @ (alpha * EIGVAL)
        got = augment(img, SIZE, np.random.default_rng(i), MEAN, STD, EIGVAL, EIGVEC)
        np.testing.assert_allclose(got, _ref(img, t, l, flip, shift), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(lighting_shift(alpha, EIGVAL, EIGVEC), shift)
        # lighting alone: the same per-channel constant on top of the unlit image
        off = augment(img, SIZE, np.random.default_rng(i), MEAN, STD, EIGVAL, EIGVEC, lighting=False)
        np.testing.assert_allclose(got - off, np.broadcast_to((shift / STD)[:, None, None], got.shape),
                                   atol=1e-4)
        # switches: no crop -> centre, no flip -> unmirrored, nothing -> centre crop exactly
        nc = augment(img, SIZE, np.random.default_rng(i), MEAN, STD, EIGVAL, EIGVEC, crop=False,
                     flip=False, lighting=False)
        np.testing.assert_array_equal(nc, center_crop(img, SIZE, MEAN, STD))


def test_crop_normalize_bounds():
    img = np.zeros((BASE, BASE, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_normalize(img, SIZE, BASE - SIZE + 1, 0)


# ---------------------------------------------------------------- loader

def _loader(ds, **kw):
    args = dict(batch_size=4, size=SIZE, mean=MEAN, std=STD, train=True, seed=7, eigval=EIGVAL,
                eigvec=EIGVEC, workers=2)
    args.update(kw)
    return DataLoader(ds, **args)


def _collect(loader):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(x.copy(), y.copy()) for x, y in loader]


def test_loader_shapes_and_skips(folder):
    ds = ImageFolder(folder)
    dl = _loader(ds, train=False)
    assert len(dl) == 5 and not dl.shuffle
    with pytest.warns(RuntimeWarning) as rec:
        out = list(dl)
    msgs = [str(w.message) for w in rec if "skipping" in str(w.message)]
    assert len(msgs) == 2 and all(any(b in m for b in BAD) for m in msgs)
    assert {os.path.basename(p) for p in dl.skipped} == BAD
    for x, y in out:
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1:] == (3, SIZE, SIZE)
        assert y.dtype == np.int64 and y.shape == (len(x),)
    assert [len(y) for _, y in out] == [4, 4, 4, 2, 4]  # batch 3 lost both bad files
    assert np.concatenate([y for _, y in out]).tolist() == [l for _, l in _good(ds)]
    # eval: centre crops of the base images, in file order
    x = np.concatenate([x for x, _ in out])
    for k, (p, _) in enumerate(_good(ds)):
        np.testing.assert_array_equal(x[k], center_crop(load_image(p, BASE), SIZE, MEAN, STD))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each bad file warns once only
        again = list(dl)
    for (a, _), (b, _) in zip(out, again):
        np.testing.assert_array_equal(a, b)


def test_loader_drop_last_and_ten_crop(folder):
    ds = ImageFolder(folder)
    dl = _loader(ds, batch_size=6, drop_last=True, train=False, ten_crop=True)
    assert len(dl) == 3
    out = _collect(dl)
    assert [x.shape for x, _ in out] == [(6, 10, 3, SIZE, SIZE)] * 2 + [(4, 10, 3, SIZE, SIZE)]
    p0 = ImageFolder(folder).samples[0][0]
    np.testing.assert_array_equal(out[0][0][0], ten_crop(load_image(p0, BASE), SIZE, MEAN, STD))
    with pytest.raises(ValueError, match="ten_crop"):
        _loader(ds, ten_crop=True)


def test_loader_deterministic_across_workers(folder):
    ds = ImageFolder(folder)
    runs = []
    for workers in (0, 1, 2):
        dl = _loader(ds, workers=workers, prefetch=1 + workers)
        runs.append([_collect(dl), _collect(dl)])  # epochs 0 and 1
    for r in runs[1:]:
        for e in range(2):
            assert len(r[e]) == len(runs[0][e])
            for (a, ya), (b, yb) in zip(r[e], runs[0][e]):
                np.testing.assert_array_equal(ya, yb)
                np.testing.assert_array_equal(a, b)
    e0, e1 = runs[0]
    assert not np.array_equal(np.concatenate([y for _, y in e0]), np.concatenate([y for _, y in e1]))
    dl = _loader(ds)
    dl.set_epoch(1)
    for (a, _), (b, _) in zip(_collect(dl), e1):
        np.testing.assert_array_equal(a, b)
    other = _collect(_loader(ds, seed=8))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(other, e0))


def test_augmentations_vary(folder):
    ds = ImageFolder._from_samples(folder, ["ant"], [(str(folder / "ant" / "a0.jpg"), 0)] * 1)
    img = load_image(ds.samples[0][0], BASE)
    centre = center_crop(img, SIZE, MEAN, STD)
    mirrored = centre[:, :, ::-1]
    dl = _loader(ds, crop=False, lighting=False, batch_size=1)
    flips = [np.array_equal(x[0], mirrored) for x, _ in (next(iter(dl)) for _ in range(16))]
    assert any(flips) and not all(flips)
    dl = _loader(ds, batch_size=1)
    xs = [next(iter(dl))[0][0] for _ in range(8)]
    assert len({x.tobytes() for x in xs}) == 8  # crops/flips/lighting differ epoch to epoch
    assert dl.epoch == 8
    eval_dl = _loader(ds, batch_size=1, train=False)
    for _ in range(3):
        np.testing.assert_array_equal(next(iter(eval_dl))[0][0], centre)


def test_loader_sample_rng_contract(folder):
    ds = ImageFolder(folder)
    dl = _loader(ds, batch_size=3, workers=2)
    dl.set_epoch(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, _ = next(iter(dl))
    i = int(dl.order(5)[0])
    want = augment(load_image(ds.samples[i][0], BASE), SIZE, sample_rng(7, 5, i), MEAN, STD,
                   EIGVAL, EIGVEC)
    np.testing.assert_array_equal(x[0], want)


def test_loader_cache(folder):
    ds = ImageFolder(folder)
    a = _collect(_loader(ds, cache=False))
    dl = _loader(ds, cache=True)
    b = _collect(dl)
    assert len(dl.cache) == len(_good(ds))
    dl.set_epoch(0)
    c = _collect(dl)
    for (x1, _), (x2, _), (x3, _) in zip(a, b, c):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(x1, x3)


def _loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("alexnet-cpu-loader")]


def test_early_stop_shuts_down(folder):
    ds = ImageFolder(folder)
    dl = _loader(ds, batch_size=1, prefetch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in dl:
            assert _loader_threads()
            break
        gc.collect()
        assert _loader_threads() == []
        it = iter(dl)
        next(it)
        it.close()
        assert _loader_threads() == []

        def consume():
            for _ in dl:
                raise KeyError("boom")

        with pytest.raises(KeyError):
            consume()
        gc.collect()
        assert _loader_threads() == []


def test_loader_argument_errors(folder):
    ds = ImageFolder(folder)
    with pytest.raises(ValueError, match="eigval"):
        DataLoader(ds, 4, SIZE, MEAN, STD, train=True)
    DataLoader(ds, 4, SIZE, MEAN, STD, train=True, lighting=False)
    with pytest.raises(ValueError, match="mean/std"):
        DataLoader(ds, 4, SIZE, [1, 2], STD)
    with pytest.raises(ValueError, match="std"):
        DataLoader(ds, 4, SIZE, MEAN, [1, 0, 1])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, 0, SIZE)


def test_data_module_exports():
    for name in data.__all__:
        assert hasattr(data, name)


def test_sixteen_bit_and_la_png(tmp_path):
    ramp = (np.arange(BASE * BASE, dtype=np.uint32).reshape(BASE, BASE) * 65535 // (BASE * BASE - 1))
    Image.fromarray(ramp.astype(np.uint16)).save(tmp_path / "g16.png")
    a = load_image(tmp_path / "g16.png", BASE)
    np.testing.assert_allclose(a[..., 0], ramp / 257.0, atol=0.51)  # rescaled, not clipped at 255
    la = np.dstack([ramp.astype(np.uint8), np.full((BASE, BASE), 7, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    b = load_image(tmp_path / "la.png", BASE)
    np.testing.assert_array_equal(b[..., 1], la[..., 0])
