"""Classify image files with a saved model, using the preprocessing stored in its file."""
import os

import numpy as np

from .checkpoint import load
from .data import IMG_EXTENSIONS, base_size, center_crop, load_image, ten_crop
from .loss import softmax

# torchvision's ImageNet statistics, RGB, of 0-255 pixel values.
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def find_images(path):
    """[path] for a file; every image under a folder (recursively, sorted) otherwise."""
    if os.path.isfile(path):
        if os.path.splitext(path)[1].lower() not in IMG_EXTENSIONS:
            raise ValueError(f"{path}: not a .jpg/.jpeg/.png image")
        return [path]
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files
                   if os.path.splitext(f)[1].lower() in IMG_EXTENSIONS)
    if not found:
        raise ValueError(f"{path}: no .jpg/.jpeg/.png images found")
    return found


class Predictor:
    def __init__(self, weights_path, tencrop=False):
        self.net, meta = load(weights_path)
        self.net.eval()
        self.size = int(meta.get("input_size", 224))
        pre = meta.get("preprocess") or {}
        # Files from other tools carry no statistics: torchvision's ImageNet ones.
        self.mean = np.asarray(pre.get("mean", IMAGENET_MEAN), np.float32)
        self.std = np.asarray(pre.get("std", IMAGENET_STD), np.float32)
        n = self.net.num_classes
        self.classes = meta.get("classes") or [f"class_{i}" for i in range(n)]
        self.tencrop = tencrop
        self.skipped = 0

    def _batch_scores(self, images):
        crop = ten_crop if self.tencrop else (lambda *a: center_crop(*a)[None])
        crops = np.stack([crop(img, self.size, self.mean, self.std)
                          for img in images])            # (B, V, C, H, W), V = 1 or 10
        b, v = crops.shape[:2]
        probs = softmax(self.net.forward(crops.reshape((b * v,) + crops.shape[2:])))
        return probs.reshape(b, v, -1).mean(axis=1)

    def predict(self, paths, topk=5, batch_size=32):
        """Yield (path, [(class name, probability)] * topk) or (path, error) per image."""
        topk = min(topk, len(self.classes))
        base = base_size(self.size)
        for start in range(0, len(paths), batch_size):
            chunk, images = [], []
            for path in paths[start:start + batch_size]:
                try:
                    images.append(load_image(path, base))
                    chunk.append(path)
                except Exception as e:  # noqa: BLE001  corrupt files are reported, not fatal
                    self.skipped += 1
                    yield path, e
            if not images:
                continue
            for path, p in zip(chunk, self._batch_scores(images)):
                order = np.argsort(-p)[:topk]
                yield path, [(self.classes[i], float(p[i])) for i in order]
