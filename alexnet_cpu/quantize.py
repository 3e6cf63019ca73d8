"""Post-training int8 quantization and the int8 net that runs it (docs/INT8.md).

quantize(): activation ranges calibrated on a folder of images with the model's evaluation
preprocessing, weights symmetric per output channel -> an int8 weight file. Int8Net: the
forward of such a file on the int8 kernels (csrc/include/ac_int8.h): activations stay u8
(NHWC) between layers, each convolution and linear layer requantizes in its write-back,
max-pooling runs on u8; LRN (paper variant) and the final logits are fp32.

What the file holds (safetensors, checked like every weight file of ours): per conv/linear
layer L, L.weight (I8, the fp32 layout), L.weight_scale (F32 per output channel) and L.bias
(F32); per u8 activation P (the output of each ReLU, or of the LRN after it), P.act_scale
(F32 scalar); the input's input.act_scale and input.zero_point (U8): the image is signed,
so it is quantized with a zero point, and conv1 subtracts its compensation term.
Metadata: the fp32 file's, plus "precision": "int8" and "calibration".
"""
import numpy as np

from . import _C
from .layers import LRN, _buffer, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .weights import WeightFileError

CALIBRATIONS = ("max", "percentile")
PERCENTILE = 99.99        # of each activation's values, for calibration="percentile"
SAMPLES_PER_IMAGE = 4096  # values of each activation kept per image for the percentile
CALIBRATION_BATCH = 16


def _act_points(net):
    """{index of the layer whose output is a u8 activation: its name}: the ReLU after each
    conv/linear layer (named by that layer), or the LRN after it (named by the LRN)."""
    layers, points = net.layers, {}
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, (Conv2d, Linear)) and i + 1 < len(layers) \
                and isinstance(layers[i + 1][1], ReLU):
            lrn = i + 2 < len(layers) and isinstance(layers[i + 2][1], LRN)
            points[i + 2 if lrn else i + 1] = layers[i + 2][0] if lrn else name
    return points


def calibrate(net, batches, method="max"):
    """{activation name: scale} over the batches (float32 NCHW, the evaluation
    preprocessing), plus "input" (scale, zero point). method "max": the largest value seen
    maps to 255; "percentile": the PERCENTILE-th percentile does (larger values clip)."""
    if method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {method!r}; expected one of "
                         f"{', '.join(CALIBRATIONS)}")
    net.eval()
    points, rng = _act_points(net), np.random.default_rng(0)
    seen = {name: [] for name in points.values()}
    lo, hi, count = np.inf, -np.inf, 0
    for x in batches:
        lo, hi, count = min(lo, float(x.min())), max(hi, float(x.max())), count + len(x)
        for i in range(len(net.layers)):
            x = net._forward(x, i, i + 1)
            if i in points:
                v = x.reshape(len(x), -1)
                if method == "max":
                    seen[points[i]].append(v.max(initial=0.0))
                else:
                    pick = rng.integers(0, v.shape[1], (len(v), min(SAMPLES_PER_IMAGE,
                                                                    v.shape[1])))
                    seen[points[i]].append(np.take_along_axis(v, pick, 1).ravel())
    if not count:
        raise ValueError("calibration: no images")
    scales = {}
    for name, vals in seen.items():
        top = (max(vals) if method == "max"
               else float(np.percentile(np.concatenate(vals), PERCENTILE)))
        scales[name] = max(float(top), 1e-8) / 255.0
    lo, hi = min(lo, 0.0), max(hi, 0.0)       # 0 must be exact: it is the padding
    s = max(hi - lo, 1e-8) / 255.0
    scales["input"] = (s, int(np.clip(np.rint(-lo / s), 0, 255)))
    return scales


def quantize_weights(w):
    """Symmetric per output channel: (int8 weights in [-127, 127], float32 scale per row)."""
    flat = w.reshape(len(w), -1).astype(np.float64)
    scale = np.abs(flat).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale.astype(np.float32)


