"""Nets to and from weight files (see weights.py for the file format).

A weight file holds the parameters under torchvision's names plus metadata enough to
rebuild the net and its preprocessing: variant, num_classes, in_channels, input size,
class names, normalisation and PCA data. A checkpoint adds the momentum buffers
(optim.velocity.<name>) and the training state (epoch, step, schedule, RNG).
"""
import os

import numpy as np

from .model import VARIANTS, alexnet
from .weights import WeightFileError, read_file, write_file


def save(path, net, **metadata):
    """Write the net's parameters and metadata to `path` atomically."""
    meta = {"kind": "weights", "variant": net.variant, "num_classes": net.num_classes,
            "in_channels": net.in_channels}
    meta.update(metadata)
    write_file(path, net.state_dict(), _jsonable(meta))


def save_checkpoint(path, net, opt, **metadata):
    """Parameters, momentum buffers and metadata (training state) in one atomic write."""
    meta = {"kind": "checkpoint", "variant": net.variant, "num_classes": net.num_classes,
            "in_channels": net.in_channels, "dropout": net.dropout_state()}
    meta.update(metadata)
    tensors = net.state_dict()
    tensors.update(opt.state_dict())
    write_file(path, tensors, _jsonable(meta))


def load(path, with_tensors=False):
    """(net, metadata) from a weight file or checkpoint; also accepts a plain safetensors
    file of a torchvision AlexNet state dict (then the variant is inferred as owt).
    with_tensors=True also returns every tensor in the file (for resuming)."""
    tensors, meta = read_file(path)
    variant = meta.get("variant") or _infer_variant(path, tensors)
    if variant not in VARIANTS:
        raise WeightFileError(f"{path}: unknown variant {variant!r}")
    try:
        num_classes = int(meta.get("num_classes") or tensors["classifier.6.weight"].shape[0])
        in_channels = int(meta.get("in_channels") or tensors["features.0.weight"].shape[1])
    except KeyError as e:
        raise WeightFileError(f"{path}: not an AlexNet weight file (no tensor {e})") from None
    net = alexnet(variant, num_classes=num_classes, in_channels=in_channels)
    model = {k: v.astype(np.float32, copy=False) for k, v in tensors.items()
             if not k.startswith("optim.")}
    try:
        net.load_state_dict(model)
    except ValueError as e:
        raise WeightFileError(f"{path}: {e}") from None
    if "dropout" in meta:
        net.set_dropout_state(meta["dropout"])
    net.eval()
    return (net, meta, tensors) if with_tensors else (net, meta)


def _infer_variant(path, tensors):
    w = tensors.get("features.0.weight")
    if w is None:
        raise WeightFileError(f"{path}: not an AlexNet weight file (no features.0.weight)")
    return "owt" if w.shape[0] == 64 else "paper"


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
