"""Layers of the graph runtime: each owns its parameters, their gradients and what its
forward saved for backward. The arithmetic is in C (alexnet_cpu._C); this module only
shapes buffers and calls it.

Buffers are reused between steps: a layer keeps its output and input-gradient arrays and
reallocates them only when the batch shape changes. A caller that needs an output beyond
the next forward must copy it (Net.forward returns a copy of the logits).
Shapes: activations NCHW (N batch, C channels, H, W), conv weights OIHW, linear (out, in).
forward and backward take the call's kernel context (_C.Context: ISA path, precision,
Winograd choice; None: the defaults), which the net passes down.
"""
import numpy as np

from . import _C


def _buffer(buf, shape, dtype=np.float32):
    """`buf` if it already has this shape and dtype, else a new uninitialised array."""
    if buf is not None and buf.shape == tuple(shape) and buf.dtype == dtype:
        return buf
    return np.empty(shape, dtype=dtype)


class Layer:
    """Base: no parameters, identity shapes, no FLOPs."""
    kind = "Layer"

    def __init__(self):
        self.params = {}      # name -> float32 array
        self._grads = None
        self.training = True
        self.need_input_grad = True

    @property
    def grads(self):
        """name -> float32 array shaped like the parameter, accumulated by backward;
        allocated on first use so inference never pays for them."""
        if self._grads is None:
            self._grads = {n: np.zeros_like(p) for n, p in self.params.items()}
        return self._grads

    def invalidate(self):
        """Forget anything derived from the parameters (Conv2d's packed inference weights).
        Call it before writing parameters in place while in eval mode (Net.load_state_dict
        and switching modes do): cached parameters are read-only until then."""

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def flops(self, in_shape):
        """Forward floating-point operations for one image of shape in_shape (C, H, W)."""
        return 0

    def forward(self, x, ctx=None):
        raise NotImplementedError

    def backward(self, dy, ctx=None):
        raise NotImplementedError

    def describe(self):
        return self.kind


class _PackedLayer(Layer):
    """A layer whose weights may be packed once for the GEMM in eval mode (on first forward;
    subclasses say how in _pack) and reused; the pack is dropped on any mode switch, on
    backward, on invalidate() and when the context or the parameter arrays change. While
    packed, the parameter arrays are read-only, so a stray in-place write fails loudly
    instead of going unseen."""

    def __init__(self):
        self._packed = self._packed_for = self._packed_buf = None
        super().__init__()

    @property
    def training(self):
        return self._training

    @training.setter
    def training(self, mode):
        self._training = bool(mode)
        self.invalidate()

    def invalidate(self):
        if self._packed_for is not None:
            for p, writeable in self._packed_for[1]:
                p.flags.writeable = writeable
        self._packed = self._packed_for = None

    def _packed_weights(self, ctx):
        """The weights and bias packed for the context's ISA path and precision, packing
        them if needed."""
        w, b = self.params["weight"], self.params["bias"]
        key = ctx = ctx if ctx is not None else _C.default_context()
        if self._packed is not None:
            fkey, arrays = self._packed_for
            if fkey == key and arrays[0][0] is w and arrays[1][0] is b:
                return self._packed
            self.invalidate()
        self._packed = self._packed_buf = self._pack(self._packed_buf, ctx)
        self._packed_for = (key, ((w, w.flags.writeable), (b, b.flags.writeable)))
        w.flags.writeable = b.flags.writeable = False
        return self._packed

    def _pack(self, buf, ctx):
        raise NotImplementedError


