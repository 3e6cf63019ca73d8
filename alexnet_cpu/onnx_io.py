"""AlexNet to and from ONNX.

export_onnx writes the inference graph of a Net (no dropout; a dynamic batch axis, the
spatial size fixed at the size the model was trained at) with the preprocessing and
class names in the model's metadata. import_onnx maps an AlexNet-shaped graph (our
exports, torchvision's AlexNet exported by torch.onnx.export, Caffe's bvlc_alexnet) onto
a `paper` or `owt` Net with torchvision's parameter names, and refuses any other graph
with one line naming the first node it cannot map.

Conventions at the boundary: ONNX's LRN divides alpha by size, ours does not (ONNX alpha
= size * ours); the adaptive average pool is written as what it computes at the fixed
size (nothing at 6x6, an AveragePool when the side is a multiple of 6, else two MatMuls
with the bin-averaging matrices). A file is read with its own sizes checked against the
bytes it holds before anything is allocated from them; external tensor data is refused.

The onnx package (the `onnx` extra) is imported only when these functions are called.
"""
import json
import math
import os

import numpy as np

from .checkpoint import MAX_INPUT, check_metadata
from .layers import LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .model import MIN_INPUT, alexnet, check_geometry
from .weights import WeightFileError, write_atomically

OPSET = 17            # default: read by ONNX Runtime, OpenVINO and TensorRT alike
MIN_OPSET = 13        # Flatten / Gemm / Softmax as written here exist from 13 on
MIN_IMPORT_OPSET = 7  # older graphs (Reshape's shape as an attribute) are refused
META_KEY = "alexnet_cpu"
_MAX_BYTES = 2 ** 31  # protobuf's own limit for one message
FEATURES = 256 * 6 * 6


