"""Classify image files with a saved model, using the preprocessing stored in its file.

Images are decoded and cropped by data.prefetched's threads (as the training loader does)
while the kernels run the forward of the batch before, and results come back in input order.
"""
import itertools
import os
from contextlib import closing

import numpy as np

from . import _threads
from .checkpoint import load
from .data import IMG_EXTENSIONS, ImageError, base_size, load_center_crop, load_image, \
    normalize_table, prefetched, ten_crop
from .loss import softmax

# torchvision's ImageNet statistics, RGB, of 0-255 pixel values.
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]

# Network inputs per forward (images, or images x 10 with ten crops). CPU ms per image of the
# owt forward at 224 px, fp32, 2 threads (AMD EPYC Zen 3, AVX2; shared machine, median of 4
# rounds): batch 32 24.7, 64 24.4, 128 21.0, 256 22.0. A batch of 128 is 77 MB of input.
DEFAULT_BATCH = 128


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def default_workers():
    """Decoding threads: the cores the kernels' OpenMP threads leave free, or when they take
    every core (the default), one per core: at idle priority they decode on whatever core
    the forward leaves idle (a barrier, a serial step), and every core decodes while the
    forward waits for a batch."""
    spare = _cores() - _threads.get_num_threads()
    return spare if spare > 0 else _cores()


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
    """A saved model with its preprocessing. predict() classifies a list of image files;
    .skipped counts the unreadable ones over all calls."""

    def __init__(self, weights_path, tencrop=False):
        self.net, meta = load(weights_path)
        self.net.eval()
        self.size = int(meta.get("input_size", 224))
        pre = meta.get("preprocess") or {}
        # Files from other tools carry no statistics: torchvision's ImageNet ones.
        self.mean = np.asarray(pre.get("mean", IMAGENET_MEAN), np.float32)
        self.std = np.asarray(pre.get("std", IMAGENET_STD), np.float32)
        self._table = normalize_table(self.mean, self.std)
        n = self.net.num_classes
        self.classes = meta.get("classes") or [f"class_{i}" for i in range(n)]
        self.tencrop = tencrop
        self.skipped = 0
        self._inputs = None     # input buffers kept between predict() calls

    @property
    def views(self):
        """Network inputs per image."""
        return 10 if self.tencrop else 1

    def default_batch(self):
        """Images per batch when none is given: DEFAULT_BATCH network inputs."""
        return max(1, DEFAULT_BATCH // self.views)

    def _fill(self, path, out):
        """Decode `path` and write its crop(s) into `out`; None, or the ImageError."""
        try:
            if self.tencrop:
                ten_crop(load_image(path, base_size(self.size)), self.size, self.mean, self.std,
                         out=out)
            else:
                load_center_crop(path, self.size, self._table, out=out[0])
        except ImageError as e:
            return e
        return None

    def _scores(self, x):
        """x (B, V, 3, S, S) -> probabilities (B, classes), averaged over the V crops."""
        b, v = x.shape[:2]
        probs = softmax(self.net.forward(x.reshape((b * v,) + x.shape[2:])))
        return probs.reshape(b, v, -1).mean(axis=1)

    def predict(self, paths, topk=5, batch_size=None, workers=None, prefetch=1, idle=True):
        """Yield (path, [(class name, probability)] * topk), or (path, ImageError) for an
        unreadable file, for every path in order. `batch_size` images per forward (default
        default_batch()); `workers` decoding threads (default default_workers()) fill
        batches `prefetch` ahead of the forward (0: each when it is needed, between two
        forwards; workers=0: in this thread). idle=True: the workers run at idle priority,
        on what the kernels leave free, and this thread decodes the rows of its next batch
        they have not started (data.prefetched)."""
        workers = default_workers() if workers is None else workers
        topk = min(topk, len(self.classes))
        batch_size = self.default_batch() if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        batches = [range(s, min(s + batch_size, len(paths)))
                   for s in range(0, len(paths), batch_size)]
        fill = lambda i, out: self._fill(paths[i], out)  # noqa: E731
        ring = self._take_inputs((prefetch + 1, min(batch_size, len(paths)), self.views, 3,
                                  self.size, self.size))
        turn = itertools.count()      # prefetched asks for the batches in order
        new_batch = lambda idx: ring[next(turn) % len(ring), :len(idx)]  # noqa: E731
        try:
            with closing(prefetched(batches, fill, new_batch, workers, prefetch,
                                    idle)) as filled:
                for idx, x, errors in filled:
                    yield from self._results([paths[i] for i in idx], x, errors, topk)
        finally:
            self._inputs = ring

    def _take_inputs(self, shape):
        """The input buffers of the last predict() if they fit (a second predict() running
        at the same time gets its own): prefetched fills prefetch + 1 buffers in turn. Fresh
        memory is the cost: its first touch measured 1-4 CPU ms per MB on a VM here (page
        zeroing, THP compaction), as much as decoding when every batch was a new 77 MB."""
        ring, self._inputs = self._inputs, None
        if ring is None or ring.shape[0] != shape[0] or ring.shape[1] < shape[1] or \
                ring.shape[2:] != shape[2:]:
            ring = np.empty(shape, np.float32)
        return ring

    def _results(self, paths, x, errors, topk):
        """(path, ranking or error) for one filled batch, in its order."""
        good = [k for k, e in enumerate(errors) if e is None]
        if len(good) < len(paths):
            x = x[good]
        ranked = iter(())
        if good:
            probs = self._scores(x)
            top = np.argsort(-probs, axis=1, kind="stable")[:, :topk]
            ranked = iter([[(self.classes[c], float(p[c])) for c in t]
                           for p, t in zip(probs, top)])
        for path, error in zip(paths, errors):
            if error is not None:
                self.skipped += 1
                yield path, error
            else:
                yield path, next(ranked)