def quantize_net(net, batches, method="max"):
    """{name: tensor} of the int8 file for an fp32 net, calibrated on the batches."""
    scales = calibrate(net, batches, method)
    s, z = scales.pop("input")
    tensors = {"input.act_scale": np.float32(s), "input.zero_point": np.uint8(z)}
    for name, layer in net.layers:
        if isinstance(layer, (Conv2d, Linear)):
            q, ws = quantize_weights(layer.params["weight"])
            tensors.update({f"{name}.weight": q, f"{name}.weight_scale": ws,
                            f"{name}.bias": layer.params["bias"].astype(np.float32)})
    tensors.update({f"{name}.act_scale": np.float32(v) for name, v in scales.items()})
    return tensors


def image_batches(paths, size, mean, std, batch=CALIBRATION_BATCH):
    """float32 NCHW batches of the images' evaluation crops (unreadable ones skipped)."""
    from .data import ImageError, load_center_crop, normalize_table
    table = normalize_table(mean, std)
    out = []
    for p in paths:
        try:
            out.append(load_center_crop(p, size, table))
        except ImageError:
            continue
        if len(out) == batch:
            yield np.stack(out)
            out = []
    if out:
        yield np.stack(out)


def quantize(load_path, data_dir, save_path, images=300, method="max"):
    """The CLI's quantize: the fp32 model at load_path, calibrated on up to `images` images
    under data_dir (any folder; labels unused), written to save_path. Returns the metadata."""
    from .checkpoint import _jsonable, load
    from .infer import IMAGENET_MEAN, IMAGENET_STD, find_images
    from .weights import write_file
    net, meta = load(load_path)
    if isinstance(net, Int8Net):
        raise ValueError(f"{load_path}: already an int8 model")
    paths = find_images(data_dir)
    if len(paths) > images:   # spread over the folder, not its first class only
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, images).astype(int)]
    pre = meta.get("preprocess") or {}
    mean = np.asarray(pre.get("mean", IMAGENET_MEAN), np.float32)
    std = np.asarray(pre.get("std", IMAGENET_STD), np.float32)
    size = int(meta.get("input_size", 224))
    tensors = quantize_net(net, image_batches(paths, size, mean, std), method)
    meta = {k: v for k, v in meta.items() if k not in ("dropout", "train")}
    meta.update(kind="weights", variant=net.variant, num_classes=net.num_classes,
                in_channels=net.in_channels, geometry=net.geometry, precision="int8",
                calibration={"method": method, "images": len(paths)})
    write_file(save_path, tensors, _jsonable(meta))
    return meta


