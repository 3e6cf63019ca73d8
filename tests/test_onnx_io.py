"""ONNX export and import (alexnet_cpu/onnx_io.py), checked in ONNX Runtime and OpenVINO.

Bound on logits: ours and another runtime's agree to float32 rounding. Each logit comes
through 8 layers whose dot products run up to K = 9216 terms, summed in different orders
by the two engines; rounding errors of a sum of K terms grow like sqrt(K) u (u = 2^-24), so
8 sqrt(9216) u ~ 5e-5 of the logits' scale is the bound (measured: ~3e-7, far inside).
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package (pip install '.[onnx]') is not "
                                          "installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

import alexnet_cpu as ac  # noqa: E402
from alexnet_cpu import cli, train  # noqa: E402
from alexnet_cpu.model import GEOMETRY  # noqa: E402
from alexnet_cpu.onnx_io import OnnxFileError, export_onnx, import_model, import_onnx  # noqa: E402
from alexnet_cpu.weights import write_file  # noqa: E402
from onnx_graphs import caffe_alexnet, small_graph  # noqa: E402

BOUND = 5e-5
ONNX_DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "ONNX.md")
CLASSES = [f"class {i}" for i in range(7)]


def _close(ours, theirs, bound=BOUND):
    diff = float(np.abs(ours - theirs).max())
    assert diff <= bound * float(np.abs(theirs).max()), (diff, float(np.abs(theirs).max()))
    return diff


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _batch(n, size, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal((n, 3, size, size)) * scale).astype(
        np.float32)


# paper at 416 px pools 12x12 features by an AveragePool, owt at 128 px 3x3 by MatMuls
CASES = [("paper", 224), ("owt", 224), ("paper", 416), ("owt", 128)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(net, path) of each case, exported once."""
    d, cache = tmp_path_factory.mktemp("onnx"), {}

    def get(variant, size):
        if (variant, size) not in cache:
            net = ac.alexnet(variant, num_classes=7, init="torch", seed=3).eval()
            path = d / f"{variant}{size}.onnx"
            export_onnx(net, path, input_size=size, classes=CLASSES, mean=[120.0, 115.0, 100.0],
                        std=[60.0, 59.0, 58.0])
            cache[(variant, size)] = net, path
        return cache[(variant, size)]
    return get


@pytest.mark.parametrize("variant, size", CASES)
def test_export_runs_in_onnxruntime(exported, variant, size):
    net, path = exported(variant, size)
    onnx.checker.check_model(str(path))
    session = _session(path)
    for n in (1, 5):
        x = _batch(n, size, seed=n)
        _close(net.forward(x), session.run(None, {"input": x})[0])
    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert "Dropout" not in ops and ops.count("Conv") == 5 and ops.count("Gemm") == 3
    assert ops.count("LRN") == (2 if variant == "paper" else 0)
    assert ("AveragePool" in ops) == (size == 416) and ("MatMul" in ops) == (size == 128)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, size, size]


def test_export_meta_and_lrn_convention(exported):
    _, path = exported("paper", 224)
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["classes"]) == CLASSES and props["input_size"] == "224"
    assert json.loads(props["mean"]) == [120.0, 115.0, 100.0] and "256" in props["preprocess"]
    assert model.opset_import[0].version == 17
    lrn = next(n for n in model.graph.node if n.op_type == "LRN")
    a = {x.name: onnx.helper.get_attribute_value(x) for x in lrn.attribute}
    # the paper's k=2, n=5, alpha=1e-4 (undivided) is ONNX's size 5, alpha 5e-4, bias 2
    assert a["size"] == 5 and a["bias"] == 2.0 and a["alpha"] == np.float32(5e-4)
    assert a["beta"] == np.float32(0.75)


@pytest.mark.parametrize("variant", ["paper", "owt"])
def test_openvino_reads_the_export(exported, variant):
    ov = pytest.importorskip("openvino", reason="openvino is not installed")
    net, path = exported(variant, 224)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = _batch(5, 224, seed=9)
    _close(net.forward(x), compiled(x)[0])


