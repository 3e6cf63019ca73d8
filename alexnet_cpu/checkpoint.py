"""Nets to and from weight files (see weights.py for the file format).

A weight file holds the parameters under torchvision's names plus metadata enough to
rebuild the net and its preprocessing: variant, num_classes, in_channels, input size,
class names, normalisation and PCA data, geometry (conv1 padding, ceil-mode pools, LRN
constants; files without it have the default, model.GEOMETRY). A checkpoint adds the momentum buffers
(optim.velocity.<name>) and the training state (epoch, step, schedule, RNG).
"""
import math
import os

import numpy as np

from .model import MIN_INPUT, VARIANTS, alexnet, check_geometry
from .weights import WeightFileError, read_file, read_metadata, write_file


def save(path, net, **metadata):
    """Write the net's parameters and metadata to `path` atomically."""
    meta = {"kind": "weights", "variant": net.variant, "num_classes": net.num_classes,
            "in_channels": net.in_channels, "geometry": net.geometry}
    meta.update(metadata)
    write_file(path, dict(net.named_params()), _jsonable(meta))   # views of the arena


def save_checkpoint(path, net, opt, **metadata):
    """Parameters, momentum buffers and metadata (training state) in one atomic write."""
    meta = {"kind": "checkpoint", "variant": net.variant, "num_classes": net.num_classes,
            "in_channels": net.in_channels, "dropout": net.dropout_state(),
            "geometry": net.geometry}
    meta.update(metadata)
    tensors = dict(net.named_params())
    tensors.update(opt.state_dict())
    write_file(path, tensors, _jsonable(meta))


def load(path, with_tensors=False, model=None):
    """(net, metadata) from a weight file or checkpoint; also accepts a plain safetensors
    file of a torchvision AlexNet state dict (then the variant is inferred as owt), and an
    AlexNet ONNX graph (a path ending in .onnx; onnx_io.import_onnx).
    with_tensors=True also returns every tensor in the file (for resuming).
    model(num_classes) -> Net, if given, builds the net the tensors go into (the one
    train.fit was given) instead of the variant's AlexNet. An int8 file (precision "int8",
    quantize.py) gives a quantize.Int8Net over that net's layout.
    Every metadata field is checked (type, range, agreement with the tensors) before the
    net is built; any problem is a WeightFileError naming the file."""
    path = os.fspath(path)
    if path.lower().endswith(".onnx"):
        from .onnx_io import import_onnx
        net, meta = import_onnx(path)
        return (net, meta, net.state_dict()) if with_tensors else (net, meta)
    tensors, meta = read_file(path)
    variant, num_classes, in_channels = check_metadata(
        path, meta, {k: v.shape for k, v in tensors.items()})
    net = (model(num_classes) if model is not None else
           alexnet(variant, num_classes=num_classes, in_channels=in_channels,
                   geometry=meta.get("geometry"), init=None))
    if meta.get("precision") == "int8":     # post-training quantized (quantize.py)
        from .quantize import Int8Net
        net = Int8Net(net, tensors, path)
        return (net, meta, tensors) if with_tensors else (net, meta)
    params = {k: v.astype(np.float32, copy=False) for k, v in tensors.items()
              if not k.startswith("optim.")}
    try:
        net.load_state_dict(params)
    except ValueError as e:
        raise WeightFileError(f"{path}: {e}") from None
    if "dropout" in meta:
        if len(meta["dropout"]) != len(net.dropout_state()):
            raise WeightFileError(f"{path}: dropout: {len(meta['dropout'])} states for "
                                  f"{len(net.dropout_state())} dropout layers")
        net.set_dropout_state(meta["dropout"])
    net.eval()
    return (net, meta, tensors) if with_tensors else (net, meta)


MAX_INPUT = 4096   # input sizes beyond this are taken as a corrupt field, not a request


def _is_int(x, lo=0, hi=2 ** 63 - 1):
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numbers(x, shape):
    """x is a nested list of finite numbers of this shape."""
    if not shape:
        return _is_number(x)
    return (isinstance(x, list) and len(x) == shape[0]
            and all(_numbers(v, shape[1:]) for v in x))


def inspect(path):
    """(metadata, {name: shape}) of a weight file or checkpoint, every field checked as
    load() and resume check them, without reading the tensors or building the net."""
    shapes, meta = read_metadata(path)
    check_metadata(path, meta, shapes)
    if meta.get("kind") == "checkpoint":
        check_train_state(path, meta.get("train"))
    return meta, shapes