class Int8Net:
    """An int8 AlexNet: forward(x) -> float32 logits like Net's, on the int8 kernels.
    `skeleton` is the fp32 net of the same layout (its parameters unused): geometry,
    shapes and the fp32 layers (LRN, adaptive pooling) come from it."""

    precision = "int8"
    training = False             # inference only

    def __init__(self, skeleton, tensors, path="int8 model"):
        self._net = skeleton.eval()
        self.variant, self.num_classes = skeleton.variant, skeleton.num_classes
        self.in_channels = skeleton.in_channels
        self.ctx = _C.Context()
        self._check(tensors, path)
        self._plan(tensors)
        self._packed, self._bufs = {}, {}

    def eval(self):
        return self

    def train(self, mode=True):
        if mode:
            raise ValueError("an int8 model runs inference only: train the fp32 model")
        return self

    def set_precision(self, precision):
        """The fp32 parts (LRN, logits) stay fp32: only "fp32" or "int8" are accepted."""
        if precision not in ("fp32", "int8"):
            raise ValueError(f"an int8 model runs in int8 (LRN and logits in fp32); "
                             f"precision {precision} does not apply")
        return self

    def summary(self, size):
        return self._net.summary(size)

    @property
    def geometry(self):
        return self._net.geometry

    # -- loading ------------------------------------------------------------------------
    def _expected(self):
        """{tensor name: (dtype, shape)} an int8 file of this layout holds."""
        want = {"input.act_scale": (np.float32, ()), "input.zero_point": (np.uint8, ())}
        for name, layer in self._net.layers:
            if isinstance(layer, (Conv2d, Linear)):
                shape = layer.params["weight"].shape
                want.update({f"{name}.weight": (np.int8, shape),
                             f"{name}.weight_scale": (np.float32, shape[:1]),
                             f"{name}.bias": (np.float32, shape[:1])})
        for name in _act_points(self._net).values():
            want[f"{name}.act_scale"] = (np.float32, ())
        return want

    def _check(self, tensors, path):
        want = self._expected()
        missing, extra = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        if missing or extra:
            raise WeightFileError(f"{path}: int8 tensors do not match the {self.variant} net: "
                                  f"missing {missing[:3]}, unexpected {extra[:3]}")
        for name, (dtype, shape) in want.items():
            t = tensors[name]
            if t.dtype != dtype or t.shape != shape:
                raise WeightFileError(f"{path}: tensor {name!r} is {t.dtype} {t.shape}, "
                                      f"expected {np.dtype(dtype).name} {shape}")
            if dtype == np.float32 and not np.isfinite(t).all():
                raise WeightFileError(f"{path}: tensor {name!r} holds non-finite values")
            if name.endswith("scale") and not (t > 0).all():
                raise WeightFileError(f"{path}: tensor {name!r}: scales must be > 0")

    def _plan(self, t):
        """The op list of forward(), with each layer's requantization folded in: an output
        u8 at scale s_out gets mul = s_in s_w / s_out and add = bias / s_out; a float output
        mul = s_in s_w and add = bias (float64, then rounded to float32 once)."""
        layers, ops, i = self._net.layers, [], 0
        scale, zero = float(t["input.act_scale"]), int(t["input.zero_point"])
        self._input = (scale, zero, 0, self.in_channels)      # scale, zero, pad, channels
        flat = None                # (C, H, W) at the Flatten: fc6's columns are reordered
        while i < len(layers):
            name, layer = layers[i]
            relu = i + 1 < len(layers) and isinstance(layers[i + 1][1], ReLU)
            lrn = relu and i + 2 < len(layers) and isinstance(layers[i + 2][1], LRN)
            if isinstance(layer, (Conv2d, Linear)):
                w = t[f"{name}.weight"]
                pad = getattr(layer, "pad", 0)
                if isinstance(layer, Conv2d):
                    w = w.transpose(0, 2, 3, 1)       # (N, ks, ks, C/groups): NHWC im2col
                elif flat is not None:
                    c, h, ww = flat
                    w = w.reshape(len(w), c, h, ww).transpose(0, 2, 3, 1)
                    flat = None
                if isinstance(layer, Conv2d) and not ops and layer.groups == 1:
                    self._input, pad = (scale, zero, layer.pad, w.shape[3]), 0  # padded once
                w = np.ascontiguousarray(w.reshape(len(w), -1))
                s = scale * t[f"{name}.weight_scale"].astype(np.float64)
                bias = t[f"{name}.bias"].astype(np.float64)
                out = layers[i + 2][0] if lrn else name if relu else None
                s_out = 1.0 if out is None or lrn else float(t[f"{out}.act_scale"])
                comp = (zero * w.astype(np.int64).sum(1)).astype(np.int32) if zero else None
                ops.append(("conv" if isinstance(layer, Conv2d) else "linear", layer, w,
                            comp, (s / s_out).astype(np.float32),
                            (bias / s_out).astype(np.float32), relu, lrn, zero, pad))
                if lrn:
                    ops.append(("lrn", layers[i + 2][1], float(t[f"{out}.act_scale"])))
                    s_out = float(t[f"{out}.act_scale"])
                scale, zero = s_out, 0
                i += 3 if lrn else 2 if relu else 1
                continue
            if isinstance(layer, MaxPool2d):
                ops.append(("pool", layer))
            elif isinstance(layer, AdaptiveAvgPool2d):
                ops.append(("avgpool", layer, scale))
                last_c = [lay for _, lay in layers[:i] if isinstance(lay, Conv2d)][-1]
                flat = (last_c.out_channels, layer.size, layer.size)
            elif isinstance(layer, Flatten):
                ops.append(("flatten",))
            elif not isinstance(layer, Dropout):
                raise ValueError(f"int8: no int8 form of layer {name} ({type(layer).__name__})")
            i += 1
        self._ops = ops

    def _pack(self, ctx):
        """Weights packed for the context's int8 path (once per path; groups one after
        another)."""
        path = _C.int8_path(ctx)
        if path not in self._packed:
            packed = []
            for op in self._ops:
                if op[0] in ("conv", "linear"):
                    w, g = op[2], op[1].groups if op[0] == "conv" else 1
                    if not packed and self._words(path):    # weights 0 past RGB
                        k, c = op[1].k, self._input[3]
                        w = np.pad(w.reshape(len(w), k * k, c), ((0, 0), (0, 0), (0, 4 - c)))
                        w = w.reshape(len(w), -1)
                    ng = len(w) // g
                    packed.append(np.concatenate([_C.int8_pack(w[k * ng:(k + 1) * ng], ctx)
                                                  for k in range(g)]))
            self._packed[path] = packed
        return self._packed[path]

    def _words(self, path):
        """Quantize the input in 4-byte pixels for this path? On the AMX row conv1's kernel
        rows (11 pixels) are then whole 32-bit words, which it reads straight from the
        image (conv1 2.7x faster); the other rows would only do a third more work."""
        first = self._ops[0]
        return path == "amx" and first[0] == "conv" and first[1].groups == 1 and \
            self._input[3] < 4

    # -- compute ------------------------------------------------------------------------
    def forward(self, x):
        """Logits (N, num_classes) float32 for a float32 NCHW batch."""
        x = self._net.check_input(x)
        ctx = self.ctx
        packed = iter(self._pack(ctx))
        s, z, p, c = self._input
        n, _, h, wd = x.shape
        c = 4 if self._words(_C.int8_path(ctx)) else c
        q = self._out("input", (n, h + 2 * p, wd + 2 * p, c), np.uint8)
        _C.int8_quantize(q, x, 1.0 / s, z, p, ctx=ctx)
        for i, op in enumerate(self._ops):
            kind = op[0]
            if kind == "conv":
                _, layer, w, comp, mul, add, relu, lrn, zero, pad = op
                h, wd = q.shape[1:3]
                oh = (h + 2 * pad - layer.k) // layer.stride + 1
                ow = (wd + 2 * pad - layer.k) // layer.stride + 1
                out = self._out(i, (n, oh, ow, len(w)), np.float32 if lrn else np.uint8)
                _C.int8_conv2d(out, q, next(packed), len(w), layer.k, layer.stride, pad,
                               layer.groups, comp, mul, add, relu, zero, ctx)
                q = out
            elif kind == "lrn":
                _, layer, s_out = op
                out = self._out(i, q.shape, np.uint8)
                self._bufs["lrn work"] = _C.int8_lrn(
                    out, q, layer.size, layer.alpha, layer.beta, layer.k, 1.0 / s_out,
                    self._bufs.get("lrn work"), ctx)
                q = out
            elif kind == "pool":
                layer = op[1]
                c, oh, ow = layer.output_shape((q.shape[3],) + q.shape[1:3])
                out = self._out(i, (n, oh, ow, c), np.uint8)
                _C.int8_maxpool(out, q, layer.k, layer.stride)
                q = out
            elif kind == "avgpool":
                _, layer, s = op
                if q.shape[1:3] != (layer.size, layer.size):   # 224 px: already 6x6
                    f = np.ascontiguousarray(q.transpose(0, 3, 1, 2), dtype=np.float32)
                    f = layer.forward(f)
                    q = self._out(i, (n,) + f.shape[2:] + f.shape[1:2], np.uint8)
                    _C.int8_quantize(q, f, 1.0, 0, ctx=ctx)
            elif kind == "flatten":
                q = q.reshape(n, -1)
            else:
                _, layer, w, comp, mul, add, relu, _, _, _ = op
                out = self._out(i, (n, len(w)), np.uint8 if relu else np.float32)
                _C.int8_linear(out, q, next(packed), len(w), comp, mul, add, relu, ctx)
                q = out
        return q.copy()

    def _out(self, i, shape, dtype):
        """Op i's output buffer, kept between forwards as the layers keep theirs (fresh
        arrays every batch cost page faults: docs/PERFORMANCE.md, folder inference)."""
        self._bufs[i] = _buffer(self._bufs.get(i), shape, dtype)
        return self._bufs[i]
