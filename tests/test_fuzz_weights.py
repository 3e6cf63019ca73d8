"""Seeded fuzzing of weight files: thousands of mutations of a small file and of a real
model file's header (truncation, byte flips, the header-length field, JSON edits of every
header and metadata field, odd and duplicated names, deep nesting). Each mutated file must
load or raise WeightFileError: never another exception, never a huge allocation."""
import json
import os
from dataclasses import asdict

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import checkpoint, weights
from alexnet_cpu.optim import PlateauLR
from alexnet_cpu.train import TrainConfig
from alexnet_cpu.weights import WeightFileError, read_file, write_file

ODD_VALUES = [None, True, False, 0, -1, 1, 2 ** 31, 2 ** 64, 10 ** 30, -(10 ** 30), 0.5,
              float("nan"), float("inf"), -float("inf"), 1e308, "", "x", "F32", "0" * 200,
              [], [1], [-1], [0, 0], [1, 2, 3], [[1]], {}, {"a": 1}, [None], ["a", "b"],
              [0, 10 ** 12], [2 ** 62, 2 ** 62, 0], list(range(40))]
ODD_NAMES = ["", " ", "__metadata__", "features.0.weight", "optim.velocity.x", "é" * 3,
             "a" * 5000, "\u0000", "../../etc/passwd", "features.0.weight "]


