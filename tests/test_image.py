"""The resize kernel (_C.resize_bilinear, csrc/image.c) against Pillow's Image.resize(...,
BILINEAR, box=...): bitwise, on every ISA path, over whole images and windows of them, as
bytes and as normalised floats; and load_image / load_center_crop against the Pillow
pipeline they replaced."""
import threading

import numpy as np
import PIL
import pytest
from PIL import Image

from alexnet_cpu import _C
from alexnet_cpu.data import (_base_box, _to_rgb, base_size, center_crop, crop_normalize,
                              load_center_crop, load_image, normalize_table)

# Pillow 13 chose the order of the two passes anew (csrc/include/ac_image.h): the kernel
# computes that order, so older Pillows differ in some pixels and are not a reference.
needs_pillow13 = pytest.mark.skipif(int(PIL.__version__.split(".")[0]) < 13,
                                    reason=f"Pillow {PIL.__version__} orders the passes as "
                                           "before 13.0, which the kernel does not follow")

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
PHOTOS = [(500, 375), (375, 500), (640, 480), (500, 333), (1, 1000), (1000, 1), (256, 300),
          (300, 256), (256, 256), (7, 3)]  # (width, height)


def pillow(a, size, box):
    return np.asarray(Image.fromarray(a).resize(size, Image.BILINEAR, box=box))


def resized(a, size, box, top=0, left=0, hw=None, table=None, ctx=None):
    h, w = hw or (size[1], size[0])
    out = np.empty((h, w, 3) if table is None else (3, h, w), np.uint8 if table is None else
                   np.float32)
    _C.resize_bilinear(out, a, size, box, top, left, table, ctx=ctx)
    return out


def random_case(rng):
    """A random image, output size and box: tiny to medium, up- and down-scaling, fractional
    box edges, sometimes the whole image or a whole-pixel box."""
    H, W = (int(v) for v in rng.choice([1, 2, 3, 5, 17, 40, 63], 2))
    a = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    size = tuple(int(v) for v in rng.choice([1, 2, 3, 7, 16, 33, 70], 2))
    kind = rng.integers(4)
    if kind == 0:
        box = (0, 0, W, H)
    elif kind == 1:  # whole pixels
        x0, y0 = int(rng.integers(0, W)), int(rng.integers(0, H))
        box = (x0, y0, int(rng.integers(x0, W + 1)), int(rng.integers(y0, H + 1)))
    else:
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        box = (x0, y0, rng.uniform(x0, W), rng.uniform(y0, H))
    return a, size, box


@needs_pillow13
def test_random_sizes_and_boxes_bitwise(isa, rng):
    ctx = _C.Context(isa=isa)
    for _ in range(250):
        a, size, box = random_case(rng)
        ref = pillow(a, size, box)
        np.testing.assert_array_equal(resized(a, size, box, ctx=ctx), ref,
                                      err_msg=f"{a.shape} -> {size}, box {box}")
        # 4 bytes a pixel (Pillow's storage): the fourth is not read
        rgbx = np.concatenate([a, rng.integers(0, 256, a.shape[:2] + (1,), np.uint8)], axis=2)
        assert np.array_equal(resized(rgbx, size, box, ctx=ctx), ref)
        # a random window, then the corner windows of one pixel
        h, w = int(rng.integers(1, size[1] + 1)), int(rng.integers(1, size[0] + 1))
        top, left = int(rng.integers(0, size[1] - h + 1)), int(rng.integers(0, size[0] - w + 1))
        got = resized(a, size, box, top, left, (h, w), ctx=ctx)
        np.testing.assert_array_equal(got, ref[top:top + h, left:left + w],
                                      err_msg=f"{a.shape} -> {size}, box {box}, window "
                                              f"{(top, left, h, w)}")
        for top, left in [(0, size[0] - 1), (size[1] - 1, 0), (size[1] - 1, size[0] - 1)]:
            assert np.array_equal(resized(a, size, box, top, left, (1, 1), ctx=ctx),
                                  ref[top:top + 1, left:left + 1])