class OnnxFileError(WeightFileError):
    """An ONNX file is unreadable, malformed, hostile or not an AlexNet."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export and import need the onnx package: "
                          "pip install 'alexnet-cpu[onnx]' (or pip install onnx)") from None
    return onnx


# ----------------------------------------------------------------------------- export

def _bins(n, out=6):
    """(out, n) matrix of torch's adaptive average pool along one axis: row i averages
    [floor(i n / out), ceil((i + 1) n / out))."""
    a = np.zeros((out, n), np.float32)
    for i in range(out):
        lo, hi = (i * n) // out, -(-((i + 1) * n) // out)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def export_onnx(net, path, input_size=224, classes=None, mean=None, std=None, opset=OPSET):
    """Write `net` as an ONNX inference graph to `path` (atomically).

    input_size: the square input side the graph takes (the size the model was trained at);
    the batch axis is dynamic. classes, mean, std (per channel, pixel values 0-255, RGB)
    go into the metadata with the rest of the preprocessing. Input "input" (N, C, H, W)
    float32, output "logits" (N, classes)."""
    onnx = _onnx()
    from onnx import TensorProto, helper
    from . import __version__
    if not (isinstance(opset, int) and MIN_OPSET <= opset <= onnx.defs.onnx_opset_version()):
        raise ValueError(f"opset: expected an integer in {MIN_OPSET}.."
                         f"{onnx.defs.onnx_opset_version()}, got {opset!r}")
    if not (isinstance(input_size, int) and MIN_INPUT <= input_size <= MAX_INPUT):
        raise ValueError(f"input_size: expected an integer in {MIN_INPUT}..{MAX_INPUT}, "
                         f"got {input_size!r}")
    nodes, inits = _export_nodes(net, input_size, helper)
    nodes[-1].output[0] = "logits"

    graph = helper.make_graph(
        nodes, "alexnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch", net.in_channels, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["batch", net.num_classes])])
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="alexnet-cpu",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    for name, arr in inits:     # added in place: make_graph/make_model would copy 244 MB
        t = model.graph.initializer.add()
        t.name, t.data_type = name, TensorProto.FLOAT
        t.dims.extend(arr.shape)
        t.raw_data = np.ascontiguousarray(arr, "<f4").tobytes()
    model.doc_string, props = _export_metadata(net, path, input_size, classes, mean, std)
    helper.set_model_props(model, props)
    data = model.SerializeToString()
    write_atomically(os.fspath(path), lambda f: f.write(data))


def _export_nodes(net, input_size, helper):
    """([NodeProto], [(initializer name, array)]) of the net's layers, in order."""
    shapes = [r[2] for r in net.summary(input_size)]  # raises if the size is too small
    nodes, inits, x = [], [], "input"

    def add(op, name, inputs, **attrs):
        out = f"{name}.out" if name else op
        nodes.append(helper.make_node(op, [x] + inputs, [out], name=name, **attrs))
        return out

    def const(name, arr):
        inits.append((name, arr))
        return name

    shape = (net.in_channels, input_size, input_size)
    for (name, layer), out_shape in zip(net.layers, shapes):
        if isinstance(layer, Conv2d):
            x = add("Conv", name, [const(f"{name}.weight", layer.params["weight"]),
                                   const(f"{name}.bias", layer.params["bias"])],
                    kernel_shape=[layer.k] * 2, strides=[layer.stride] * 2,
                    pads=[layer.pad] * 4, group=layer.groups, dilations=[1, 1])
        elif isinstance(layer, ReLU):
            x = add("Relu", name, [])
        elif isinstance(layer, LRN):
            x = add("LRN", name, [], size=layer.size, alpha=layer.alpha * layer.size,
                    beta=layer.beta, bias=layer.k)
        elif isinstance(layer, MaxPool2d):
            x = add("MaxPool", name, [], kernel_shape=[layer.k] * 2,
                    strides=[layer.stride] * 2, pads=[0] * 4, ceil_mode=int(layer.ceil_mode))
        elif isinstance(layer, AdaptiveAvgPool2d):
            side = shape[1]
            if shape[1] != shape[2] or layer.size != 6:
                raise ValueError(f"{name}: expected a square input pooled to 6x6")
            if side % 6 == 0 and side > 6:
                x = add("AveragePool", name, [], kernel_shape=[side // 6] * 2,
                        strides=[side // 6] * 2, pads=[0] * 4)
            elif side != 6:      # uneven bins: (x . A^T) along W, then A . (..) along H
                a = _bins(side)
                x = add("MatMul", f"{name}.w", [const(f"{name}.w_bins", a.T)])
                nodes.append(helper.make_node("MatMul", [const(f"{name}.h_bins", a), x],
                                              [f"{name}.out"], name=name))
                x = f"{name}.out"
        elif isinstance(layer, Flatten):
            x = add("Flatten", name, [], axis=1)
        elif isinstance(layer, Linear):
            x = add("Gemm", name, [const(f"{name}.weight", layer.params["weight"]),
                                   const(f"{name}.bias", layer.params["bias"])],
                    alpha=1.0, beta=1.0, transB=1)
        elif not isinstance(layer, Dropout):   # dropout is the identity at inference
            raise ValueError(f"{name}: layer {layer.kind} has no ONNX export")
        shape = out_shape
    return nodes, inits


def _export_metadata(net, path, input_size, classes, mean, std):
    """(doc string, metadata properties) of an export: what a reader needs to preprocess
    its input and name its classes."""
    from . import __version__
    from .data import base_size
    base = base_size(input_size)
    meta = {"variant": net.variant, "num_classes": net.num_classes,
            "in_channels": net.in_channels, "input_size": input_size,
            "geometry": net.geometry}
    if classes is not None:
        meta["classes"] = [str(c) for c in classes]
    if mean is not None and std is not None:
        meta["preprocess"] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                              "base": base}
    check_metadata(os.fspath(path), meta, {n: p.shape for n, p in net.named_params()})
    doc = (
        f"AlexNet ({net.variant}) exported by alexnet-cpu {__version__}. Input 'input': "
        f"float32 NCHW RGB ({net.in_channels}x{input_size}x{input_size}), any batch size; "
        f"output 'logits' (softmax them for probabilities).")
    props = {META_KEY: json.dumps(meta), "variant": net.variant,
             "input_size": str(input_size), "layout": "NCHW float32, RGB",
             "preprocess": f"shorter side resized to {base} px, centre {base}x{base} then "
                           f"centre {input_size}x{input_size} crop, RGB pixel values 0-255, "
                           f"then (x - mean) / std per channel"}
    if "preprocess" in meta:
        props.update(mean=json.dumps(meta["preprocess"]["mean"]),
                     std=json.dumps(meta["preprocess"]["std"]))
    if "classes" in meta:
        props["classes"] = json.dumps(meta["classes"])
    return doc, props


# ----------------------------------------------------------------------------- import

class _Refuse(Exception):
    """A node (or the graph) cannot be mapped: caught and reported with the file name."""

    def __init__(self, node, why):
        op = node.op_type if node is not None and node.op_type.isidentifier() else (
            repr(node.op_type)[:40] if node is not None else "")
        where = f"node {node.name or '(unnamed)'!r} ({op}): " if node is not None else ""
        super().__init__(where + why)


# The attributes this reader understands, by type (AttributeProto: FLOAT 1, INT 2, STRING 3,
# INTS 7); any other is refused, since it could change what the node computes.
_ATTR_TYPES = {**dict.fromkeys(("alpha", "beta", "bias"), 1),
               **dict.fromkeys(("group", "size", "ceil_mode", "storage_order", "axis",
                                "allowzero", "transA", "transB", "count_include_pad"), 2),
               "auto_pad": 3,
               **dict.fromkeys(("kernel_shape", "strides", "pads", "dilations"), 7)}


def _attrs(node):
    out = {}
    for a in node.attribute:
        want = _ATTR_TYPES.get(a.name)
        if want is None:
            raise _Refuse(node, f"attribute {_short(a.name)} is not understood here")
        if a.type != want:
            raise _Refuse(node, f"attribute {a.name}: type {a.type}, expected {want} "
                                f"({ {1: 'float', 2: 'int', 3: 'string', 7: 'ints'}[want]})")
        out[a.name] = {1: a.f, 2: a.i, 3: a.s, 7: list(a.ints)}[want]
    if out.get("auto_pad", b"NOTSET") != b"NOTSET":
        raise _Refuse(node, f"auto_pad {_short(out['auto_pad'])}: expected explicit pads")
    return out


def _ints(node, attrs, key, n, default):
    v = attrs.get(key, default)
    if v is None or len(v) != n:
        raise _Refuse(node, f"{key}: expected {n} integers, got {_short(v)}")
    return list(v)


_FLOAT_TYPES = {1: np.dtype("<f4"), 11: np.dtype("<f8"), 10: np.dtype("<f2")}
_INT_TYPES = {7: np.dtype("<i8"), 6: np.dtype("<i4")}


def _external(node, t, base):
    """(file, offset, length) of a tensor stored in an external data file: a file inside
    the model's folder that holds those bytes (no absolute paths, no '..'); refused when the
    model has no folder (read from memory)."""
    what = f"tensor {t.name!r}: external data"
    if base is None:
        raise _Refuse(node, f"{what}, and no folder to read it from")
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")
    parts = loc.replace("\\", "/").split("/")
    if not loc or os.path.isabs(loc) or ".." in parts or "\0" in loc:
        raise _Refuse(node, f"{what} at {loc!r}: expected a file beside the model")
    full, root = os.path.realpath(os.path.join(base, loc)), os.path.realpath(base)
    if os.path.commonpath([full, root]) != root or not os.path.isfile(full):
        raise _Refuse(node, f"{what} at {loc!r}: no such file beside the model")
    try:
        offset, length = int(info.get("offset", "0")), int(info.get("length", "-1"))
        size = os.path.getsize(full)
    except (ValueError, OSError) as e:
        raise _Refuse(node, f"{what}: bad offset/length or unreadable file ({_short(e)})")
    length = size - offset if length == -1 else length
    if offset < 0 or length < 0 or offset + length > size:
        raise _Refuse(node, f"{what}: bytes {offset}..{offset + length} of a {size}-byte file")
    return full, offset, length


def _backed(node, t, base):
    """The tensor holds the bytes its dims claim (checked without decoding it)."""
    dims, itemsize = list(t.dims), {1: 4, 11: 8, 10: 2}.get(t.data_type, 1)
    n = math.prod(dims) if all(d >= 0 for d in dims) else -1
    if t.data_location == 1:
        held = _external(node, t, base)[2] // itemsize
    else:
        held = len(t.raw_data) // itemsize if t.raw_data else max(
            len(t.float_data), len(t.double_data), len(t.int32_data))
    if n != held:
        raise _Refuse(node, f"tensor {t.name!r}: shape {dims} claims {n} values, the file "
                            f"holds {held}")


def _array(node, t, base, shape=None, kinds=_FLOAT_TYPES):
    """A TensorProto's values as a float32 (or int64) array of `shape` (None: its own,
    at most a few elements), its claimed sizes checked against the bytes it holds before
    anything is allocated from them."""
    what = f"tensor {t.name!r}"
    dims = list(t.dims)
    if shape is not None and dims != list(shape) and not (
            len(shape) == 1 and dims == [1, shape[0]]):   # a (1, out) bias
        raise _Refuse(node, f"{what}: expected shape {list(shape)}, got {dims}")
    if any(d < 0 for d in dims) or (shape is None and math.prod(dims) > 16):
        raise _Refuse(node, f"{what}: unexpected shape {dims}")
    if t.data_type not in kinds:
        raise _Refuse(node, f"{what}: data type {t.data_type} not supported (expected "
                            f"{'float' if kinds is _FLOAT_TYPES else 'integer'})")
    dt, n = kinds[t.data_type], math.prod(dims)
    external = t.data_location == 1
    if external or t.raw_data:
        full, offset, held = _external(node, t, base) if external else (None, 0, len(t.raw_data))
        if held != n * dt.itemsize:
            raise _Refuse(node, f"{what}: {dims} needs {n * dt.itemsize} bytes, the file "
                                f"holds {held}")
        if external:
            with open(full, "rb") as f:
                f.seek(offset)
                raw = f.read(held)
            if len(raw) != held:
                raise _Refuse(node, f"{what}: the external file ended early")
        else:
            raw = t.raw_data
        a = np.frombuffer(raw, dt)
    else:
        field = {1: t.float_data, 11: t.double_data, 7: t.int64_data}.get(t.data_type,
                                                                          t.int32_data)
        if len(field) != n:
            raise _Refuse(node, f"{what}: {dims} needs {n} values, the file holds {len(field)}")
        a = np.asarray(field, np.uint16 if t.data_type == 10 else None)
        if t.data_type == 10:
            a = a.view(np.float16)
    # raw bytes are already a copy of the file's: no second one when they are float32
    return a.astype(np.int64 if kinds is _INT_TYPES else np.float32, copy=False).reshape(dims)


class _Graph:
    """The graph's tensors: constants (initializers and Constant nodes) and who consumes
    what."""

    def __init__(self, g, base):
        self.g, self.base = g, base   # base: the folder external data files may be in
        self.consts = {t.name: t for t in g.initializer}
        self.nodes = []
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                a = {x.name: x for x in node.attribute}
                if "value" not in a or len(node.output) != 1:
                    raise _Refuse(node, "expected a Constant holding one tensor")
                self.consts[node.output[0]] = a["value"].t
            else:
                self.nodes.append(node)
        self.users = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.consts:
                    self.users.setdefault(name, []).append(node)
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise _Refuse(None, f"expected one graph input (the image batch), got "
                                f"{len(inputs)}")
        self.input = inputs[0]
        if not g.output:
            raise _Refuse(None, "the graph has no output")

    def const(self, node, i, shape=None, kinds=_FLOAT_TYPES):
        if i >= len(node.input) or node.input[i] not in self.consts:
            raise _Refuse(node, f"input {i} must be a constant (an initializer)")
        return _array(node, self.consts[node.input[i]], self.base, shape, kinds)

    def const_dims(self, node, i):
        if i >= len(node.input) or node.input[i] not in self.consts:
            raise _Refuse(node, f"input {i} must be a constant (an initializer)")
        return list(self.consts[node.input[i]].dims)

    def chain(self):
        """The nodes from the input to the output, in order; refuses branches and nodes
        off the path."""
        order, cur, seen = [], self.input.name, set()
        outputs = [o.name for o in self.g.output]
        while True:
            users = self.users.get(cur, [])
            if not users and cur in outputs:
                break
            if not users:
                raise _Refuse(order[-1] if order else None,
                              f"its output {cur!r} is neither used nor the graph output")
            if len(users) > 1:
                raise _Refuse(users[1], f"a second consumer of {cur!r}: AlexNet is a chain "
                                        f"of layers, this graph branches")
            node = users[0]
            if id(node) in seen:
                raise _Refuse(node, "the graph has a cycle")
            seen.add(id(node))
            outs = [o for o in node.output if o]
            if not outs or any(o in self.users for o in outs[1:]):
                raise _Refuse(node, "expected one used output")
            order.append(node)
            cur = outs[0]
        for node in self.nodes:
            if id(node) not in seen:
                raise _Refuse(node, "not on the path from the input to the output")
        if len(outputs) != 1:
            raise _Refuse(None, f"expected one graph output (the logits), got {len(outputs)}")
        return order


def _op(graph, node, nxt):
    """One node (and, for two-node forms, the next) -> (kind, params, nodes consumed)."""
    if node.domain not in ("", "ai.onnx"):
        raise _Refuse(node, f"operator domain {node.domain!r} is not ONNX's")
    t, a = node.op_type, _attrs(node)
    data = node.input[0] if node.input else ""
    if t == "MatMul" and nxt is not None and nxt.op_type == "MatMul" and \
            len(nxt.input) == 2 and nxt.input[1] == node.output[0]:
        return "avgpool", {"matmul": (graph.const(node, 1, graph.const_dims(node, 1)),
                                      graph.const(nxt, 0, graph.const_dims(nxt, 0)))}, 2
    if data in graph.consts or not data:
        raise _Refuse(node, "expected the data to come in as input 0")
    if t == "Conv":
        return _conv_op(graph, node, a)
    if t == "Relu":
        return "relu", {}, 1
    if t == "LRN":
        if "size" not in a:
            raise _Refuse(node, "no size attribute")
        return "lrn", {k: a.get(k, d) for k, d in
                       (("size", 0), ("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0))}, 1
    if t == "MaxPool":
        k = _ints(node, a, "kernel_shape", 2, None)
        strides = _ints(node, a, "strides", 2, [1, 1])
        if _ints(node, a, "pads", 4, [0] * 4) != [0] * 4 or \
                _ints(node, a, "dilations", 2, [1, 1]) != [1, 1] or a.get("storage_order", 0):
            raise _Refuse(node, "expected no padding or dilation")
        return "maxpool", {"k": k, "strides": strides, "ceil": a.get("ceil_mode", 0)}, 1
    if t == "AveragePool":
        if _ints(node, a, "pads", 4, [0] * 4) != [0] * 4 or a.get("ceil_mode", 0):
            raise _Refuse(node, "expected no padding or ceil mode")
        k = _ints(node, a, "kernel_shape", 2, None)
        return "avgpool", {"k": k, "strides": _ints(node, a, "strides", 2, [1, 1])}, 1
    if t == "Flatten":
        if a.get("axis", 1) != 1:
            raise _Refuse(node, f"axis {a['axis']}: expected 1")
        return "flatten", {}, 1
    if t == "Reshape":
        shape = [int(v) for v in graph.const(node, 1, None, _INT_TYPES).reshape(-1)]
        # allowzero changes only what a 0 in the shape means
        if (a.get("allowzero", 0) and 0 in shape) or len(shape) != 2 or shape[1] not in (-1, FEATURES) or \
                shape[0] not in (-1, 0, 1) or shape == [-1, -1]:
            raise _Refuse(node, f"shape {shape}: expected (batch, {FEATURES}), a flatten")
        return "flatten", {}, 1
    if t in ("Gemm", "MatMul"):
        return _linear_op(graph, node, a, nxt)
    if t in ("Dropout", "Identity"):
        if t == "Dropout" and len(node.input) > 2 and node.input[2]:
            if graph.const(node, 2, None, {9: np.dtype("?"), **_INT_TYPES}).any():
                raise _Refuse(node, "training_mode is on: expected an inference graph")
        return "skip", {}, 1
    if t == "Softmax":
        if a.get("axis", 1) not in (1, -1):
            raise _Refuse(node, f"axis {a['axis']}: expected the class axis")
        return "softmax", {}, 1
    raise _Refuse(node, "operator not part of an AlexNet")


def _conv_op(graph, node, a):
    """A Conv node -> ("conv", its geometry, 1)."""
    dims = graph.const_dims(node, 1)
    if len(dims) != 4:
        raise _Refuse(node, f"weight: expected 4 dimensions, got {dims}")
    k = _ints(node, a, "kernel_shape", 2, dims[2:])
    if k[0] != k[1] or k != dims[2:]:
        raise _Refuse(node, f"kernel_shape {k}: expected a square kernel matching the "
                            f"weight {dims}")
    pads = _ints(node, a, "pads", 4, [0] * 4)
    strides = _ints(node, a, "strides", 2, [1, 1])
    if len(set(pads)) != 1 or strides[0] != strides[1]:
        raise _Refuse(node, f"pads {pads}, strides {strides}: expected equal on all sides")
    if _ints(node, a, "dilations", 2, [1, 1]) != [1, 1]:
        raise _Refuse(node, "dilations are not supported")
    return "conv", {"k": k[0], "stride": strides[0], "pad": pads[0],
                    "groups": a.get("group", 1), "dims": dims}, 1


def _linear_op(graph, node, a, nxt):
    """A Gemm node, or MatMul (and a following Add of the bias) -> ("linear", ...)."""
    dims = graph.const_dims(node, 1)
    if len(dims) != 2:
        raise _Refuse(node, f"weight: expected 2 dimensions, got {dims}")
    if node.op_type == "Gemm":
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise _Refuse(node, "expected transA=0, alpha=1, beta=1")
        tb = bool(a.get("transB", 0))
        return "linear", {"dims": dims if tb else dims[::-1], "transpose": not tb,
                          "bias": 2 if len(node.input) > 2 and node.input[2] else None,
                          "node": node}, 1
    # MatMul: x . W (W stored (in, out)), maybe followed by + b
    p = {"dims": dims[::-1], "transpose": True, "bias": None, "node": node}
    if nxt is not None and nxt.op_type == "Add" and len(nxt.input) == 2 and \
            nxt.input[0] == node.output[0] and nxt.input[1] in graph.consts:
        p.update(bias=1, bias_node=nxt)
        return "linear", p, 2
    return "linear", p, 1


def _ops(graph):
    chain, ops, i = graph.chain(), [], 0
    while i < len(chain):
        kind, p, used = _op(graph, chain[i], chain[i + 1] if i + 1 < len(chain) else None)
        if kind != "skip":
            ops.append((kind, chain[i], p))
        i += used
    if ops and ops[-1][0] == "softmax":
        ops.pop()               # probabilities -> our logits; softmax them to compare
    for kind, node, _ in ops:
        if kind == "softmax":
            raise _Refuse(node, "a Softmax before the last layer")
    return ops


def _input_size(graph, pad):
    """The graph input's static square side, else the usual one for conv1's padding."""
    t = graph.input.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if t.elem_type not in (0, 1) or (dims and len(dims) != 4):
        raise _Refuse(None, f"input {graph.input.name!r}: expected a float32 (N, C, H, W) "
                            f"tensor")
    if len(dims) == 4 and dims[2] is not None and dims[3] is not None:
        if dims[2] != dims[3] or not MIN_INPUT <= dims[2] <= MAX_INPUT:
            raise _Refuse(None, f"input {graph.input.name!r}: {dims[2]}x{dims[3]}: expected a "
                                f"square side in {MIN_INPUT}..{MAX_INPUT}")
        return dims[2]
    return 224 if pad >= 2 else 227


def _float(x):
    """An ONNX float attribute as the decimal it was written as (float32's shortest)."""
    return float(str(np.float32(x)))


def _plan(graph):
    """The ops matched to a new Net's layers -> (net, [(layer name, layer, kind, node,
    params)], input_size). Checks every attribute and weight shape; reads no weight data."""
    ops = _ops(graph)
    if not ops or ops[0][0] != "conv":
        raise _Refuse(ops[0][1] if ops else None, "expected conv1 (a Conv) first")
    kind, node, p = ops[0]
    variant = {96: "paper", 64: "owt"}.get(p["dims"][0])
    if variant is None:
        raise _Refuse(node, f"conv1 with {p['dims'][0]} filters: expected 96 (paper) or 64 "
                            f"(owt, torchvision's)")
    if not 1 <= p["dims"][1] <= 64:
        raise _Refuse(node, f"conv1 with {p['dims'][1]} input channels: expected 1..64")
    lrn = [q for k, _, q in ops if k == "lrn"]
    pools = [q for k, _, q in ops if k == "maxpool"]
    lins = [(n, q) for k, n, q in ops if k == "linear"]
    geometry = {"conv1_pad": p["pad"], "pool_ceil": bool(pools and pools[0]["ceil"]),
                "lrn": None}
    if lrn:
        q = lrn[0]
        size = q["size"]
        geometry["lrn"] = {"size": size, "alpha": _float(q["alpha"]) / max(size, 1),
                           "beta": _float(q["beta"]), "k": _float(q["bias"])}
    try:
        geometry = check_geometry(geometry)
    except ValueError as e:
        raise _Refuse(node if not lrn else [n for k, n, _ in ops if k == "lrn"][0],
                      str(e)) from None
    num_classes = lins[-1][1]["dims"][0] if lins else 0
    if not 1 <= num_classes <= 100_000:
        raise _Refuse(lins[-1][0] if lins else None,
                      f"fc8 with {num_classes} outputs: expected 1..100000 classes")
    # conv1's and fc8's claimed sizes set the net's: backed by the file's bytes first
    for node in (ops[0][1], lins[-1][1]["node"]):
        _backed(node, graph.consts[node.input[1]], graph.base)
    net = alexnet(variant, num_classes=num_classes, in_channels=p["dims"][1],
                  geometry=geometry, init=None)
    size = _input_size(graph, p["pad"])
    try:
        shapes = [r[2] for r in net.summary(size)]
    except ValueError as e:
        raise _Refuse(None, f"input {size}x{size}: {e}") from None
    layers = [(n, l, s) for (n, l), s in zip(net.layers, shapes) if not isinstance(l, Dropout)]
    plan, i, prev = [], 0, (net.in_channels, size, size)
    for name, layer, out_shape in layers:
        want = _KIND[type(layer)]
        op = ops[i] if i < len(ops) else None
        if isinstance(layer, AdaptiveAvgPool2d) and (op is None or op[0] != "avgpool"):
            if prev[1:] != (6, 6):
                raise _Refuse(op[1] if op else None, f"no pooling to 6x6 after the features "
                                                     f"({prev[1]}x{prev[2]} at {size} px)")
            prev = out_shape
            continue
        if op is None:
            raise _Refuse(ops[-1][1], f"the graph ends here; expected a {want} next "
                                      f"({net.variant} AlexNet)")
        kind, node, p = op
        if kind != want:
            raise _Refuse(node, f"expected a {want} here ({variant} AlexNet, layer {name})")
        _check(node, layer, p, prev, geometry)
        plan.append((name, layer, kind, node, p))
        prev, i = out_shape, i + 1
    if i < len(ops):
        raise _Refuse(ops[i][1], f"a node after the last layer of the {variant} AlexNet")
    return net, plan, size


_KIND = {Conv2d: "conv", ReLU: "relu", LRN: "lrn", MaxPool2d: "maxpool",
         AdaptiveAvgPool2d: "avgpool", Flatten: "flatten", Linear: "linear"}


def _check(node, layer, p, in_shape, geometry):
    """The op's attributes against what the layer computes."""
    if isinstance(layer, Conv2d):
        want = (layer.k, layer.stride, layer.pad, layer.groups, list(layer.params["weight"].shape))
        got = (p["k"], p["stride"], p["pad"], p["groups"], p["dims"])
        if want != got:
            raise _Refuse(node, f"(kernel, stride, pad, groups, weight) {got}: expected {want}")
    elif isinstance(layer, LRN):
        q = geometry["lrn"]
        got = {"size": p["size"], "alpha": _float(p["alpha"]) / p["size"],
               "beta": _float(p["beta"]), "k": _float(p["bias"])}
        if got != q:
            raise _Refuse(node, "LRN constants differ from the first LRN's: one set is "
                                "supported")
    elif isinstance(layer, MaxPool2d):
        if p["k"] != [layer.k] * 2 or p["strides"] != [layer.stride] * 2 or \
                bool(p["ceil"]) != layer.ceil_mode:
            raise _Refuse(node, f"kernel {p['k']}, strides {p['strides']}, ceil_mode "
                                f"{p['ceil']}: expected 3x3, stride 2, the same ceil_mode in "
                                f"every pool")
    elif isinstance(layer, AdaptiveAvgPool2d):
        side = in_shape[1]
        if "matmul" in p:
            aw, ah = p["matmul"]
            bins = _bins(side)
            ok = (aw.shape == bins.T.shape and ah.shape == bins.shape
                  and np.allclose(aw, bins.T, atol=1e-7) and np.allclose(ah, bins, atol=1e-7))
        else:
            k = side // 6
            ok = side % 6 == 0 and p["k"] == [k, k] and p["strides"] == [k, k]
        if not ok:
            raise _Refuse(node, f"expected the average pool of {side}x{side} features to "
                                f"6x6 (torch's adaptive bins)")
    elif isinstance(layer, Linear):
        want = [layer.out_features, layer.in_features]
        if p["dims"] != want:
            raise _Refuse(p["node"], f"weight {p['dims']} (out, in): expected {want}")


def _weights(graph, plan):
    """{parameter name: array} read from the graph's tensors, shapes checked first."""
    state = {}
    for lname, layer, kind, node, p in plan:
        if kind not in ("conv", "linear"):
            continue
        w, b = layer.params["weight"], layer.params["bias"]
        if kind == "conv":
            wt = graph.const(node, 1, w.shape)
            bias = (graph.const(node, 2, b.shape) if len(node.input) > 2 and node.input[2]
                    else np.zeros_like(b))
        else:
            wnode = p["node"]
            wt = graph.const(wnode, 1, w.shape[::-1] if p["transpose"] else w.shape)
            if p["transpose"]:
                wt = np.ascontiguousarray(wt.T)
            if p["bias"] is None:
                bias = np.zeros_like(b)
            else:
                bnode = p.get("bias_node", wnode)
                bias = graph.const(bnode, p["bias"], b.shape).reshape(b.shape)
        state[f"{lname}.weight"], state[f"{lname}.bias"] = wt, bias.reshape(b.shape)
    return state


def _read_model(path):
    onnx = _onnx()
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise OnnxFileError(f"{path}: no such file") from None
    except OSError as e:
        raise OnnxFileError(f"{path}: cannot open ({e.strerror or e})") from None
    if os.path.isdir(path):
        raise OnnxFileError(f"{path}: is a directory, not an ONNX file")
    if size >= _MAX_BYTES:
        raise OnnxFileError(f"{path}: {size} bytes: an ONNX protobuf holds less than 2 GiB")
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES)
    except OSError as e:
        raise OnnxFileError(f"{path}: cannot read ({e.strerror or e})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:   # noqa: BLE001  protobuf's DecodeError and kin
        raise OnnxFileError(f"{path}: not an ONNX model ({_short(e)})") from None
    del data
    return model


def _short(e, limit=120):
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= limit else s[:limit] + "..."


def _their_metadata(model):
    """Classes and preprocessing from our own exports' metadata (absent in others)."""
    props = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in props:
        return {}
    try:
        meta = json.loads(props[META_KEY])
    except (ValueError, RecursionError) as e:
        raise _Refuse(None, f"metadata {META_KEY!r} is not valid JSON ({_short(e)})") from None
    if not isinstance(meta, dict):
        raise _Refuse(None, f"metadata {META_KEY!r}: expected a JSON object")
    return {k: meta[k] for k in ("classes", "preprocess") if k in meta}


def import_onnx(path):
    """(net, metadata) from an AlexNet-shaped ONNX graph; net in eval mode. metadata holds
    variant, num_classes, in_channels, input_size (the graph's), geometry, and, from our
    own exports, classes and preprocess. Any problem: OnnxFileError, one line naming the
    file (and the first node it cannot map)."""
    path = os.fspath(path)
    return import_model(_read_model(path), path, os.path.dirname(os.path.abspath(path)))


def import_model(model, path="<model>", base=None):
    """import_onnx for an onnx.ModelProto already in memory (path names it in errors;
    external tensor data is read from files in the folder `base`, if given)."""
    try:
        opsets = {o.domain: o.version for o in model.opset_import}
        version = opsets.get("", opsets.get("ai.onnx"))
        if version is None or version < MIN_IMPORT_OPSET:
            raise _Refuse(None, f"opset {version}: expected {MIN_IMPORT_OPSET} or later "
                                f"(convert it with onnx.version_converter)")
        graph = _Graph(model.graph, base)
        net, plan, size = _plan(graph)
        source = " ".join(f"onnx: {model.producer_name} {model.producer_version}".split())
        meta = {"kind": "weights", "variant": net.variant, "num_classes": net.num_classes,
                "in_channels": net.in_channels, "input_size": size, "geometry": net.geometry,
                **_their_metadata(model), "source": source[:200]}
        check_metadata(path, meta, {n: p.shape for n, p in net.named_params()})
        state = _weights(graph, plan)      # the data last: everything else is checked
    except _Refuse as e:    # one line, whatever the file's names hold
        raise OnnxFileError(f"{path}: {' '.join(str(e).split())}") from None
    except WeightFileError as e:
        raise OnnxFileError(str(e)) from None
    except RecursionError:
        raise OnnxFileError(f"{path}: the graph is nested too deeply") from None
    net.load_state_dict(state)
    net.eval()
    return net, meta
