"""ONNX graphs built for the import tests with onnx.helper: a Caffe-style bvlc_alexnet (the
ONNX Model Zoo's layout: 227 px, no padding in conv1, LRN bias 1 alpha 1e-4 in ONNX's
divided-by-size convention, ceil-mode pools, Reshape, Dropout, a final Softmax) with random
weights, and small graphs that are not AlexNets."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

# (name, out, in per group, kernel, stride, pad, groups); LRN and pool follow as in Caffe
CAFFE_CONVS = [("conv1", 96, 3, 11, 4, 0, 1), ("conv2", 256, 48, 5, 1, 2, 2),
               ("conv3", 384, 256, 3, 1, 1, 1), ("conv4", 384, 192, 3, 1, 1, 2),
               ("conv5", 256, 192, 3, 1, 1, 2)]


def caffe_alexnet(size=227, num_classes=1000, batch=1, softmax=True, seed=0, opset=12):
    """A bvlc_alexnet-shaped ModelProto: input "data_0" (batch, 3, size, size), batch an int
    (static; the Reshape then has the Model Zoo's [1, -1] at batch 1) or a name."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "data_0"

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def node(op, name, inputs, **attrs):
        nodes.append(helper.make_node(op, [x] + inputs, [f"{name}_1"], name=name, **attrs))
        return f"{name}_1"

    for i, (name, out, cin, k, s, p, g) in enumerate(CAFFE_CONVS, 1):
        w = rng.standard_normal((out, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        x = node("Conv", name, [const(f"{name}_w_0", w),
                                const(f"{name}_b_0", rng.uniform(0, 0.1, out))],
                 kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=g, dilations=[1, 1])
        x = node("Relu", f"relu{i}", [])
        if i <= 2:
            x = node("LRN", f"norm{i}", [], size=5, alpha=1e-4, beta=0.75, bias=1.0)
        if i in (1, 2, 5):
            x = node("MaxPool", f"pool{i}", [], kernel_shape=[3, 3], strides=[2, 2],
                     pads=[0] * 4, ceil_mode=1)
    shape = [1, -1] if batch == 1 else [-1, 9216]
    inits.append(numpy_helper.from_array(np.array(shape, np.int64), "OC2_DUMMY_1"))
    x = node("Reshape", "OC2_DUMMY_0", ["OC2_DUMMY_1"])
    for i, (fin, fout) in enumerate(((9216, 4096), (4096, 4096), (4096, num_classes)), 6):
        w = rng.standard_normal((fout, fin)) * np.sqrt((2.0 if i < 8 else 0.1) / fin)
        x = node("Gemm", f"fc{i}", [const(f"fc{i}_w_0", w), const(f"fc{i}_b_0", np.zeros(fout))],
                 transB=1)
        if i < 8:
            x = node("Relu", f"relu{i}", [])
            x = node("Dropout", f"drop{i}", [])
    if softmax:
        x = node("Softmax", "prob", [], axis=1)
    graph = helper.make_graph(
        nodes, "bvlc_alexnet",
        [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, num_classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=7, producer_name="caffe2-style test graph")


def small_graph(ops, in_shape=(1, 3, 32, 32), opset=17):
    """A chain of (op_type, name, {attr}, [constant arrays]) from "input" to the last
    node's output: graphs that are not AlexNets, for the refusals."""
    nodes, inits, x = [], [], "input"
    for op, name, attrs, consts in ops:
        names = []
        for j, c in enumerate(consts):
            names.append(f"{name}.c{j}")
            inits.append(numpy_helper.from_array(np.asarray(c), names[-1]))
        nodes.append(helper.make_node(op, [x] + names, [f"{name}.out"], name=name, **attrs))
        x = f"{name}.out"
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)
