"""A built-in procedural image-classification data set (shapes and textures), for demos and
tests that must run without downloading anything.

    root/train/<class>/<nnnnn>.png|jpg   root/val/<class>/...   root/synthetic.json

Each image: a random background (solid, two-colour gradient or blotchy noise), one shape or
texture in a random contrasting colour, drawn at 2x and box-filtered (antialiased), with
random position / scale / rotation where they make sense, plus mild pixel noise; saved as
PNG or JPEG at random. Image i of class c in a split comes from its own generator
(seed, split, c, i), so it does not depend on how many images or classes are asked for.
"""
import json
import math
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASSES", "VERSION", "default_root", "make_dataset", "render"]

VERSION = 1
CLASSES = ("circle", "square", "triangle", "cross", "ring", "star", "horizontal_stripes",
           "vertical_stripes", "diagonal_stripes", "checkerboard", "dots", "frame")
_MARKER = "synthetic.json"
_SS = 2  # supersampling factor for antialiased masks


def default_root():
    """$XDG_CACHE_HOME/alexnet-cpu/synthetic-v1 (XDG_CACHE_HOME defaults to ~/.cache)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "alexnet-cpu" / f"synthetic-v{VERSION}"


# ---------------------------------------------------------------- drawing

def _poly(cx, cy, radii, angles):
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]


def _shape_mask(name, n, rng):
    """Antialiased coverage mask in [0, 1], (n, n) float32, of one shape."""
    m = n * _SS
    r = rng.uniform(0.22, 0.38) * m  # circumradius
    cx, cy = rng.uniform(r + 1, m - r - 1, 2)
    th = rng.uniform(0, 2 * math.pi)
    img = Image.new("L", (m, m), 0)
    d = ImageDraw.Draw(img)
    if name == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = r * rng.uniform(0.5, 0.68)
        d.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif name in ("square", "frame"):
        d.polygon(_poly(cx, cy, [r] * 4, [th + k * math.pi / 2 for k in range(4)]), fill=255)
        if name == "frame":
            ri = r * rng.uniform(0.55, 0.7)
            d.polygon(_poly(cx, cy, [ri] * 4, [th + k * math.pi / 2 for k in range(4)]), fill=0)
    elif name == "triangle":
        d.polygon(_poly(cx, cy, [r] * 3, [th + k * 2 * math.pi / 3 for k in range(3)]), fill=255)
    elif name == "star":
        ri = r * rng.uniform(0.35, 0.45)
        d.polygon(_poly(cx, cy, [r, ri] * 5, [th + k * math.pi / 5 for k in range(10)]), fill=255)
    elif name == "cross":
        t = r * rng.uniform(0.28, 0.4)  # half arm width
        pts = [(t, r), (t, t), (r, t), (r, -t), (t, -t), (t, -r),
               (-t, -r), (-t, -t), (-r, -t), (-r, t), (-t, t), (-t, r)]
        c, s = math.cos(th), math.sin(th)
        d.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=255)
    else:
        raise ValueError(name)
    a = np.asarray(img, np.float32).reshape(n, _SS, n, _SS).mean((1, 3))
    return a / 255.0


def _texture_mask(name, n, rng):
    m = n * _SS
    y, x = np.mgrid[0:m, 0:m].astype(np.float32) / _SS
    jitter = math.radians(rng.uniform(-8, 8))
    angle = {"horizontal_stripes": math.pi / 2, "vertical_stripes": 0.0,
             "diagonal_stripes": rng.choice([1, -1]) * math.pi / 4}.get(name, 0.0) + jitter
    c, s = math.cos(angle), math.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    period = rng.uniform(0.12, 0.25) * n
    pu, pv = rng.uniform(0, period, 2)
    if name.endswith("_stripes"):
        duty = rng.uniform(0.35, 0.6)
        hit = ((u + pu) / period) % 1.0 < duty
    elif name == "checkerboard":
        hit = (np.floor((u + pu) / period) + np.floor((v + pv) / period)) % 2 == 1
    elif name == "dots":
        du = ((u + pu) / period) % 1.0 - 0.5
        dv = ((v + pv) / period) % 1.0 - 0.5
        hit = du * du + dv * dv < rng.uniform(0.2, 0.3) ** 2
    else:
        raise ValueError(name)
    return hit.astype(np.float32).reshape(n, _SS, n, _SS).mean((1, 3))


def _colour(rng):
    return rng.uniform(0, 255, 3)


def _background(n, rng):
    kind = rng.integers(3)
    c0, c1 = _colour(rng), _colour(rng)
    if kind == 0:  # solid
        return np.broadcast_to(c0, (n, n, 3)).astype(np.float32), [c0]
    if kind == 1:  # linear gradient in a random direction
        a = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:n, 0:n] / max(n - 1, 1)
        t = (x * math.cos(a) + y * math.sin(a))
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return (c0 + t[..., None] * (c1 - c0)).astype(np.float32), [c0, c1]
    # blotchy noise: a few random colours around c0, smoothly upsampled
    k = int(rng.integers(3, 7))
    small = np.clip(c0 + rng.normal(0, 40, (k, k, 3)), 0, 255).astype(np.uint8)
    big = Image.fromarray(small).resize((n, n), Image.BICUBIC)
    return np.asarray(big, np.float32), [c0]


def render(name, size=64, rng=None):
    """One uint8 (size, size, 3) RGB image of class `name`."""
    if name not in CLASSES:
        raise ValueError(f"unknown synthetic class {name!r}; known: {', '.join(CLASSES)}")
    rng = np.random.default_rng() if rng is None else rng
    bg, refs = _background(size, rng)
    for _ in range(50):  # a foreground colour that stands out from the background
        fg = _colour(rng)
        if min(np.linalg.norm(fg - c) for c in refs) > 120:
            break
    mask = (_texture_mask if name in ("horizontal_stripes", "vertical_stripes", "diagonal_stripes",
                                       "checkerboard", "dots") else _shape_mask)(name, size, rng)
    a = mask[..., None]
    img = bg * (1.0 - a) + fg.astype(np.float32) * a
    img += np.float32(rng.uniform(2, 8)) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the data set on disk

def _params(num_classes, train_per_class, val_per_class, image_size, seed):
    return {"version": VERSION, "num_classes": num_classes, "train_per_class": train_per_class,
            "val_per_class": val_per_class, "image_size": image_size, "seed": seed,
            "classes": list(CLASSES[:num_classes])}


def _read_marker(root):
    try:
        with open(root / _MARKER) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_class(d, split_id, c, per_class, image_size, seed):
    d.mkdir(parents=True)
    for i in range(per_class):
        rng = np.random.default_rng([seed, split_id, c, i])
        img = Image.fromarray(render(CLASSES[c], image_size, rng))
        if rng.random() < 0.5:
            img.save(d / f"{i:05d}.png", compress_level=1)
        else:
            img.save(d / f"{i:05d}.jpg", quality=int(rng.integers(80, 96)))


def _write_all(dest, params, workers):
    jobs = [(dest / split / CLASSES[c], split_id, c, params[f"{split}_per_class"])
            for split_id, split in enumerate(("train", "val")) for c in range(params["num_classes"])]
    # threads: Pillow's encoders and most NumPy work release the GIL
    with ThreadPoolExecutor(max(1, workers)) as ex:
        for f in [ex.submit(_write_class, d, sid, c, n, params["image_size"], params["seed"])
                  for d, sid, c, n in jobs]:
            f.result()


def make_dataset(root=None, num_classes=10, train_per_class=200, val_per_class=50, image_size=64,
                 seed=0, workers=2):
    """Write the data set to `root` (default: default_root()) unless it is already there with
    these parameters; returns root as a Path (root/"train", root/"val" are ImageFolders).

    Regenerates when the parameters differ (in a temporary folder, then swapped in, so an
    interrupted run never leaves a half-written set behind). Refuses to touch an existing
    non-empty folder that is not a synthetic data set.
    """
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes: expected 1..{len(CLASSES)}, got {num_classes}")
    if train_per_class < 1 or val_per_class < 0:
        raise ValueError(f"train_per_class >= 1 and val_per_class >= 0 expected, "
                         f"got {train_per_class}, {val_per_class}")
    if image_size < 8:
        raise ValueError(f"image_size: expected >= 8, got {image_size}")
    root = Path(default_root() if root is None else root).expanduser()
    params = _params(int(num_classes), int(train_per_class), int(val_per_class),
                     int(image_size), int(seed))
    if root.is_dir():
        old = _read_marker(root)
        if old == params:
            return root
        if old is None and any(root.iterdir()):
            raise ValueError(f"{root}: exists and is not a synthetic data set "
                             f"(no {_MARKER}); refusing to overwrite it")
    elif root.exists():
        raise ValueError(f"{root}: exists and is not a directory")

    root.parent.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    tmp = root.parent / f".{root.name}.tmp-{tag}"
    try:
        tmp.mkdir()
        _write_all(tmp, params, workers)
        with open(tmp / _MARKER, "w") as f:
            json.dump(params, f, indent=1)
        if root.is_dir():
            trash = root.parent / f".{root.name}.old-{tag}"
            os.replace(root, trash)
            os.replace(tmp, root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