class Conv2d(_PackedLayer):
    """In eval mode the weights and bias are packed once (_PackedLayer)."""
    kind = "Conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: channels {in_channels}->{out_channels} not divisible "
                             f"by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k, self.stride, self.pad, self.groups = kernel_size, stride, padding, groups
        wshape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.params = {"weight": np.zeros(wshape, np.float32),
                       "bias": np.zeros(out_channels, np.float32)}
        self._x = self._y = self._dx = self._work_fwd = self._work_bwd = None

    def output_shape(self, in_shape):
        c, h, w = in_shape
        if c != self.in_channels:
            raise ValueError(f"Conv2d expects {self.in_channels} input channels, got {c}")
        oh = (h + 2 * self.pad - self.k) // self.stride + 1
        ow = (w + 2 * self.pad - self.k) // self.stride + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"Conv2d {self.k}x{self.k}/{self.stride}: input {h}x{w} too small")
        return (self.out_channels, oh, ow)

    def flops(self, in_shape):
        o, oh, ow = self.output_shape(in_shape)
        return 2 * o * oh * ow * (self.in_channels // self.groups) * self.k * self.k

    def _pack(self, buf, ctx):
        return _C.conv2d_pack_weights(self.params["weight"], self.params["bias"], self.groups,
                                      buf, ctx)

    def forward(self, x, ctx=None, relu=False):
        """relu=True: the output rectified in place as a following ReLU would (fused into
        the convolution in eval mode); hand it to that ReLU with ReLU.take_fused_output."""
        self._x = x
        self._y = _buffer(self._y, (x.shape[0],) + self.output_shape(x.shape[1:]))
        if self._training:
            self._work_fwd = _C.conv2d_forward(self._y, x, self.params["weight"],
                                               self.params["bias"], self.stride, self.pad,
                                               self.groups, self._work_fwd, ctx)
            if relu:
                _C.relu_forward(self._y, self._y)
        else:
            self._work_fwd = _C.conv2d_forward_packed(
                self._y, x, self._packed_weights(ctx), self.params["weight"].shape, self.stride,
                self.pad, self.groups, self._work_fwd, relu, ctx)
        return self._y

    def backward(self, dy, ctx=None):
        self.invalidate()  # the weights may be stepped next (training in eval mode)
        dx = None
        if self.need_input_grad:
            dx = self._dx = _buffer(self._dx, self._x.shape)
        self._work_bwd = _C.conv2d_backward(dx, self.grads["weight"], self.grads["bias"], dy,
                                            self._x, self.params["weight"], self.stride,
                                            self.pad, self.groups, self._work_bwd, ctx)
        return dx

    def describe(self):
        g = f", groups={self.groups}" if self.groups > 1 else ""
        return (f"Conv2d({self.in_channels}, {self.out_channels}, {self.k}x{self.k}, "
                f"stride={self.stride}, pad={self.pad}{g})")


class ReLU(Layer):
    """In place: overwrites its input (AlexNet never needs a conv/linear output again)."""
    kind = "ReLU"

    def forward(self, x, ctx=None):
        _C.relu_forward(x, x)
        self._y = x
        return x

    def take_fused_output(self, y):
        """The fused hand-off: y was already rectified by the layer before
        (Conv2d.forward(x, relu=True)), so this layer skips its forward and keeps y, which
        its backward needs, as if forward had returned it. Returns y."""
        self._y = y
        return y

    def backward(self, dy, ctx=None):
        _C.relu_backward(dy, dy, self._y)
        return dy


class LRN(Layer):
    """Local response normalisation across channels, the paper's formula:
    b = a / (k + alpha * sum_{n neighbours} a^2)^beta  (alpha not divided by n)."""
    kind = "LRN"

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self._y = self._scale = self._dx = None

    def flops(self, in_shape):
        return int(np.prod(in_shape)) * (2 * self.size + 6)

    def forward(self, x, ctx=None):
        self._x = x
        self._y = _buffer(self._y, x.shape)
        self._scale = _buffer(self._scale, x.shape)
        _C.lrn_forward(self._y, self._scale, x, self.size, self.alpha, self.beta, self.k, ctx)
        return self._y

    def backward(self, dy, ctx=None):
        self._dx = _buffer(self._dx, dy.shape)
        _C.lrn_backward(self._dx, dy, self._x, self._y, self._scale, self.size, self.alpha,
                        self.beta, self.k, ctx)
        return self._dx

    def describe(self):
        return f"LRN(size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g})"


class MaxPool2d(Layer):
    """ceil_mode: the output size rounds up (Caffe's pools, ONNX ceil_mode=1); the last
    window then hangs over the bottom/right edge and sees only the input inside it (done
    by padding a copy with -inf, only at sizes where the rounding differs)."""
    kind = "MaxPool2d"

    def __init__(self, kernel_size=3, stride=2, ceil_mode=False):
        super().__init__()
        self.k, self.stride, self.ceil_mode = kernel_size, stride, bool(ceil_mode)
        self._y = self._argmax = self._dx = self._xpad = None

    def _out(self, n):
        span = n - self.k
        return (-(-span // self.stride) if self.ceil_mode else span // self.stride) + 1

    def output_shape(self, in_shape):
        c, h, w = in_shape
        if h < self.k or w < self.k:
            raise ValueError(f"MaxPool2d {self.k}/{self.stride}: input {h}x{w} too small")
        return (c, self._out(h), self._out(w))

    def flops(self, in_shape):
        return int(np.prod(self.output_shape(in_shape))) * self.k * self.k

    def _padded(self, x, shape):
        """x, or a copy padded with -inf to cover ceil mode's last windows."""
        ph, pw = [(o - 1) * self.stride + self.k for o in shape[2:]]
        if ph <= x.shape[2] and pw <= x.shape[3]:
            return x
        self._xpad = _buffer(self._xpad, x.shape[:2] + (ph, pw))
        self._xpad.fill(-np.inf)
        self._xpad[:, :, :x.shape[2], :x.shape[3]] = x
        return self._xpad

    def forward(self, x, ctx=None):
        """In eval mode the argmax (for backward) is not written; a backward after an eval
        forward computes it then from the input, still held by the layer before."""
        self._in_shape = x.shape
        shape = (x.shape[0],) + self.output_shape(x.shape[1:])
        self._x = x = self._padded(x, shape)
        self._y = _buffer(self._y, shape)
        self._have_argmax = self.training
        if self.training:
            self._argmax = _buffer(self._argmax, shape, np.int32)
        _C.maxpool2d_forward(self._y, self._argmax if self.training else None, x, self.k,
                             self.stride, ctx)
        return self._y

    def backward(self, dy, ctx=None):
        if not self._have_argmax:
            self._argmax = _buffer(self._argmax, self._y.shape, np.int32)
            _C.maxpool2d_forward(self._y, self._argmax, self._x, self.k, self.stride, ctx)
            self._have_argmax = True
        self._dx = _buffer(self._dx, self._x.shape)
        _C.maxpool2d_backward(self._dx, dy, self._argmax)
        if self._x.shape != self._in_shape:   # ceil mode: drop the padding's gradient
            return np.ascontiguousarray(self._dx[:, :, :self._in_shape[2], :self._in_shape[3]])
        return self._dx

    def describe(self):
        return f"MaxPool2d({self.k}, stride={self.stride}{', ceil' if self.ceil_mode else ''})"


class AdaptiveAvgPool2d(Layer):
    """Average pool to a fixed output size with torch's bins; identity when sizes match."""
    kind = "AdaptiveAvgPool2d"

    def __init__(self, output_size=6):
        super().__init__()
        self.size = output_size
        self._y = self._dx = None

    def output_shape(self, in_shape):
        return (in_shape[0], self.size, self.size)

    def flops(self, in_shape):
        return 0 if tuple(in_shape[1:]) == (self.size, self.size) else int(np.prod(in_shape))

    def forward(self, x, ctx=None):
        self._in_shape = x.shape
        if x.shape[2:] == (self.size, self.size):
            return x
        self._y = _buffer(self._y, x.shape[:2] + (self.size, self.size))
        _C.adaptive_avgpool2d_forward(self._y, x)
        return self._y

    def backward(self, dy, ctx=None):
        if self._in_shape[2:] == (self.size, self.size):
            return dy
        self._dx = _buffer(self._dx, self._in_shape)
        _C.adaptive_avgpool2d_backward(self._dx, dy)
        return self._dx

    def describe(self):
        return f"AdaptiveAvgPool2d({self.size}x{self.size})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order (torch's), a view."""
    kind = "Flatten"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, ctx=None):
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, ctx=None):
        return dy.reshape(self._in_shape)


class Dropout(Layer):
    """Inverted dropout: scales kept units by 1/(1-p) in training, identity in eval.
    The mask of call t is drawn from seed (self.seed, t): reproducible and resumable.
    row_offset r: the batch's rows are rows r, r+1, ... of that call's mask (a data-parallel
    rank or a micro-batch gets the mask its samples would get in the whole batch)."""
    kind = "Dropout"

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        self.p, self.seed, self.calls, self.row_offset = p, seed, 0, 0
        self._y = self._mask = self._dx = None

    def forward(self, x, ctx=None):
        self._active = self.training and self.p > 0
        if not self._active:
            return x
        self._y = _buffer(self._y, x.shape)
        self._mask = _buffer(self._mask, x.shape, np.uint8)
        call_seed = int(np.random.SeedSequence([self.seed, self.calls]).generate_state(
            1, np.uint64)[0])
        self.calls += 1
        if self.row_offset:
            call_seed = _skip_seed(call_seed, self.row_offset * (x.size // x.shape[0]))
        _C.dropout_forward(self._y, self._mask, x, self.p, call_seed)
        return self._y

    def backward(self, dy, ctx=None):
        if not self._active:
            return dy
        self._dx = _buffer(self._dx, dy.shape)
        _C.dropout_backward(self._dx, dy, self._mask, self.p)
        return self._dx

    def describe(self):
        return f"Dropout(p={self.p:g})"


_M64, _GOLD = 2 ** 64 - 1, 0x9e3779b97f4a7c15


def _skip_seed(seed, n):
    """The seed whose dropout mask (eltwise.c: element i hashes mix64(mix64(seed + G) +
    (i + 1) G)) starts at element n of seed's mask: invert mix64, SplitMix64's bijection."""
    z = (_mix64((seed + _GOLD) & _M64) + n * _GOLD) & _M64
    for shift, mul in ((31, 0x94d049bb133111eb), (27, 0xbf58476d1ce4e5b9), (30, None)):
        y = z
        for _ in range(64 // shift + 1):          # undo z ^= z >> shift
            y = z ^ (y >> shift)
        z = y if mul is None else y * pow(mul, -1, 2 ** 64) & _M64
    return (z - _GOLD) & _M64


def _mix64(z):
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9 & _M64
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb & _M64
    return z ^ (z >> 31)


class Linear(_PackedLayer):
    """y = x W^T + b; W is (out, in). In bf16 eval mode W is packed once (_PackedLayer): a
    forward then streams half the bytes and packs only x (fp32 keeps the plain sgemm, whose
    small-output path reads W as stored)."""
    kind = "Linear"

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.params = {"weight": np.zeros((out_features, in_features), np.float32),
                       "bias": np.zeros(out_features, np.float32)}
        self._y = self._dx = None

    def output_shape(self, in_shape):
        if tuple(in_shape) != (self.in_features,):
            raise ValueError(f"Linear expects {self.in_features} input features, "
                             f"got shape {tuple(in_shape)}")
        return (self.out_features,)

    def flops(self, in_shape):
        return 2 * self.in_features * self.out_features

    def forward(self, x, ctx=None):
        self._x = np.ascontiguousarray(x)
        self._y = _buffer(self._y, (x.shape[0], self.out_features))
        ctx = ctx if ctx is not None else _C.default_context()
        if not self._training and ctx.precision == "bf16":
            _C.sgemm_packed_b(self._x, self._packed_weights(ctx), self.out_features, self._y,
                              ctx=ctx)
        else:
            _C.sgemm(self._x, self.params["weight"], out=self._y, trans_b=True, ctx=ctx)
        _C.bias_add(self._y, self.params["bias"])
        return self._y

    def _pack(self, buf, ctx):
        return _C.sgemm_pack_b(self.params["weight"], trans_b=True, packed=buf, ctx=ctx)

    def backward(self, dy, ctx=None):
        self.invalidate()  # the weights may be stepped next (training in eval mode)
        _C.sgemm(dy, self._x, out=self.grads["weight"], trans_a=True, beta=1.0, ctx=ctx)
        _C.bias_grad(self.grads["bias"], dy)
        if not self.need_input_grad:
            return None
        self._dx = _buffer(self._dx, self._x.shape)
        _C.sgemm(dy, self.params["weight"], out=self._dx, ctx=ctx)
        return self._dx

    def describe(self):
        return f"Linear({self.in_features}, {self.out_features})"