def _split(raw):
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _paths(obj, prefix=()):
    """Every (path) to a value in a JSON tree, containers included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _deep(depth):
    return "[" * depth + "]" * depth


def _mutate_tree(tree, rng):
    """One JSON edit: replace, delete or rename a random node, or nest one deeply."""
    paths = [p for p in _paths(tree) if p]
    path = paths[rng.integers(len(paths))]
    parent, key = _get(tree, path[:-1]), path[-1]
    action = rng.integers(5)
    if action == 0 or isinstance(parent, list):
        parent[key] = ODD_VALUES[rng.integers(len(ODD_VALUES))]
    elif action == 1:
        del parent[key]
    elif action == 2:
        parent[ODD_NAMES[rng.integers(len(ODD_NAMES))]] = parent.pop(key)
    elif action == 3:
        parent[key] = json.loads(_deep(int(rng.integers(50, 900))))
    else:
        parent[ODD_NAMES[rng.integers(len(ODD_NAMES))]] = parent[key]   # duplicated entry
    return tree


def _encode(header, data, rng, sign):
    """Header bytes (with the metadata JSON string encoded back), optionally re-signed so
    the checksum holds and the mutation reaches the field checks."""
    meta = header.get("__metadata__")
    if isinstance(meta, dict) and isinstance(meta.get("alexnet_cpu"), (dict, list)):
        meta["alexnet_cpu"] = json.dumps(meta["alexnet_cpu"])
    if sign and isinstance(meta, dict) and "sha256" in meta:
        try:
            digest = weights._header_digest(header)
            digest.update(data)
            meta["sha256"] = digest.hexdigest()
        except (TypeError, ValueError, AttributeError):
            pass
    hb = json.dumps(header).encode()
    if rng.random() < 0.05:   # a duplicated key as raw text
        hb = hb[:1] + b'"k":1,"k":2,' + hb[1:]
    return len(hb).to_bytes(8, "little") + hb


def _every_field(raw, rng):
    """One edit of each header field and each metadata field (an odd value in its place,
    or the field deleted), re-signed so the checksum holds."""
    header, data = _split(raw)
    inner = json.loads(header["__metadata__"]["alexnet_cpu"])
    for where, tree in (("header", header), ("metadata", inner)):
        for path in _paths(tree):
            if not path:
                continue
            h = json.loads(json.dumps(header))
            target = h if where == "header" else json.loads(json.dumps(inner))
            parent = _get(target, path[:-1])
            if isinstance(parent, dict) and rng.random() < 0.2:
                del parent[path[-1]]
            else:
                parent[path[-1]] = ODD_VALUES[rng.integers(len(ODD_VALUES))]
            if where == "metadata":
                h["__metadata__"]["alexnet_cpu"] = target
            yield f"{where} field {path}", _encode(h, data, rng, sign=True) + data


def _mutations(raw, rng, count):
    """Yield (description, bytes) mutations of a file: first one edit of every field, then
    `count` random ones."""
    yield from _every_field(raw, rng)
    header, data = _split(raw)
    n = len(raw) - len(data) - 8
    for i in range(count):
        kind = i % 6
        if kind == 0:
            cut = int(rng.integers(0, len(raw)))
            yield f"truncated at {cut}", raw[:cut]
        elif kind == 1:
            b = bytearray(raw)
            lo, hi = (8, 8 + n) if rng.random() < 0.7 else (8 + n, len(raw))
            for _ in range(int(rng.integers(1, 4))):
                if hi > lo:
                    b[int(rng.integers(lo, hi))] ^= 1 << int(rng.integers(8))
            yield "byte flips", bytes(b)
        elif kind == 2:
            choices = [0, 1, 2, n - 1, n + 1, n + 8, len(raw), 2 ** 63, 2 ** 64 - 1,
                       int(rng.integers(0, 2 ** 62))]
            v = choices[int(rng.integers(len(choices)))]
            yield f"header length {v}", v.to_bytes(8, "little") + raw[8:]
        elif kind == 5:
            depth = int(rng.integers(1000, 200_000))
            h = json.loads(json.dumps(header))
            target = rng.integers(3)
            if target == 0:
                h["__metadata__"]["alexnet_cpu"] = _deep(depth)
            elif target == 1:
                h["deep"] = json.loads("1")
                hb = json.dumps(h).encode().replace(b'"deep": 1', b'"deep": ' + _deep(depth).encode())
                yield f"deep header {depth}", len(hb).to_bytes(8, "little") + hb + data
                continue
            else:
                meta = json.loads(h["__metadata__"]["alexnet_cpu"])
                meta["classes"] = "@@"
                h["__metadata__"]["alexnet_cpu"] = json.dumps(meta).replace(
                    '"@@"', _deep(depth))
            yield f"deep metadata {depth}", _encode(h, data, rng, sign=True) + data
        else:   # JSON edits of the header or of the metadata inside it
            h = json.loads(json.dumps(header))
            meta = h.get("__metadata__", {})
            if kind == 4 and isinstance(meta.get("alexnet_cpu"), str):
                meta["alexnet_cpu"] = json.loads(meta["alexnet_cpu"])
            try:
                _mutate_tree(h, rng)
            except (KeyError, IndexError, TypeError):
                continue
            yield "JSON edit", _encode(h, data, rng, sign=bool(rng.random() < 0.6)) + data


def _expect_load_or_weight_file_error(fn, path, what):
    try:
        fn(path)
    except WeightFileError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e), (what, str(e))
    except Exception as e:   # noqa: BLE001  the point of the test
        pytest.fail(f"{what}: {type(e).__name__}: {e}")


def test_fuzz_small_file(tmp_path):
    rng = np.random.default_rng(2024)
    p = tmp_path / "small.safetensors"
    tensors = {"features.0.weight": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
               "features.0.bias": np.arange(4, dtype=np.float32),
               "steps": np.arange(3, dtype=np.int64), "scalar": np.array(2.0),
               "empty": np.zeros((0, 3), np.float32)}
    meta = {"variant": "owt", "classes": ["a", "b"], "num_classes": 2, "input_size": 63,
            "nested": {"x": [1, 2, {"y": None}]}}
    write_file(p, tensors, meta)
    raw = p.read_bytes()
    loaded = 0
    for what, blob in _mutations(raw, rng, 2000):
        p.write_bytes(blob)
        try:
            read_file(p)
            loaded += 1
        except WeightFileError as e:
            assert str(e).startswith(str(p)) and "\n" not in str(e), (what, str(e))
        except Exception as e:   # noqa: BLE001
            pytest.fail(f"{what}: {type(e).__name__}: {e}")
        _expect_load_or_weight_file_error(checkpoint.inspect, p, what)
    assert 0 < loaded < 2000   # some edits are harmless, most are caught


@pytest.fixture(scope="module")
def real_header(tmp_path_factory):
    """The header of a real owt model file with a checkpoint's metadata, and its data size
    (the data itself is not needed: mutated files get a sparse data block)."""
    path = tmp_path_factory.mktemp("real") / "real.safetensors"
    net = ac.alexnet("owt", num_classes=3)
    sched = PlateauLR(0.01)
    sched.step({"loss": 1.0, "top1": 0.5})
    history = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.0, "val_top1": 0.5,
                "val_topk": 1.0, "k": 3, "lr": 0.01}]
    ac.save(str(path), net, kind="checkpoint", dropout=net.dropout_state(),
            classes=["cat", "dog", "emu"], input_size=63,
            preprocess={"mean": [120.0, 110.0, 100.0], "std": [60.0, 58.0, 57.0],
                        "eigval": [0.2, 0.01, 0.003], "eigvec": np.eye(3).tolist(),
                        "num_images": 40, "base": 72},
            train={"epoch": 1, "step": 10, "history": history, "schedule": sched.state_dict(),
                   "best": {"epoch": 1, "val_top1": 0.5, "val_loss": 1.0, "val_topk": 1.0,
                            "k": 3},
                   "config": {**asdict(TrainConfig()), "extra": None}})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    data_len = len(raw) - 8 - n
    os.unlink(path)
    return raw[:8 + n], raw[8 + n:8 + n + 4096], data_len


def test_fuzz_real_model_header(real_header, tmp_path):
    head, data_start, data_len = real_header
    rng = np.random.default_rng(7)
    p = tmp_path / "m.safetensors"
    p.write_bytes(head)
    with open(p, "r+b") as f:
        f.truncate(len(head) + data_len)
    _, shapes = checkpoint.inspect(p)   # the unmutated file passes every check
    assert shapes["classifier.6.weight"] == (3, 4096)
    accepted = 0
    # the data block stands in as zeros: only the header matters to inspect()
    for what, blob in _mutations(head + data_start, rng, 1500):
        p.write_bytes(blob)
        if not what.startswith("truncated"):   # the rest of the data block, sparse
            with open(p, "r+b") as f:
                f.truncate(len(blob) + data_len - len(data_start))
        try:
            checkpoint.inspect(p)
            accepted += 1
        except WeightFileError as e:
            assert str(e).startswith(str(p)) and "\n" not in str(e), (what, str(e))
        except Exception as e:   # noqa: BLE001
            pytest.fail(f"{what}: {type(e).__name__}: {e}")
    assert 0 < accepted < 1500


@pytest.mark.parametrize("field, value, msg", [
    ("in_channels", 1000000, "in_channels 1000000 does not match"),
    ("num_classes", 7, "num_classes 7 does not match"),
    ("num_classes", "3", "num_classes '3' does not match"),
    ("input_size", 10 ** 9, "input_size"),
    ("classes", ["a", "a", "b"], "classes: expected 3 distinct"),
    ("dropout", [[1, 2], [3]], "dropout: expected pairs"),
    ("preprocess", {"std": [0, 1, 1]}, "preprocess.std"),
    ("preprocess", {"mean": [1, 2]}, "preprocess.mean"),
    ("variant", "vgg", "unknown variant"),
    ("kind", 3, "unknown kind"),
    ("geometry", {"conv1_pad": 2}, "geometry: expected an object with keys"),
    ("geometry", {"conv1_pad": 99, "pool_ceil": False, "lrn": None}, "geometry.conv1_pad"),
])
def test_bad_metadata_field_is_refused(real_header, tmp_path, field, value, msg,
                                      monkeypatch):
    """A signed file (valid checksum) of a real model whose metadata field is wrong: a
    WeightFileError naming the file, before any net is built from it."""
    head, _, data_len = real_header
    header, _ = _split(head)
    meta = json.loads(header["__metadata__"]["alexnet_cpu"])
    meta[field] = value
    header["__metadata__"]["alexnet_cpu"] = json.dumps(meta)
    digest = weights._header_digest(header)
    digest.update(bytes(data_len))            # the zero data block written below
    header["__metadata__"]["sha256"] = digest.hexdigest()
    hb = json.dumps(header).encode()
    p = tmp_path / "w.safetensors"
    with open(p, "wb") as f:
        f.write(len(hb).to_bytes(8, "little") + hb)
        f.truncate(8 + len(hb) + data_len)
    with pytest.raises(WeightFileError, match=msg) as e:
        checkpoint.inspect(p)     # the checks load() makes before building the net
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    if field == "in_channels":    # the case: a MemoryError before, now refused
        monkeypatch.setattr(checkpoint, "alexnet", lambda *a, **k: pytest.fail("net built"))
        with pytest.raises(WeightFileError, match=msg):
            checkpoint.load(p)