@needs_pillow13
@pytest.mark.parametrize("wh", PHOTOS)
def test_load_image_boxes_bitwise(isa, wh, rng):
    """The boxes load_image makes for photo sizes (both pass orders, the thin extremes),
    whole, and their centre crops (and the edge windows) as normalised floats, bitwise as
    crop_normalize of Pillow's result."""
    ctx = _C.Context(isa=isa)
    w, h = wh
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    base, size = 256, 224
    box = _base_box(w, h, base)
    ref = pillow(a, (base, base), box)
    np.testing.assert_array_equal(resized(a, (base, base), box, ctx=ctx), ref)
    table = normalize_table(MEAN, STD)
    for top, left in [(16, 16), (0, 0), (base - size, base - size), (0, base - size)]:
        got = resized(a, (base, base), box, top, left, (size, size), table, ctx=ctx)
        want = crop_normalize(ref, size, top, left, mean=MEAN, std=STD)
        assert got.tobytes() == want.tobytes(), (wh, top, left)


@needs_pillow13
def test_two_threads_at_once(rng):
    """The kernel keeps no state: calls in two threads at once (the GIL released) give each
    its own result."""
    cases = [random_case(rng) for _ in range(40)]
    refs = [pillow(*c) for c in cases]
    bad = []

    def run():
        for _ in range(5):
            for c, r in zip(cases, refs):
                if not np.array_equal(resized(*c), r):
                    bad.append(c[1:])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def old_load_image(path, base):
    """load_image as it was: Pillow's resize of the decoded image."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (base, base))
        img.load()
        img = _to_rgb(img)
        if img.size != (base, base):
            img = img.resize((base, base), Image.BILINEAR, box=_base_box(*img.size, base))
        return np.asarray(img)


@needs_pillow13
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_load_image_and_load_center_crop_match_pillow(tmp_path, rng, mode):
    size = 24
    base = base_size(size)
    table = normalize_table(MEAN, STD)
    for w, h in [(50, 37), (37, 50), (64, 48), (base, base), (3, 400)]:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for ext in (".png", ".jpg"):
            p = tmp_path / f"{w}x{h}{mode}{ext}"
            Image.fromarray(a).convert(mode if ext == ".png" else "RGB").save(p)
            ref = old_load_image(p, base)
            np.testing.assert_array_equal(load_image(p, base), ref)
            want = center_crop(ref, size, MEAN, STD)
            assert load_center_crop(p, size, table).tobytes() == want.tobytes(), p.name


def test_pillow_pixels(rng):
    a = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    p = _C.pillow_pixels(img)
    assert p.shape == (37, 50, 4) and not p.flags.writeable
    np.testing.assert_array_equal(p[..., :3], a)
    del img  # the array keeps Pillow's storage alive
    np.testing.assert_array_equal(p[..., :3], a)
    assert _C.pillow_pixels(Image.fromarray(a[..., 0])) is None  # not RGB
    assert _C.pillow_pixels(Image.new("RGB", (3000, 2000))) is None  # in several blocks


def test_bad_arguments():
    a = np.zeros((5, 6, 3), np.uint8)
    out = np.empty((4, 4, 3), np.uint8)
    table = normalize_table()
    f = _C.resize_bilinear
    with pytest.raises(TypeError, match="src must have dtype uint8"):
        f(out, a.astype(np.float32), (4, 4))
    with pytest.raises(ValueError, match=r"src must be an RGB image \(H, W, 3\) or \(H, W, 4\)"):
        f(out, np.zeros((5, 6, 2), np.uint8), (4, 4))
    with pytest.raises(ValueError, match="size must be"):
        f(out, a, (0, 4))
    with pytest.raises(ValueError, match="box .* must satisfy"):
        f(out, a, (4, 4), (0, 0, 6.5, 5))
    with pytest.raises(ValueError, match="box .* must satisfy"):
        f(out, a, (4, 4), (3, 0, 2, 5))
    with pytest.raises(ValueError, match="box must be"):
        f(out, a, (4, 4), (0, 0, 6))
    with pytest.raises(ValueError, match=r"window rows \[1, 5\) x columns \[0, 4\) outside"):
        f(out, a, (4, 4), None, 1, 0)
    with pytest.raises(ValueError, match="outside the resized image"):
        f(out, a, (4, 4), None, 0, -1)
    with pytest.raises(ValueError, match=r"out must be \(h, w, 3\)"):
        f(np.empty((4, 4, 1), np.uint8), a, (4, 4))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        f(out, a, (4, 4), lut=table)
    with pytest.raises(ValueError, match=r"out must be \(3, h, w\)"):
        f(np.empty((4, 4, 3), np.float32), a, (4, 4), lut=table)
    with pytest.raises(ValueError, match="lut must have shape"):
        f(np.empty((3, 4, 4), np.float32), a, (4, 4), lut=table[:, :128].copy())
