"""Data pipeline speed: JPEG decode + the paper's augmentation, as the trainer runs it.

Writes 256x256 JPEGs of the built-in classes (quality 90) to a temporary folder, then times
DataLoader in training mode (random crop 224, flip, PCA lighting, normalise) with 2 decoding
threads; the first pass warms the OS file cache and is not counted.
"""
import os
import tempfile
import time

import numpy as np
from PIL import Image

from alexnet_cpu.data import DataLoader, ImageFolder
from alexnet_cpu.synthetic import CLASSES, render
from common import md_table


def _write_images(root, n, size=256, seed=0, sizes=None, noise=0):
    """n JPEGs (q90) of the built-in classes in root/<class>/: size x size, or rendered at
    `size` and resized to each of `sizes` (width, height) in turn, plus uniform pixel noise
    of +-`noise` (from one field at random offsets: cheap, and the files weigh like photos)."""
    rng = np.random.default_rng(seed)
    w_max, h_max = np.max(sizes, axis=0) if sizes else (size, size)
    field = rng.integers(-noise, noise + 1, (h_max + 64, w_max + 64, 3)) if noise else None
    for i in range(n):
        name = CLASSES[i % len(CLASSES)]
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        img = Image.fromarray(render(name, size, rng))
        if sizes:
            img = img.resize(sizes[i % len(sizes)], Image.BICUBIC)
        if noise:
            a = np.asarray(img, np.int16)
            y, x = rng.integers(0, 64, 2)
            a = a + field[y:y + a.shape[0], x:x + a.shape[1]]
            img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        img.save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def run(quick=False, peak_gflops=None):
    n = 256 if quick else 1024
    workers, batch, size = 2, 128, 224
    eig = (np.array([0.2, 0.02, 0.005]), np.eye(3))
    with tempfile.TemporaryDirectory() as root:
        _write_images(root, n)
        ds = ImageFolder(root)
        loader = DataLoader(ds, batch, size, mean=np.full(3, 120.0), std=np.full(3, 60.0),
                            train=True, shuffle=True, seed=0, eigval=eig[0], eigvec=eig[1],
                            workers=workers)
        for _ in loader:      # warm the file cache
            pass
        passes = 1 if quick else 2
        t = time.perf_counter()
        count = sum(len(y) for _ in range(passes) for _, y in loader)
        rate = count / (time.perf_counter() - t)
    res = {"images": n, "size": size, "batch": batch, "workers": workers,
           "source": "256x256 JPEG q90", "img_per_s": rate}
    md = ["## Data pipeline", "",
          md_table(["source", "mode", "workers", "img/s"],
                   [(res["source"], f"train, crop {size} + flip + lighting", workers, rate)])]
    return res, "\n".join(md)
