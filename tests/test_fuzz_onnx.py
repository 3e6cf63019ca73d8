"""Seeded fuzzing of ONNX imports, as tests/test_fuzz_weights.py does for weight files:
edits of a real (Caffe-style, full size) AlexNet graph in memory (node types, attributes,
inputs and outputs, node order, tensor shapes, types and data, graph inputs and outputs,
opsets, metadata) and byte-level damage of its serialised structure. Each import must
succeed or raise OnnxFileError in one line naming the file: never another exception,
never an allocation from the file's claimed sizes (a claim is refused unless the file
holds the bytes)."""
import json
import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package (pip install '.[onnx]') is not "
                                          "installed")

from onnx import helper  # noqa: E402

from alexnet_cpu.onnx_io import OnnxFileError, import_model, import_onnx  # noqa: E402
from onnx_graphs import caffe_alexnet  # noqa: E402

ODD_INTS = [0, -1, 1, 2, 3, 5, 6, 11, 96, 2 ** 31 - 1, -2 ** 31, 2 ** 62, 10 ** 18]
ODD_FLOATS = [0.0, -1.0, 1e-4, 5e-4, 0.75, 2.0, math.nan, math.inf, -math.inf, 3e38, 1e-45]
ODD_STRINGS = [b"", b"NOTSET", b"SAME_UPPER", b"VALID", b"\xff\xfe", b"x" * 1000]
OPS = ["Conv", "Relu", "LRN", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm",
       "MatMul", "Add", "Flatten", "Reshape", "Dropout", "Softmax", "Identity", "Constant",
       "Loop", "If", "BatchNormalization", "", "conv", "Conv\x00"]
ATTRS = ["group", "pads", "strides", "kernel_shape", "dilations", "ceil_mode", "auto_pad",
         "size", "alpha", "beta", "bias", "transA", "transB", "axis", "value", "allowzero",
         "storage_order", "training_mode", ""]


def _odd_attr(rng, name):
    kind = rng.integers(8)
    if kind == 0:
        v = ODD_INTS[rng.integers(len(ODD_INTS))]
    elif kind == 1:
        v = ODD_FLOATS[rng.integers(len(ODD_FLOATS))]
    elif kind == 2:
        v = [ODD_INTS[i] for i in rng.integers(len(ODD_INTS), size=rng.integers(0, 6))]
    elif kind == 3:
        v = [ODD_FLOATS[i] for i in rng.integers(len(ODD_FLOATS), size=rng.integers(1, 5))]
    elif kind == 4:
        v = ODD_STRINGS[rng.integers(len(ODD_STRINGS))]
    elif kind == 5:
        v = helper.make_tensor("t", onnx.TensorProto.INT64, [2], [1, -1])
    elif kind == 6:
        v = helper.make_graph([], "sub", [], [])
    else:       # a tensor claiming 2^40 values, holding none
        v = onnx.TensorProto(name="t", data_type=onnx.TensorProto.FLOAT, dims=[2 ** 40])
    return helper.make_attribute(name, v, attr_type=onnx.AttributeProto.INTS if v == [] else None)


class Undo(list):
    """Edits of the one in-memory model, each with how to take it back."""

    def run(self):
        while self:
            self.pop()()


def _copy_back(msg):
    saved = type(msg)()
    saved.CopyFrom(msg)
    return lambda: msg.CopyFrom(saved)


