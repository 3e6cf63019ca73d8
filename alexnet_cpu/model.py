"""The layer graph (a chain of named layers) and the two AlexNet variants.

Parameter names follow torchvision's nn.Sequential positions (features.{i}.weight,
classifier.{j}.bias), so state dicts move between the two worlds unchanged.
"""
import numpy as np

from . import _C
from .layers import (LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d,
                     ReLU)

VARIANTS = ("paper", "owt")
INITS = ("kaiming", "torch", "paper")
MIN_INPUT = 63   # smallest square input that survives the three 3/2 max-pools
ALIGN = 16       # floats: each parameter starts its own 64-byte line in the arena
# What varies between AlexNets of the same layout (Caffe's bvlc_alexnet: conv1 without
# padding for 227 px input, LRN k=1 and alpha 2e-5 in our undivided convention, ceil-mode
# pools). LRN alpha here is the paper's, not divided by size (ONNX's and torch's alpha is
# size times it). owt nets have no LRN: their "lrn" is None.
GEOMETRY = {"conv1_pad": 2, "pool_ceil": False,
            "lrn": {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}}


class Net:
    """A chain of layers, each with a dotted name ("features.0", "avgpool", ...)."""

    def __init__(self, named_layers, variant=None, num_classes=None, in_channels=3):
        self.layers = list(named_layers)          # [(name, layer)]
        self.variant, self.num_classes, self.in_channels = variant, num_classes, in_channels
        # The first layer's input gradient is never needed: skip computing it.
        self.layers[0][1].need_input_grad = False
        self.training = True
        self._adopt_parameters()
        # The kernel context of every call this net makes (ISA path, precision, Winograd
        # choice), from the defaults at construction (set_isa, ALEXNET_CPU_*): nets with
        # different contexts may run at once in different threads.
        self.ctx = _C.Context()

    @property
    def precision(self):
        return self.ctx.precision

    def set_precision(self, precision):
        """What the convolutions and linear layers multiply in: "fp32" (the default; results
        bitwise reproducible) or "bf16" (operands rounded to bfloat16, sums, activations,
        gradients and weights in fp32; needs AVX512_BF16). Returns the net."""
        self.ctx = self.ctx.replace(precision=precision)
        return self

    # -- modes ------------------------------------------------------------------------
    def train(self, mode=True):
        self.training = mode
        for _, layer in self.layers:
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def invalidate(self):
        """Forget what layers derived from the parameters (packed inference weights) and
        make the parameters writeable: call before writing them in place in eval mode."""
        for _, layer in self.layers:
            layer.invalidate()

    # -- compute ----------------------------------------------------------------------
    def check_input(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            raise ValueError("input must be a float32 array of shape (N, C, H, W), got "
                             f"{getattr(x, 'dtype', type(x).__name__)} "
                             f"{getattr(x, 'shape', '')}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the net expects "
                             f"{self.in_channels}")
        if min(x.shape[2:]) < MIN_INPUT:
            raise ValueError(f"input {x.shape[2]}x{x.shape[3]} is too small: AlexNet needs "
                             f"at least {MIN_INPUT}x{MIN_INPUT}")
        shape = x.shape[1:]
        try:        # a geometry other than the default may need a larger input
            for _, layer in self.layers:
                shape = layer.output_shape(shape)
        except ValueError as e:
            raise ValueError(f"input {x.shape[2]}x{x.shape[3]} is too small for this net "
                             f"({e})") from None
        return np.ascontiguousarray(x)

    def forward(self, x):
        """Logits (N, num_classes) for a float32 NCHW batch (a new array). In eval mode a
        ReLU right after a convolution is fused into it."""
        x = self.check_input(x)
        return self._forward(x)

    def _forward(self, x, start=0, stop=None):
        """The output of layers start..stop-1 (a copy)."""
        layers, i, ctx = self.layers, start, self.ctx
        stop = len(layers) if stop is None else stop
        while i < stop:
            layer = layers[i][1]
            if (not self.training and isinstance(layer, Conv2d) and i + 1 < stop
                    and isinstance(layers[i + 1][1], ReLU)):
                x = layers[i + 1][1].take_fused_output(layer.forward(x, ctx, relu=True))
                i += 2
                continue
            x = layer.forward(x, ctx)
            i += 1
        return x.copy()

    def backward(self, dlogits, grad_ready=None):
        """Back-propagate d loss / d logits; accumulates into every parameter gradient.
        grad_ready(k), if given, is called once layer k's gradients are final (a
        data-parallel run starts reducing them while the earlier layers' backward runs)."""
        d = np.ascontiguousarray(dlogits, dtype=np.float32)
        self.grad_flat()
        for k in range(len(self.layers) - 1, -1, -1):
            d = self.layers[k][1].backward(d, self.ctx)
            if grad_ready is not None:
                grad_ready(k)
            if d is None:
                break

    def index(self, name):
        """Position of the layer called `name` in the chain."""
        names = [n for n, _ in self.layers]
        if name not in names:
            raise ValueError(f"the model has no layer {name!r}")
        return names.index(name)

    def gradient_at(self, x, name, dlogits):
        """(output of layer `name`, d score / d that output) for the batch x, where
        dlogits(logits) returns d score / d logits: the forward, then the backward through
        the layers after `name` only (what Grad-CAM needs). Their parameter gradients
        accumulate as in backward."""
        k = self.index(name)
        x = self.check_input(x)
        a = self._forward(x, stop=k + 1)
        d = np.ascontiguousarray(dlogits(self._forward(a.copy(), start=k + 1)),
                                 dtype=np.float32)
        self.grad_flat()
        for j in range(len(self.layers) - 1, k, -1):
            d = self.layers[j][1].backward(d, self.ctx)
        return a, d.copy()

    # -- geometry -------------------------------------------------------------------------
    @property
    def geometry(self):
        """{"conv1_pad", "pool_ceil", "lrn": {size, alpha, beta, k} or None} read from the
        layers (see GEOMETRY)."""
        first = self.layers[0][1]
        pools = [l for _, l in self.layers if isinstance(l, MaxPool2d)]
        lrns = [l for _, l in self.layers if isinstance(l, LRN)]
        lrn = ({"size": lrns[0].size, "alpha": lrns[0].alpha, "beta": lrns[0].beta,
                "k": lrns[0].k} if lrns else None)
        return {"conv1_pad": first.pad, "pool_ceil": bool(pools and pools[0].ceil_mode),
                "lrn": lrn}

    def set_geometry(self, geometry):
        """Apply a geometry (check_geometry's form; missing keys keep their value) to every
        layer it concerns. Returns the net."""
        g = check_geometry({**self.geometry, **geometry})
        self.layers[0][1].pad = g["conv1_pad"]
        for _, layer in self.layers:
            if isinstance(layer, MaxPool2d):
                layer.ceil_mode = g["pool_ceil"]
            elif isinstance(layer, LRN) and g["lrn"] is not None:
                layer.size, layer.alpha, layer.beta, layer.k = (
                    g["lrn"][key] for key in ("size", "alpha", "beta", "k"))
        return self

    # -- parameters: one arena ----------------------------------------------------------
    def _adopt_parameters(self):
        """Move every layer's parameters into one flat float32 buffer, self.flat, and leave
        the layers views of it. Order: the last layer's first (backward order, in which a
        data-parallel run sums the gradients while the backward goes on); each tensor
        starts on a 64-byte boundary (the gaps stay zero). One buffer lets SGD update all
        parameters in one kernel call and MPI broadcast and reduce them in one piece."""
        self.extents, self.layer_end, off = {}, {}, 0   # name -> (start, stop); k -> stop
        for k in range(len(self.layers) - 1, -1, -1):
            lname, layer = self.layers[k]
            for pname, p in layer.params.items():
                self.extents[f"{lname}.{pname}"] = (off, off + p.size)
                self.layer_end[k] = off + p.size
                off += -(-p.size // ALIGN) * ALIGN
        self.arena_size = off
        self.flat = self.new_arena()
        self._grad_flat = None
        for lname, layer in self.layers:
            layer.params = self.views(self.flat, lname, layer.params)

    def new_arena(self):
        """A zeroed float32 buffer of the arena's size, 64-byte aligned (the parameters,
        gradients, momentum)."""
        n = self.arena_size
        raw = np.zeros(n + ALIGN, np.float32)
        skip = (-raw.ctypes.data % (4 * ALIGN)) // 4
        return raw[skip:skip + n]

    def views(self, buf, layer_name=None, fill=None):
        """{name: view of buf shaped like that parameter} for an arena-sized buffer buf
        (the parameters, gradients, momentum): every parameter, or those of one layer
        keyed by their short names, copying in the arrays of `fill` if given."""
        out = {}
        for lname, layer in self.layers:
            if layer_name is not None and lname != layer_name:
                continue
            for pname, p in layer.params.items():
                a, b = self.extents[f"{lname}.{pname}"]
                v = buf[a:b].reshape(p.shape)
                if fill is not None and fill[pname].any():   # zeros: leave the pages unmapped
                    v[...] = fill[pname]
                out[pname if layer_name is not None else f"{lname}.{pname}"] = v
        return out

    def grad_flat(self):
        """The gradient arena (allocated on first use: inference never pays for it); the
        layers accumulate into views of it."""
        if self._grad_flat is None:
            self._grad_flat = self.new_arena()
            for lname, layer in self.layers:
                if layer.params:
                    layer._grads = self.views(self._grad_flat, lname, layer._grads)
        return self._grad_flat

    def parameters(self):
        """Ordered [(name, value, grad)] over every parameter."""
        self.grad_flat()
        return [(f"{lname}.{pname}", p, layer.grads[pname])
                for lname, layer in self.layers for pname, p in layer.params.items()]

    def named_params(self):
        """[(name, value)] without touching the gradients."""
        return [(f"{lname}.{pname}", p)
                for lname, layer in self.layers for pname, p in layer.params.items()]

    def num_parameters(self):
        return sum(p.size for _, p in self.named_params())

    def zero_grad(self):
        self.grad_flat().fill(0.0)

    def state_dict(self):
        """{name: copy of the parameter}, torchvision-style names."""
        return {name: p.copy() for name, p in self.named_params()}

    def load_state_dict(self, state):
        """Copy parameters in; names and shapes must match exactly."""
        self.invalidate()
        mine = dict(self.named_params())
        missing = sorted(set(mine) - set(state))
        extra = sorted(set(state) - set(mine))
        if missing or extra:
            raise ValueError(f"state dict does not match the net: missing {missing}, "
                             f"unexpected {extra}")
        for name, p in mine.items():
            v = np.asarray(state[name])
            if v.shape != p.shape:
                raise ValueError(f"{name}: shape {tuple(v.shape)} in the state dict, "
                                 f"{p.shape} in the net")
            p[...] = v

    def summary(self, size):
        """[(name, layer description, output shape, #params, forward MFLOPs per image)]."""
        rows, shape = [], (self.in_channels, size, size)
        for name, layer in self.layers:
            flops = layer.flops(shape)
            shape = layer.output_shape(shape)
            rows.append((name, layer.describe(), shape,
                         sum(p.size for p in layer.params.values()), flops / 1e6))
        return rows

    def dropout_state(self):
        """[(seed, calls)] of each dropout layer: what the next masks derive from."""
        return [(layer.seed, layer.calls) for _, layer in self.layers
                if isinstance(layer, Dropout)]

    def set_dropout_state(self, state):
        for layer, (seed, calls) in zip(
                (l for _, l in self.layers if isinstance(l, Dropout)), state):
            layer.seed, layer.calls = int(seed), int(calls)


def _number(x, lo, hi):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi


def check_geometry(g):
    """A geometry dict, validated -> a normalised copy; ValueError naming the first bad
    field."""
    if not isinstance(g, dict) or set(g) != set(GEOMETRY):
        raise ValueError(f"geometry: expected an object with keys {sorted(GEOMETRY)}, got "
                         f"{sorted(g) if isinstance(g, dict) else type(g).__name__}")
    pad, ceil, lrn = g["conv1_pad"], g["pool_ceil"], g["lrn"]
    if not (isinstance(pad, int) and not isinstance(pad, bool) and 0 <= pad <= 5):
        raise ValueError(f"geometry.conv1_pad: expected an integer in 0..5, got {pad!r}")
    if not isinstance(ceil, bool):
        raise ValueError(f"geometry.pool_ceil: expected true or false, got {ceil!r}")
    if lrn is not None:
        if not isinstance(lrn, dict) or set(lrn) != {"size", "alpha", "beta", "k"}:
            raise ValueError("geometry.lrn: expected null or an object with size, alpha, "
                             "beta, k")
        size = lrn["size"]
        if not (isinstance(size, int) and not isinstance(size, bool) and size % 2 == 1
                and 1 <= size <= 15):
            raise ValueError(f"geometry.lrn.size: expected an odd integer in 1..15, got "
                             f"{size!r}")
        for key, lo, hi in (("alpha", 0.0, 1e3), ("beta", 0.0, 1e3), ("k", 1e-6, 1e6)):
            if not _number(lrn[key], lo, hi):
                raise ValueError(f"geometry.lrn.{key}: expected a number in [{lo:g}, {hi:g}], "
                                 f"got {lrn[key]!r}")
        lrn = {"size": size, **{key: float(lrn[key]) for key in ("alpha", "beta", "k")}}
    return {"conv1_pad": pad, "pool_ceil": ceil, "lrn": lrn}


def _convs(variant, in_channels):
    """Feature extractor as torchvision positions: list of layers."""
    if variant == "owt":
        return [Conv2d(in_channels, 64, 11, 4, 2), ReLU(), MaxPool2d(3, 2),
                Conv2d(64, 192, 5, 1, 2), ReLU(), MaxPool2d(3, 2),
                Conv2d(192, 384, 3, 1, 1), ReLU(),
                Conv2d(384, 256, 3, 1, 1), ReLU(),
                Conv2d(256, 256, 3, 1, 1), ReLU(), MaxPool2d(3, 2)]
    return [Conv2d(in_channels, 96, 11, 4, 2), ReLU(), LRN(), MaxPool2d(3, 2),
            Conv2d(96, 256, 5, 1, 2, groups=2), ReLU(), LRN(), MaxPool2d(3, 2),
            Conv2d(256, 384, 3, 1, 1), ReLU(),
            Conv2d(384, 384, 3, 1, 1, groups=2), ReLU(),
            Conv2d(384, 256, 3, 1, 1, groups=2), ReLU(), MaxPool2d(3, 2)]


def alexnet(variant="paper", num_classes=1000, in_channels=3, init="kaiming",
            bias_value=1.0, dropout=0.5, seed=0, geometry=None):
    """Build AlexNet.

    variant: "paper" (2012: 96-256-384-384-256, groups=2 on conv2/4/5, LRN) or "owt"
      (torchvision's 64-192-384-256-256).
    init: "kaiming" (default: He normal for ReLU nets, zero biases; trains reliably) or
      "paper" (N(0, 0.01) weights, biases `bias_value` in conv2/4/5 and fc6/7, else 0),
      or None: zeros (parameters about to be loaded).
    geometry: conv1 padding, ceil-mode pools, LRN constants (see GEOMETRY; default the
      paper's).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    if num_classes < 1 or in_channels < 1:
        raise ValueError("num_classes and in_channels must be >= 1")
    features = _convs(variant, in_channels)
    classifier = [Dropout(dropout, seed=seed * 2 + 1), Linear(256 * 6 * 6, 4096), ReLU(),
                  Dropout(dropout, seed=seed * 2 + 2), Linear(4096, 4096), ReLU(),
                  Linear(4096, num_classes)]
    named = ([(f"features.{i}", l) for i, l in enumerate(features)]
             + [("avgpool", AdaptiveAvgPool2d(6)), ("flatten", Flatten())]
             + [(f"classifier.{j}", l) for j, l in enumerate(classifier)])
    net = Net(named, variant, num_classes, in_channels)
    if geometry is not None:
        net.set_geometry(geometry)
    if init is not None:
        _initialise(net, init, bias_value, variant, seed)
    return net


def _initialise(net, init, bias_value, variant, seed):
    rng = np.random.default_rng(seed)
    # The paper's bias-1 layers: conv2, conv4, conv5, fc6, fc7.
    conv_ones = {"paper": (4, 10, 12), "owt": (3, 8, 10)}[variant]
    ones = {f"features.{i}" for i in conv_ones} | {"classifier.1", "classifier.4"}
    last = net.layers[-1][0]
    for name, layer in net.layers:
        if "weight" not in layer.params:
            continue
        w, b = layer.params["weight"], layer.params["bias"]
        fan_in = int(np.prod(w.shape[1:]))
        if init == "paper":
            rng.standard_normal(out=w, dtype=np.float32)
            w *= 0.01
            b[...] = bias_value if name in ones else 0.0
        elif init == "torch":
            bound = 1.0 / np.sqrt(fan_in)
            rng.random(out=w, dtype=np.float32)
            w *= 2 * bound
            w -= bound
            b[...] = rng.uniform(-bound, bound, b.shape)
        else:
            # He normal keeps activations' scale through the ReLUs; small final layer so
            # the initial logits are near zero and the first steps do not blow up.
            rng.standard_normal(out=w, dtype=np.float32)
            w *= 0.01 if name == last else np.sqrt(2.0 / fan_in)
            b[...] = 0.0