def check_metadata(path, meta, shapes):
    """Validate the fields the runtime reads -> (variant, num_classes, in_channels); the
    last two are taken from the tensor shapes {name: shape} and checked against the
    metadata."""
    need = _needer(path)
    variant = meta.get("variant") or _infer_variant(path, shapes)

    need(meta.get("kind", "weights") in ("weights", "checkpoint"),
         f"unknown kind {_short(meta.get('kind'))}")
    need(variant in VARIANTS, f"unknown variant {_short(variant)} (expected one of "
                              f"{', '.join(VARIANTS)})")
    for name, ndim in (("features.0.weight", 4), ("classifier.6.weight", 2)):
        t = shapes.get(name)
        need(t is not None, f"not an AlexNet weight file (no tensor {name!r})")
        need(len(t) == ndim, f"tensor {name!r} has shape {t}, expected {ndim} dimensions")
    num_classes = shapes["classifier.6.weight"][0]
    in_channels = shapes["features.0.weight"][1]
    need(num_classes >= 1 and in_channels >= 1, "a tensor has an empty side")
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if key in meta:
            need(_is_int(meta[key], 1) and meta[key] == value,
                 f"{key} {_short(meta[key])} does not match the tensors ({value})")
    if "input_size" in meta:
        need(_is_int(meta["input_size"], MIN_INPUT, MAX_INPUT),
             f"input_size {_short(meta['input_size'])}: expected an integer in "
             f"{MIN_INPUT}..{MAX_INPUT}")
    if "classes" in meta:
        c = meta["classes"]
        need(isinstance(c, list) and all(isinstance(n, str) for n in c)
             and len(set(c)) == len(c) == num_classes,
             f"classes: expected {num_classes} distinct names")
    if "preprocess" in meta:
        pre = meta["preprocess"]
        need(isinstance(pre, dict), "preprocess: expected an object")
        for key, shape in (("mean", (3,)), ("std", (3,)), ("eigval", (3,)), ("eigvec", (3, 3))):
            need(key not in pre or _numbers(pre[key], shape),
                 f"preprocess.{key}: expected {'x'.join(map(str, shape))} finite numbers")
        need("std" not in pre or min(pre["std"]) > 0, "preprocess.std: expected values > 0")
    if "geometry" in meta:
        try:
            check_geometry(meta["geometry"])
        except ValueError as e:
            need(False, str(e))
    if "dropout" in meta:
        d = meta["dropout"]
        need(isinstance(d, list) and len(d) <= 8
             and all(isinstance(p, list) and len(p) == 2 and all(_is_int(v) for v in p)
                     for p in d),
             "dropout: expected pairs of non-negative integers (seed, calls)")
    return variant, num_classes, in_channels


def check_train_state(path, state):
    """The training state of a checkpoint, as fit() writes it, before resume reads it."""
    need = _needer(path)
    need(isinstance(state, dict), "checkpoint has no training state")
    for key in ("epoch", "step"):
        need(_is_int(state.get(key)), f"train.{key}: expected a non-negative integer")
    need(isinstance(state.get("history"), list) and len(state["history"]) == state["epoch"]
         and all(isinstance(r, dict) for r in state["history"]),
         f"train.history: expected {state['epoch']} epoch records")
    need(isinstance(state.get("schedule"), dict), "train.schedule: expected an object")
    best = state.get("best")
    need(best is None or _is_number(best) or best == -math.inf or (
        isinstance(best, dict) and _is_int(best.get("epoch"), 1, state["epoch"])
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for k, v in best.items() if k != "epoch")),   # NaN: no validation data
        "train.best: expected the best epoch's record")
    config = state.get("config")
    need(isinstance(config, dict), "train.config: expected an object")
    for key, ok in (("variant", lambda v: v in VARIANTS),
                    ("size", lambda v: _is_int(v, MIN_INPUT, MAX_INPUT)),
                    ("batch_size", lambda v: _is_int(v, 1)),
                    ("seed", _is_int),
                    ("val_fraction", lambda v: _is_number(v) and 0 <= v < 1)):
        need(key in config and ok(config[key]), f"train.config.{key}: bad or missing")
    need("dropout" not in config or (_is_number(config["dropout"]) and 0 <= config["dropout"] < 1),
         "train.config.dropout: expected a number in [0, 1)")


def _needer(path):
    def need(ok, what):
        if not ok:
            raise WeightFileError(f"{path}: {what}")
    return need


def _infer_variant(path, shapes):
    w = shapes.get("features.0.weight")
    if not w:
        raise WeightFileError(f"{path}: not an AlexNet weight file (no features.0.weight)")
    return "owt" if w[0] == 64 else "paper"


def _short(x, limit=60):
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + "..."


def _jsonable(obj):
    """Metadata with NumPy values turned into plain lists and numbers."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