def _mutate(m, rng, undo, small):
    """One random edit of model m (recorded in undo); returns its description."""
    g, nodes = m.graph, m.graph.node
    kind = int(rng.integers(14))
    i = int(rng.integers(len(nodes)))
    node = nodes[i]
    names = ([g.input[0].name, "", "nowhere"] + [o for n in nodes for o in n.output]
             + [t.name for t in g.initializer])
    if kind <= 4:
        undo.append(_copy_back(node))
        if kind == 0:
            node.op_type = OPS[rng.integers(len(OPS))]
        elif kind == 1 and node.attribute:
            j = int(rng.integers(len(node.attribute)))
            node.attribute[j].CopyFrom(_odd_attr(rng, node.attribute[j].name))
        elif kind == 2:
            if node.attribute and rng.random() < 0.5:
                del node.attribute[int(rng.integers(len(node.attribute)))]
            else:
                node.attribute.append(_odd_attr(rng, ATTRS[rng.integers(len(ATTRS))]))
        elif kind == 3:
            field = node.input if rng.random() < 0.6 else node.output
            r = rng.random()
            if r < 0.5 and field:
                field[int(rng.integers(len(field)))] = names[rng.integers(len(names))]
            elif r < 0.75 and field:
                del field[int(rng.integers(len(field)))]
            else:
                field.append(names[rng.integers(len(names))])
        else:
            node.domain = ["ai.onnx", "com.microsoft", "x"][rng.integers(3)]
        return f"node {node.name} edit {kind}"
    if kind == 5:
        saved = type(node)()
        saved.CopyFrom(node)
        del nodes[i]
        undo.append(lambda: nodes.insert(i, saved))
        return f"node {saved.name} deleted"
    if kind == 6:
        nodes.insert(i, node)
        undo.append(lambda: nodes.pop(i))
        return f"node {node.name} duplicated"
    if kind == 7:
        j = int(rng.integers(len(nodes)))
        a, b = type(node)(), type(node)()
        a.CopyFrom(nodes[i])
        b.CopyFrom(nodes[j])
        nodes[i].CopyFrom(b)
        nodes[j].CopyFrom(a)
        undo.append(lambda: (nodes[i].CopyFrom(a), nodes[j].CopyFrom(b)))
        return f"nodes {i} and {j} swapped"
    if kind in (8, 9):
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        dims, dtype, name = list(t.dims), t.data_type, t.name
        raw = t.raw_data if t.name in small else None
        undo.append(lambda: _restore_tensor(t, dims, dtype, name, raw))
        r = rng.random()
        if r < 0.3:
            odd = [[], [0], [-1, 5], [2 ** 62, 2 ** 62], dims + [1], dims[::-1], [1] + dims,
                   [2 ** 31] * 3]
            del t.dims[:]
            t.dims.extend(odd[rng.integers(len(odd))])
        elif r < 0.5:
            t.data_type = int(rng.integers(0, 22))
        elif r < 0.6:
            t.data_location = 1
            if rng.random() < 0.5:
                t.external_data.add(key="location", value="/etc/passwd")
        elif r < 0.7:
            t.name = names[rng.integers(len(names))]
        elif raw is not None:
            cut = int(rng.integers(0, len(raw) + 1))
            t.raw_data = raw[:cut] + (b"\x00" * int(rng.integers(0, 9)) if rng.random() < .5
                                      else b"")
            if rng.random() < 0.3:
                t.float_data.extend([1.0] * int(rng.integers(1, 5)))
        return f"tensor {name} edit"
    if kind == 10:
        inp = g.input[0]
        undo.append(_copy_back(inp))
        dims = inp.type.tensor_type.shape.dim
        if rng.random() < 0.3:
            inp.type.tensor_type.elem_type = int(rng.integers(0, 17))
        elif len(dims):
            d = dims[int(rng.integers(len(dims)))]
            if rng.random() < 0.5:
                d.dim_value = ODD_INTS[rng.integers(len(ODD_INTS))] % 2 ** 62
            else:
                d.dim_param = "n"
        return "graph input edit"
    if kind == 11:
        field = g.input if rng.random() < 0.5 else g.output
        field.append(helper.make_tensor_value_info(names[rng.integers(len(names))] or "z", 1,
                                                   None))
        undo.append(lambda: field.pop())
        return "graph input/output added"
    if kind == 12:
        undo.append(_copy_back(m.opset_import[0]))
        m.opset_import[0].version = ODD_INTS[rng.integers(len(ODD_INTS))] % 2 ** 62
        if rng.random() < 0.3:
            m.opset_import[0].domain = "com.example"
        return "opset edit"
    depth = int(rng.integers(1, 100_000))
    values = ['"x"', "[" * depth + "]" * depth, json.dumps({"classes": ["a"] * 3}),
              json.dumps({"classes": [str(i) for i in range(10)],
                          "preprocess": {"mean": [1, 2, 3], "std": [0, 1, 1]}}),
              json.dumps({"classes": [str(i) for i in range(10)],
                          "preprocess": {"mean": [1, 2, 3], "std": [1, 1, 1]}}),
              json.dumps({"classes": "abc", "preprocess": [1]}), "{", "\u00ff" * 100]
    helper.set_model_props(m, {"alexnet_cpu": values[rng.integers(len(values))]})
    undo.append(lambda: m.ClearField("metadata_props"))
    return "metadata edit"


def _restore_tensor(t, dims, dtype, name, raw):
    del t.dims[:]
    t.dims.extend(dims)
    t.data_type, t.name = dtype, name
    t.ClearField("data_location")
    t.ClearField("external_data")
    t.ClearField("float_data")
    if raw is not None:
        t.raw_data = raw


def _expect_ok_or_one_line(fn, path, what):
    try:
        fn()
        return True
    except OnnxFileError as e:
        msg = str(e)
        assert msg.startswith(str(path)) and "\n" not in msg, (what, msg)
    except Exception as e:   # noqa: BLE001  the point of the test
        pytest.fail(f"{what}: {type(e).__name__}: {e}")
    return False


@pytest.fixture(scope="module")
def model():
    return caffe_alexnet(227, num_classes=10, seed=3)


def test_fuzz_graph_edits(model):
    rng = np.random.default_rng(2026)
    small = {t.name for t in model.graph.initializer if math.prod(t.dims) <= 100_000}
    accepted, count = 0, 80
    for _ in range(count):
        undo = Undo()
        what = [_mutate(model, rng, undo, small) for _ in range(int(rng.integers(1, 4)))]
        accepted += _expect_ok_or_one_line(lambda: import_model(model, "m.onnx"), "m.onnx",
                                           what)
        undo.run()
    print(f"{accepted} of {count} edited graphs imported")
    assert 0 < accepted < count / 2     # some edits are harmless, most are caught
    import_model(model, "m.onnx")       # every edit was taken back


def test_fuzz_bytes(model, tmp_path):
    """Byte damage of the serialised graph: the real structure with the large tensors'
    data left out (they would be refused for that anyway; the parse and every structural
    check run before)."""
    m = type(model)()
    m.CopyFrom(model)
    for t in m.graph.initializer:
        if math.prod(t.dims) > 100_000:
            t.raw_data = b""
    raw = m.SerializeToString()
    rng = np.random.default_rng(11)
    p = tmp_path / "m.onnx"
    count = 600
    for i in range(count):
        b = bytearray(raw)
        kind = i % 4
        if kind == 0:
            b = b[:int(rng.integers(0, len(b)))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            at = int(rng.integers(len(b)))
            b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 12)), np.uint8))
        else:   # a huge length prefix or varint where a field starts
            at = int(rng.integers(len(b)))
            b[at:at + 10] = b"\xff" * 9 + b"\x01"
        p.write_bytes(bytes(b))
        _expect_ok_or_one_line(lambda: import_onnx(p), p, f"bytes {kind} #{i}")