@pytest.mark.parametrize("variant, size", [("paper", 224), ("owt", 128)])
def test_round_trip_is_bitwise(exported, variant, size):
    net, path = exported(variant, size)
    net2, meta = import_onnx(path)
    mine, theirs = net.state_dict(), net2.state_dict()
    assert list(mine) == list(theirs)
    for k in mine:
        assert mine[k].view(np.uint32).tobytes() == theirs[k].view(np.uint32).tobytes(), k
    assert net2.geometry == net.geometry and net2.variant == variant
    assert meta["classes"] == CLASSES and meta["input_size"] == size
    assert meta["preprocess"]["mean"] == [120.0, 115.0, 100.0]
    x = _batch(2, size)
    assert np.array_equal(net.forward(x), net2.forward(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # the TorchScript exporter
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_exported_torchvision_alexnet(tmp_path, dynamo):
    """torch.onnx.export of torchvision's AlexNet, with either exporter (torch.export, the
    default since PyTorch 2.9, needs onnxscript)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript (torch's default ONNX exporter) "
                                                 "is not installed")
    from references import torch_alexnet
    torch.manual_seed(0)
    model = torch_alexnet("owt", num_classes=7).eval()
    path = tmp_path / "tv.onnx"
    x = _batch(3, 224, seed=4)
    batch = ({"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo else
             {"dynamic_axes": {"input": {0: "batch"}}, "opset_version": 17})
    torch.onnx.export(model, (torch.from_numpy(x),), str(path), input_names=["input"],
                      output_names=["logits"], dynamo=dynamo, **batch)
    net, meta = import_onnx(path)
    assert net.variant == "owt" and net.geometry == {**GEOMETRY, "lrn": None}
    sd = net.state_dict()
    for k, v in model.state_dict().items():   # torchvision's names, values bitwise
        assert np.array_equal(sd[k], v.numpy()), k
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    _close(net.forward(x), ref)


@pytest.fixture(scope="module")
def caffe(tmp_path_factory):
    """A Caffe-style bvlc_alexnet graph (227 px, batch 1, Softmax last) and its file."""
    model = caffe_alexnet(227, num_classes=10)
    path = tmp_path_factory.mktemp("caffe") / "bvlc_alexnet.onnx"
    onnx.save(model, str(path))
    return model, path


CAFFE_GEOMETRY = {"conv1_pad": 0, "pool_ceil": True,
                  "lrn": {"size": 5, "alpha": 2e-05, "beta": 0.75, "k": 1.0}}


def test_caffe_style_graph_equals_onnxruntime(caffe):
    model, path = caffe
    onnx.checker.check_model(model)
    net, meta = import_onnx(path)
    assert net.variant == "paper" and net.geometry == CAFFE_GEOMETRY
    assert meta["input_size"] == 227 and net.num_classes == 10
    x = _batch(1, 227, scale=10.0)
    probs = _session(path).run(None, {"data_0": x})[0]
    _close(ac.softmax(net.forward(x)), probs)


def test_caffe_style_at_224_ceil_mode_changes_sizes(tmp_path):
    """At 224 px without conv1 padding, ceil mode gives 27/13/6 where floor gives 26/12/5:
    the pools' last windows hang over the edge, as ONNX Runtime computes them."""
    path = tmp_path / "c224.onnx"
    onnx.save(caffe_alexnet(224, num_classes=10, batch="N", softmax=False, seed=1), str(path))
    net, meta = import_onnx(path)
    assert meta["input_size"] == 224 and net.geometry == CAFFE_GEOMETRY
    x = _batch(3, 224, seed=2, scale=30.0)
    _close(net.forward(x), _session(path).run(None, {"data_0": x})[0])


def test_geometry_travels_in_the_weight_file(caffe, tmp_path):
    _, path = caffe
    net, meta = import_onnx(path)
    w = tmp_path / "caffe.safetensors"
    ac.save(str(w), net, classes=[str(i) for i in range(10)], input_size=227)
    net2, meta2 = ac.load(str(w))
    assert net2.geometry == CAFFE_GEOMETRY and meta2["geometry"] == CAFFE_GEOMETRY
    x = _batch(1, 227)
    assert np.array_equal(net.forward(x), net2.forward(x))
    old = tmp_path / "old.safetensors"      # a file from before geometry was stored
    write_file(old, net.state_dict(), {"variant": "paper", "num_classes": 10})
    assert ac.load(str(old))[0].geometry == GEOMETRY


def test_load_pretrained_takes_the_onnx_geometry(caffe):
    _, path = caffe
    net = ac.alexnet("paper", num_classes=5)
    said = []
    train._load_pretrained(net, str(path), said.append)
    assert net.geometry == CAFFE_GEOMETRY and "loaded 14/16" in said[0]
    src, _ = import_onnx(path)
    assert np.array_equal(net.state_dict()["features.0.weight"],
                          src.state_dict()["features.0.weight"])


def _copy(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _set(node, **attrs):
    for k, v in attrs.items():
        for a in list(node.attribute):
            if a.name == k:
                node.attribute.remove(a)
        node.attribute.append(onnx.helper.make_attribute(k, v))


def _conv2_ungrouped(m):
    init = next(t for t in m.graph.initializer if t.name == "conv2_w_0")
    init.CopyFrom(onnx.numpy_helper.from_array(np.zeros((256, 96, 5, 5), np.float32),
                                               "conv2_w_0"))
    _set(_node(m, "conv2"), group=1)


def _extra_after_fc8(m):
    prob = _node(m, "prob")
    prob.input[0] = "fc8_relu"
    m.graph.node.insert(len(m.graph.node) - 1,
                        onnx.helper.make_node("Relu", ["fc8_1"], ["fc8_relu"], name="relu8"))


def _branch(m):
    m.graph.node.append(onnx.helper.make_node("Relu", ["conv1_1"], ["side"], name="side"))
    m.graph.output.append(onnx.helper.make_tensor_value_info("side", 1, None))


def _external(m):
    t = next(t for t in m.graph.initializer if t.name == "fc6_w_0")
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")


def _lrn_differs(m):
    _set(_node(m, "norm2"), bias=2.0)


def _old_opset(m):
    m.opset_import[0].version = 6


def _huge_claim(m):
    t = next(t for t in m.graph.initializer if t.name == "fc8_w_0")
    del t.dims[:]
    t.dims.extend([10 ** 5, 4096])


@pytest.mark.parametrize("mutate, expect", [
    (_conv2_ungrouped, "node 'conv2' (Conv): (kernel, stride, pad, groups, weight)"),
    (_extra_after_fc8, "node 'relu8' (Relu): a node after the last layer"),
    (_branch, "node 'side' (Relu): a second consumer of 'conv1_1'"),
    (_external, "node 'fc6' (Gemm): tensor 'fc6_w_0': external data, and no folder"),
    (_lrn_differs, "node 'norm2' (LRN): LRN constants differ"),
    (_old_opset, "opset 6: expected 7 or later"),
    (_huge_claim, "node 'fc8' (Gemm): tensor 'fc8_w_0': shape [100000, 4096] claims"),
])
def test_refusals_name_the_node(caffe, mutate, expect):
    m = _copy(caffe[0])
    mutate(m)
    with pytest.raises(OnnxFileError) as e:
        import_model(m, "m.onnx")
    msg = str(e.value)
    assert msg.startswith("m.onnx: ") and expect in msg and "\n" not in msg, msg


def test_external_data_beside_the_model_and_nowhere_else(caffe, tmp_path):
    """Tensors in an external data file (torch's default exporter writes them so) load
    from a file inside the model's folder; absolute paths, '..', links out of the folder
    and byte ranges beyond the file are refused."""
    model, path = caffe
    d = tmp_path / "ext"
    d.mkdir()
    onnx.save(_copy(model), str(d / "m.onnx"), save_as_external_data=True,
              location="m.onnx.data", size_threshold=1024)
    net, _ = import_onnx(d / "m.onnx")
    ref, _ = import_onnx(path)
    assert all(np.array_equal(a, b) for a, b in zip(net.state_dict().values(),
                                                    ref.state_dict().values()))
    base = onnx.load(str(d / "m.onnx"), load_external_data=False)
    (tmp_path / "outside.data").write_bytes(b"\0" * 64)
    os.symlink(tmp_path / "outside.data", d / "link.data")
    for edit, expect in (({"location": "/etc/passwd"}, "expected a file beside the model"),
                         ({"location": "../outside.data"}, "expected a file beside the model"),
                         ({"location": "link.data"}, "no such file beside the model"),
                         ({"location": "nothere.data"}, "no such file beside the model"),
                         ({"offset": str(2 ** 40)}, "bytes 1099511627776.."),
                         ({"length": "12"}, "claims 34848 values, the file holds 3"),
                         ({"offset": "x"}, "bad offset/length")):
        m = _copy(base)
        t = next(t for t in m.graph.initializer if t.name == "conv1_w_0")
        for e in t.external_data:
            if e.key in edit:
                e.value = edit[e.key]
        bad = d / "bad.onnx"
        bad.write_bytes(m.SerializeToString())
        with pytest.raises(OnnxFileError, match=re.escape(expect)):
            import_onnx(bad)


@pytest.mark.parametrize("ops, expect", [
    ([("Conv", "stem", {"kernel_shape": [7, 7], "strides": [2, 2], "pads": [3] * 4},
       [np.zeros((64, 3, 7, 7), np.float32)]),
      ("BatchNormalization", "bn1", {}, [np.ones(64, np.float32)] * 4)],
     "node 'bn1' (BatchNormalization): operator not part of an AlexNet"),
    ([("Conv", "c", {"kernel_shape": [3, 3]}, [np.zeros((32, 3, 3, 3), np.float32)])],
     "node 'c' (Conv): conv1 with 32 filters"),
    ([("Sigmoid", "s", {}, [])], "node 's' (Sigmoid): operator not part of an AlexNet"),
])
def test_other_graphs_are_refused(tmp_path, ops, expect):
    path = tmp_path / "other.onnx"
    onnx.save(small_graph(ops), str(path))
    with pytest.raises(OnnxFileError, match=re.escape(expect)):
        import_onnx(path)


def test_not_onnx_files(tmp_path):
    for name, blob in (("text.onnx", b"hello, world\n" * 10), ("empty.onnx", b""),
                       ("zeros.onnx", bytes(64))):
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(OnnxFileError) as e:
            import_onnx(p)
        assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    with pytest.raises(OnnxFileError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_cli_export_import_round_trip(tmp_path, capsys):
    net = ac.alexnet("owt", num_classes=3, init="torch", seed=5)
    w, m, w2 = tmp_path / "m.safetensors", tmp_path / "m.onnx", tmp_path / "back.safetensors"
    pre = {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}
    ac.save(str(w), net, classes=["a", "b", "c"], input_size=96, preprocess=pre)
    assert cli.main(["export", "-load", str(w), "-o", str(m)]) == 0
    assert "opset 17" in capsys.readouterr().out
    assert cli.main(["import", str(m), "-save", str(w2)]) == 0
    net2, meta = ac.load(str(w2))
    assert meta["classes"] == ["a", "b", "c"] and meta["input_size"] == 96
    assert meta["preprocess"]["mean"] == pre["mean"]
    assert all(np.array_equal(a, b) for a, b in zip(net.state_dict().values(),
                                                    net2.state_dict().values()))
    # inference and info read the .onnx file directly
    net3, _ = ac.load(str(m))
    assert net3.variant == "owt"


def test_cli_import_caffe_with_bgr_and_preprocessing(caffe, tmp_path, capsys):
    _, path = caffe
    names = tmp_path / "synset.txt"
    names.write_text("".join(f"n{i:08d} thing {i}\n" for i in range(10)))
    out = tmp_path / "bvlc.safetensors"
    assert cli.main(["import", str(path), "-save", str(out), "-bgr", "-classes", str(names),
                     "-mean", "122.7,116.7,104.0", "-std", "1,1,1"]) == 0
    assert "LRN k=1 alpha=2e-05" in capsys.readouterr().out
    net, meta = ac.load(str(out))
    src, _ = import_onnx(path)
    assert np.array_equal(net.state_dict()["features.0.weight"],
                          src.state_dict()["features.0.weight"][:, ::-1])
    assert meta["classes"][3] == "n00000003 thing 3" and meta["preprocess"]["std"] == [1, 1, 1]
    assert meta["input_size"] == 227 and meta["geometry"] == CAFFE_GEOMETRY


@pytest.mark.parametrize("args, expect", [
    (["import", "{bad}", "-save", "{tmp}/x.safetensors"], "bad.onnx: not an ONNX model"),
    (["import", "{tmp}/none.onnx", "-save", "{tmp}/x.safetensors"], "none.onnx: no such file"),
    (["export", "-load", "{tmp}/none.safetensors", "-o", "{tmp}/x.onnx"], "no such file"),
    (["import", "{bad}", "-save", "x", "-mean", "1,2,3"], "-mean and -std go together"),
])
def test_cli_errors_are_one_line(tmp_path, args, expect):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 100)
    args = [a.format(bad=bad, tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", *args], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and expect in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_package_does_not_import_onnx():
    code = "import sys, alexnet_cpu, alexnet_cpu.cli; sys.exit('onnx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_without_onnx_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'alexnet-cpu\[onnx\]'"):
        export_onnx(ac.alexnet("owt", num_classes=2), tmp_path / "x.onnx")


def test_deploy_snippet_runs(exported, tmp_path, monkeypatch):
    """docs/ONNX.md's ONNX Runtime example (a ```py block) on an exported model."""
    with open(ONNX_DOC) as f:
        blocks = re.findall(r"```py\n(.*?)```", f.read(), re.S)
    assert blocks
    _, path = exported("paper", 224)
    monkeypatch.chdir(tmp_path)
    os.symlink(path, tmp_path / "alexnet.onnx")
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 260, 3), np.uint8)).save(
        tmp_path / "cat.jpg")
    scope = {}
    exec(compile(blocks[0], "ONNX.md", "exec"), scope)
    assert scope["probs"].shape == (1, 7) and abs(scope["probs"].sum() - 1) < 1e-5
