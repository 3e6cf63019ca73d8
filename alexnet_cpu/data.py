"""Image-folder data: decoding, the paper's preprocessing and augmentation, a prefetching loader.

Pixel conventions (one place, used everywhere below):
  - A *base image* is uint8 RGB, HWC, (base, base, 3): shorter side resized to ``base`` and
    centre-cropped, base = round(size * 256 / 224) (the paper's 256 -> 224 ratio).
  - ``mean``/``std`` are per channel on the 0-255 scale; the network sees (x - mean) / std,
    float32 NCHW, RGB channel order.
  - ``eigval``/``eigvec`` are the PCA of the 3x3 covariance of RGB pixels scaled to [0, 1]
    (eigvec columns are the eigenvectors, eigval descending). PCA lighting adds, per image
    per use, the per-channel constant  255 * eigvec @ (alpha * eigval),  alpha ~ N(0, 0.1)
    (the paper's sum_i alpha_i lambda_i p_i, in [0, 1] units, converted to 0-255).
Randomness: every random choice for sample i in epoch e comes from
np.random.default_rng([tag, seed, e, i]) only, so batches do not depend on thread timing
or on the number of workers.
"""
import os
import warnings
from collections import deque
from contextlib import closing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from . import _C
from .distributed import shard_slice

__all__ = ["IMG_EXTENSIONS", "ImageError", "ImageFolder", "DataLoader", "base_size", "load_image",
           "load_center_crop", "compute_stats", "augment", "crop_normalize", "normalize_table",
           "center_crop", "ten_crop", "lighting_shift", "sample_rng", "prefetched"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png")
LIGHTING_STD = 0.1

_TAG_SHUFFLE, _TAG_AUGMENT, _TAG_SPLIT, _TAG_STATS = 1, 2, 3, 4
_M32 = 0xFFFFFFFF


def _seed_words(tag, seed, *rest):
    """Fixed-layout entropy for SeedSequence (so [s, e, i] tuples never alias)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return [tag, seed & _M32, seed >> 32] + [int(r) & _M32 for r in rest]


def sample_rng(seed, epoch, index):
    """The generator behind every random augmentation of sample `index` in `epoch`."""
    return np.random.default_rng(_seed_words(_TAG_AUGMENT, seed, epoch, index))


def base_size(size):
    """Side of the stored/decoded image for network input `size`: 224 -> 256, 227 -> 259."""
    return int(round(size * 256 / 224))


# ---------------------------------------------------------------- data sets

class ImageFolder:
    """root/<class>/**/<image>.{jpg,jpeg,png}: one sub-folder per class, sorted by name.

    .classes: class names (label = index); .samples: [(path, label)] in a deterministic order
    (by class, then path). Pass ``classes`` (e.g. a training set's) to use that label mapping;
    folders not in it are an error, listed classes without a folder get no samples.
    """

    def __init__(self, root, classes=None):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"{self.root}: no such directory (expected one sub-folder per class)")
        found = sorted(e.name for e in os.scandir(self.root)
                       if e.is_dir() and not e.name.startswith("."))
        if not found:
            raise ValueError(f"{self.root}: no class sub-folders (expected root/<class>/<images>)")
        if classes is None:
            classes = found
        else:
            classes = list(classes)
            unknown = sorted(set(found) - set(classes))
            if unknown:
                raise ValueError(f"{self.root}: class folders not in the given classes: "
                                 f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        self.classes = classes
        self.samples = []
        for label, name in enumerate(classes):
            d = os.path.join(self.root, name)
            if not os.path.isdir(d):
                continue
            files = []
            for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
                dirnames[:] = [n for n in dirnames if not n.startswith(".")]
                files.extend(os.path.join(dirpath, f) for f in filenames
                             if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS))
            self.samples.extend((p, label) for p in sorted(files))
        if not self.samples:
            raise ValueError(f"{self.root}: no images ({', '.join(IMG_EXTENSIONS)}) "
                             f"in any of {len(found)} class folders")

    def check_classes(self, minimum=2):
        """Refuse a training set with fewer than `minimum` classes or a class without one
        readable image (each class's files are tried in order until one decodes)."""
        if len(self.classes) < minimum:
            raise ValueError(f"{self.root}: {len(self.classes)} class folder(s) "
                             f"({', '.join(self.classes)}); training needs at least {minimum}")
        by_class = {}
        for path, label in self.samples:
            by_class.setdefault(label, []).append(path)
        for label, name in enumerate(self.classes):
            if not any(_readable(p) for p in by_class.get(label, ())):
                raise ValueError(f"{os.path.join(self.root, name)}: no readable image "
                                 f"({', '.join(IMG_EXTENSIONS)}) in class {name!r}")

    @classmethod
    def _from_samples(cls, root, classes, samples):
        self = cls.__new__(cls)
        self.root, self.classes, self.samples = root, list(classes), list(samples)
        return self

    @property
    def targets(self):
        return [label for _, label in self.samples]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    def class_counts(self):
        return np.bincount(self.targets, minlength=len(self.classes))

    def split(self, fraction, seed=0):
        """Hold out `fraction` of each class -> (train_subset, val_subset), both ImageFolders
        with the same classes. Deterministic in (seed, file list); each class with >= 2
        images keeps at least one on each side when 0 < fraction < 1."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction: expected a number in [0, 1], got {fraction}")
        by_class = {}
        for i, (_, label) in enumerate(self.samples):
            by_class.setdefault(label, []).append(i)
        train_idx, val_idx = [], []
        for label, idx in sorted(by_class.items()):
            n = len(idx)
            k = int(round(n * fraction))
            if 0 < fraction < 1 and n >= 2:
                k = min(max(k, 1), n - 1)
            rng = np.random.default_rng(_seed_words(_TAG_SPLIT, seed, label))
            perm = rng.permutation(n)
            val_idx.extend(idx[j] for j in sorted(perm[:k]))
            train_idx.extend(idx[j] for j in sorted(perm[k:]))
        train_idx.sort()
        val_idx.sort()
        mk = lambda ids: ImageFolder._from_samples(self.root, self.classes,
                                                    [self.samples[i] for i in ids])
        return mk(train_idx), mk(val_idx)

    def __repr__(self):
        return f"ImageFolder({self.root!r}, {len(self.classes)} classes, {len(self)} images)"


# ---------------------------------------------------------------- decoding

class ImageError(ValueError):
    """An image file cannot be read or decoded."""


def _to_rgb(img):
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit / float greyscale: Pillow's convert would clip at 255; rescale instead
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids Pillow's warning; alpha is then dropped as below
    return img.convert("RGB")  # L, LA, RGBA (alpha dropped, as torchvision), CMYK, YCbCr, ...


def _decoded(path, base):
    """Decode `path` -> (uint8 (H, W, 3 or 4) RGB array, the box of it the base image maps:
    _base_box); a fourth byte per pixel is padding (_C.pillow_pixels). JPEGs are decoded at
    a reduced scale when still >= base (draft mode). Raises ImageError."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (base, base))  # DCT scaling: keeps both sides >= base
            img.load()
            img = _to_rgb(img)
            a = _C.pillow_pixels(img)  # no copy: Pillow's own storage, a padding byte a pixel
            if a is None:
                a = np.asarray(img, dtype=np.uint8)
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{os.fspath(path)}: cannot decode image ({msg})") from e
    return a, _base_box(a.shape[1], a.shape[0], base)


def _base_box(w, h, base):
    """The box (x0, y0, x1, y1) of a w x h source that the base image maps: as torchvision's
    Resize(base) + CenterCrop(base) in one resampling pass, the short side becomes base, the
    long one int(base * long / short), and the crop starts at a whole pixel of that resized
    image, mapped back to the source."""
    nw, nh = (base, int(base * h / w)) if w <= h else (int(base * w / h), base)
    left, top = _center(nw, base), _center(nh, base)
    sx, sy = w / nw, h / nh
    return (left * sx, top * sy, (left + base) * sx, (top + base) * sy)


def load_image(path, base):
    """Decode `path` -> uint8 (base, base, 3) RGB: shorter side resized to `base` (bilinear,
    antialiased), centre square (_decoded). The resize is Pillow's Image.resize(...,
    Image.BILINEAR, box=box), bitwise, by the C kernel (_C.resize_bilinear). EXIF orientation
    is not applied (as torchvision). Raises ImageError."""
    a, box = _decoded(path, base)
    if a.shape == (base, base, 3):
        return a
    out = np.empty((base, base, 3), np.uint8)
    _C.resize_bilinear(out, a, (base, base), box)
    return out


def load_center_crop(path, size, table, out=None):
    """Decode `path` -> float32 (3, size, size): bitwise center_crop(load_image(path,
    base_size(size)), size, mean, std) for table = normalize_table(mean, std), computed in
    one C call from the decoded pixels (only the crop is resized). Raises ImageError."""
    base = base_size(size)
    a, box = _decoded(path, base)
    if out is None:
        out = np.empty((3, size, size), np.float32)
    c = _center(base, size)
    _C.resize_bilinear(out, a, (base, base), box, c, c, table)
    return out


def _readable(path):
    try:
        load_image(path, 8)
    except ImageError:
        return False
    return True


# ---------------------------------------------------------------- statistics

def _stats_image_indices(n, max_images, seed):
    if max_images is None or max_images >= n:
        return np.arange(n)
    rng = np.random.default_rng(_seed_words(_TAG_STATS, seed))
    return np.sort(rng.choice(n, size=max_images, replace=False))


def compute_stats(dataset, size, max_images=2000, seed=0, workers=2):
    """Per-channel mean/std (0-255 scale) and PCA of the RGB covariance ([0, 1] scale) over the
    base images of up to `max_images` samples (a seeded random subset). Corrupt files are
    skipped with a warning. Returns {"mean": (3,), "std": (3,), "eigval": (3,) descending,
    "eigvec": (3, 3) columns, "num_images": int, "base": int} (float64 arrays)."""
    base = base_size(size)
    idx = _stats_image_indices(len(dataset), max_images, seed)
    s1 = np.zeros(3)
    s2 = np.zeros((3, 3))
    count = 0
    used = 0

    def one(i):
        path = dataset.samples[i][0]
        try:
            a = load_image(path, base)
        except ImageError as e:
            return e
        x = a.reshape(-1, 3).astype(np.float64)
        return x.sum(0), x.T @ x

    with ThreadPoolExecutor(max(1, workers)) as ex:
        for r in ex.map(one, idx):
            if isinstance(r, Exception):
                warnings.warn(f"compute_stats: skipping {r}", RuntimeWarning, stacklevel=2)
                continue
            s1 += r[0]
            s2 += r[1]
            count += base * base
            used += 1
    if not used:
        raise ValueError("compute_stats: no readable images")
    mean = s1 / count
    cov = s2 / count - np.outer(mean, mean)  # 0-255 scale, population covariance
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    w, v = np.linalg.eigh(cov / 255.0 ** 2)
    order = np.argsort(w)[::-1]
    w, v = np.maximum(w[order], 0.0), v[:, order]
    v = v * np.where(v[np.argmax(np.abs(v), axis=0), range(3)] < 0, -1.0, 1.0)  # fixed signs
    return {"mean": mean, "std": std, "eigval": w, "eigvec": v, "num_images": used, "base": base}


# ---------------------------------------------------------------- augmentation

def lighting_shift(alpha, eigval, eigvec):
    """The per-channel constant PCA lighting adds to 0-255 pixels: 255 * eigvec @ (alpha*eigval)."""
    return 255.0 * (np.asarray(eigvec, np.float64) @ (np.asarray(alpha, np.float64)
                                                        * np.asarray(eigval, np.float64)))


def _norm_params(mean, std):
    mean = np.zeros(3) if mean is None else np.asarray(mean, np.float64).reshape(-1)
    std = np.ones(3) if std is None else np.asarray(std, np.float64).reshape(-1)
    if mean.shape != (3,) or std.shape != (3,):
        raise ValueError(f"mean/std: expected 3 values each, got {mean.shape} and {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"std: expected positive values, got {std}")
    return mean, std


def crop_normalize(img, size, top, left, flip=False, shift=None, mean=None, std=None, out=None):
    """img uint8 (H, W, 3) -> float32 (3, size, size): the crop at (top, left), mirrored if
    `flip`, plus the per-channel `shift` (0-255 units), then (x - mean) / std."""
    mean, std = _norm_params(mean, std)
    if out is None:
        out = np.empty((3, size, size), np.float32)
    crop = img[top:top + size, left:left + size]
    if crop.shape != (size, size, 3):
        raise ValueError(f"crop ({top}, {left}, {size}) outside the image of shape {img.shape}")
    if flip:
        crop = crop[:, ::-1]
    scale = (1.0 / std).astype(np.float32)
    offset = ((0.0 if shift is None else np.asarray(shift, np.float64)) - mean) / std
    np.multiply(crop.transpose(2, 0, 1), scale[:, None, None], out=out)
    out += offset.astype(np.float32)[:, None, None]
    return out


def normalize_table(mean=None, std=None):
    """float32 (3, 256): crop_normalize's output for each pixel value 0-255 of each channel
    (what load_center_crop writes), computed by crop_normalize itself so the two agree
    bitwise."""
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), (16, 16, 3))
    return crop_normalize(ramp, 16, 0, 0, mean=mean, std=std).reshape(3, 256)


def _center(base, size):
    return int(round((base - size) / 2.0))


def center_crop(img, size, mean=None, std=None, out=None):
    """The centred size x size crop, normalised: float32 (3, size, size)."""
    h, w = img.shape[:2]
    return crop_normalize(img, size, _center(h, size), _center(w, size), mean=mean, std=std, out=out)


def ten_crop(img, size, mean=None, std=None, out=None):
    """The paper's test-time crops -> float32 (10, 3, size, size): top-left, top-right,
    bottom-left, bottom-right, centre, then the horizontal mirror of each (crop 5 + k is
    crop k flipped left-right)."""
    h, w = img.shape[:2]
    if out is None:
        out = np.empty((10, 3, size, size), np.float32)
    spots = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
             (_center(h, size), _center(w, size))]
    for k, (t, l) in enumerate(spots):
        crop_normalize(img, size, t, l, mean=mean, std=std, out=out[k])
        crop_normalize(img, size, t, l, flip=True, mean=mean, std=std, out=out[5 + k])
    return out


def augment(img, size, rng, mean=None, std=None, eigval=None, eigvec=None, crop=True, flip=True,
            lighting=True, lighting_std=LIGHTING_STD, out=None):
    """Training transform of one base image: random crop, mirror with p=0.5, PCA lighting,
    normalise -> float32 (3, size, size). Draws the same random numbers whatever the flags,
    so switching one augmentation off leaves the others' choices unchanged."""
    h, w = img.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    mirror = bool(rng.random() < 0.5)
    alpha = rng.normal(0.0, lighting_std, 3)
    if not crop:
        top, left = _center(h, size), _center(w, size)
    shift = lighting_shift(alpha, eigval, eigvec) if (lighting and eigval is not None) else None
    return crop_normalize(img, size, top, left, flip=flip and mirror, shift=shift,
                          mean=mean, std=std, out=out)


# ---------------------------------------------------------------- background decoding

def _idle_priority():
    """Make the calling thread run only on a core nothing else of this process (or session,
    under autogroup / cgroups) wants: Linux's SCHED_IDLE. Elsewhere, normal priority."""
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
        except OSError:
            pass


def prefetched(batches, fill, new_batch, workers=2, prefetch=2, idle=False):
    """Yield (idx, x, errors) for each index list `idx` of `batches`, in order: x =
    new_batch(idx) with row k filled by fill(idx[k], x[k]), which returns None or the
    exception that kept the row empty (errors[k]). `workers` threads fill rows up to
    `prefetch` batches ahead of the caller (Pillow and NumPy release the GIL, so decoding
    overlaps the caller's compute); workers=0 fills them in the caller. new_batch is called
    for batch m only after the caller has asked for batch m - prefetch (so is done with the
    one before): new_batch may hand out prefetch + 1 buffers in turn.
    idle=True: the workers run at idle priority (SCHED_IDLE, Linux), on the cores the
    caller's compute leaves free, and the caller fills the rows of its batch no worker has
    started yet (from the end) instead of waiting for them. Closing the generator early
    (break, exception, garbage collection) drops the queued work and joins the threads.
    Used by DataLoader (training, validation) and infer.Predictor (folders)."""
    if workers < 0 or prefetch < 0:
        raise ValueError(f"workers >= 0 and prefetch >= 0 expected, got {workers}, {prefetch}")
    if workers == 0:
        for idx in batches:
            x = new_batch(idx)
            yield idx, x, [fill(i, x[k]) for k, i in enumerate(idx)]
        return
    ex = ThreadPoolExecutor(workers, thread_name_prefix="alexnet-cpu-loader",
                            initializer=_idle_priority if idle else None)
    pending = deque()
    todo = iter(batches)

    def submit():
        idx = next(todo, None)
        if idx is None:
            return
        x = new_batch(idx)
        pending.append((idx, x, [ex.submit(fill, i, x[k]) for k, i in enumerate(idx)]))

    def collect(idx, x, futs):
        errors = [None] * len(futs)
        done = len(futs)
        if idle:  # the workers take rows from the front: the caller takes them from the end
            while done and futs[done - 1].cancel():
                done -= 1
                errors[done] = fill(idx[done], x[done])
        errors[:done] = [f.result() for f in futs[:done]]
        return errors

    try:
        for _ in range(prefetch):
            submit()
        while True:
            if not pending:
                submit()  # prefetch 0: fill a batch when asked for, on every worker at once
                if not pending:
                    return
            idx, x, futs = pending.popleft()
            errors = collect(idx, x, futs)
            if prefetch:
                submit()  # keep `prefetch` batches in flight while the caller computes
            yield idx, x, errors
    finally:
        for _, _, futs in pending:
            for f in futs:
                f.cancel()
        ex.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- loader

class DataLoader:
    """Batches of (x float32 (B, 3, size, size) C-contiguous, y int64 (B,)) from an ImageFolder.

    train=True: random crops, mirrors and PCA lighting (each switchable); train=False:
    centre crops, or with ten_crop=True x is (B, 10, 3, size, size). Images are decoded and
    augmented by `workers` threads (Pillow and NumPy release the GIL), up to `prefetch`
    batches ahead, so the caller's compute overlaps loading. workers=0 loads in the caller.

    Epochs: each iteration uses ``self.epoch`` and then increments it; ``set_epoch(e)`` sets
    the next one (for resuming). Shuffle order and augmentations depend only on
    (seed, epoch, sample index). Unreadable images are skipped with one warning each and
    recorded in ``self.skipped``; their batch comes out shorter (an empty batch is not
    yielded), so len(loader) is the count of batches before skips.

    shard=(rank, size): yield only rank's rows of each batch (distributed.shard_slice);
    every rank gets len(loader) batches, together each batch's rows exactly once.
    """

    def __init__(self, dataset, batch_size, size, mean=None, std=None, train=False, shuffle=None,
                 seed=0, eigval=None, eigvec=None, crop=True, flip=True, lighting=True,
                 lighting_std=LIGHTING_STD, drop_last=False, workers=2, prefetch=2, cache=False,
                 ten_crop=False, shard=(0, 1)):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if size < 1:
            raise ValueError(f"size: expected >= 1, got {size}")
        if workers < 0 or prefetch < 1:
            raise ValueError(f"workers >= 0 and prefetch >= 1 expected, got {workers}, {prefetch}")
        if ten_crop and train:
            raise ValueError("ten_crop is a test-time transform: use it with train=False")
        self.mean, self.std = _norm_params(mean, std)
        self._table = normalize_table(self.mean, self.std)  # centre crops straight from files
        if train and lighting:
            if eigval is None or eigvec is None:
                raise ValueError("lighting=True needs eigval and eigvec (see compute_stats), "
                                 "or pass lighting=False")
            eigval = np.asarray(eigval, np.float64).reshape(3)
            eigvec = np.asarray(eigvec, np.float64).reshape(3, 3)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.size = int(size)
        self.base = base_size(self.size)
        self.train = bool(train)
        self.shuffle = self.train if shuffle is None else bool(shuffle)
        self.seed = int(seed)
        self.eigval, self.eigvec = eigval, eigvec
        self.crop, self.flip, self.lighting = bool(crop), bool(flip), bool(lighting)
        self.lighting_std = float(lighting_std)
        self.drop_last = bool(drop_last)
        self.workers, self.prefetch = int(workers), int(prefetch)
        self.ten_crop = bool(ten_crop)
        self.shard = tuple(shard)
        self.cache = {} if cache else None
        self.skipped = set()
        self.epoch = 0
        self._labels = np.array([label for _, label in dataset.samples], dtype=np.int64)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch):
        """Sample indices in the order epoch `epoch` visits them."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(_seed_words(_TAG_SHUFFLE, self.seed, epoch)).permutation(n)

    def _base_image(self, i):
        if self.cache is not None:
            a = self.cache.get(i)
            if a is not None:
                return a
        a = load_image(self.dataset.samples[i][0], self.base)
        if self.cache is not None:
            self.cache[i] = a
        return a

    def _fill(self, epoch, i, out):
        """Decode and transform sample i into `out`; returns None, or the error if unreadable."""
        path = self.dataset.samples[i][0]
        if path in self.skipped:
            return ImageError(f"{path}: skipped before")
        try:
            if not (self.train or self.ten_crop or self.cache is not None):
                load_center_crop(path, self.size, self._table, out=out)
                return None
            img = self._base_image(i)
        except ImageError as e:
            return e
        if self.ten_crop:
            ten_crop(img, self.size, self.mean, self.std, out=out)
        elif self.train:
            augment(img, self.size, sample_rng(self.seed, epoch, i), self.mean, self.std,
                    self.eigval, self.eigvec, self.crop, self.flip, self.lighting,
                    self.lighting_std, out=out)
        else:
            center_crop(img, self.size, self.mean, self.std, out=out)
        return None

    def _new_batch(self, idx):
        shape = (len(idx), 10, 3, self.size, self.size) if self.ten_crop else \
            (len(idx), 3, self.size, self.size)
        return np.empty(shape, np.float32)

    def _finish(self, idx, x, errors):
        bad = [k for k, e in enumerate(errors) if e is not None]
        for k in bad:
            path = self.dataset.samples[idx[k]][0]
            if path not in self.skipped:
                self.skipped.add(path)
                warnings.warn(f"skipping unreadable image: {errors[k]}", RuntimeWarning,
                              stacklevel=3)
        y = self._labels[idx]
        if bad:
            keep = np.ones(len(idx), bool)
            keep[bad] = False
            x, y = np.ascontiguousarray(x[keep]), y[keep]
        return x, y

    def _batches(self, epoch):
        order = self.order(epoch)
        n, b = len(order), self.batch_size
        stop = n - n % b if self.drop_last else n
        return [order[s:s + b][shard_slice(min(b, n - s), *self.shard)]
                for s in range(0, stop, b)]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self._iter(epoch, self._batches(epoch))

    def _iter(self, epoch, batches):
        fill = lambda i, out: self._fill(epoch, i, out)  # noqa: E731
        with closing(prefetched(batches, fill, self._new_batch, self.workers,
                                self.prefetch)) as filled:
            for idx, x, errors in filled:
                x, y = self._finish(idx, x, errors)
                if len(y):
                    yield x, y

    def __repr__(self):
        return (f"DataLoader({len(self.dataset)} images, batch {self.batch_size}, size {self.size}, "
                f"{'train' if self.train else 'eval'}, workers {self.workers})")
