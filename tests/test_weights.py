"""Weight files: round trips, every corruption detected with a clear error, atomic writes,
and interchange with the `safetensors` package when it is installed."""
import json
import os

import numpy as np
import pytest

from alexnet_cpu import weights
from alexnet_cpu.weights import WeightFileError, read_file, read_header, write_file


def _tensors():
    rng = np.random.default_rng(0)
    return {
        "features.0.weight": rng.standard_normal((4, 3, 5, 5)).astype(np.float32),
        "features.0.bias": rng.standard_normal(4).astype(np.float32),
        "scalar": np.array(3.5, dtype=np.float64),
        "empty": np.zeros((0, 7), dtype=np.float32),
        "step": np.array([123456789012], dtype=np.int64),
        "ints": np.arange(-5, 6, dtype=np.int32).reshape(11, 1),
        "bytes": np.arange(7, dtype=np.uint8),
        "rng_state": np.arange(624, dtype=np.uint32) * 7919,
        "noncontig": rng.standard_normal((6, 8)).astype(np.float32)[:, ::2],
        "bigendian": np.arange(5, dtype=">f4"),
        "mask": np.array([True, False, True]),
    }


META = {"variant": "owt", "classes": ["cat", "dog", "ünïcode"], "epoch": 3,
        "mean": [123.7, 116.3, 103.5], "nested": {"lr": 0.01, "ok": True, "none": None}}


def _paths(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_round_trip(tmp_path):
    p = tmp_path / "w.safetensors"
    t = _tensors()
    write_file(p, t, META)
    got, meta = read_file(p)
    assert meta == META
    assert list(got) == list(t)  # order kept
    for k, v in t.items():
        g = got[k]
        assert g.shape == v.shape, k
        assert g.dtype == v.dtype.newbyteorder("="), k
        assert g.dtype.isnative and g.flags.c_contiguous and g.flags.writeable and g.flags.owndata, k
        np.testing.assert_array_equal(g, v)
    assert _paths(tmp_path) == ["w.safetensors"]  # no temp file left


def test_layout_is_safetensors(tmp_path):
    p = tmp_path / "w.safetensors"
    write_file(p, {"a": np.ones(3, np.float32), "b": np.zeros((2, 2), np.int64)}, {"x": 1})
    raw = p.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    h = json.loads(raw[8:8 + n])
    assert h["a"] == {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}
    assert h["b"] == {"dtype": "I64", "shape": [2, 2], "data_offsets": [12, 44]}
    m = h["__metadata__"]
    assert m["format"] == "alexnet-cpu" and m["format_version"] == "2"
    assert json.loads(m["alexnet_cpu"]) == {"x": 1}
    assert all(isinstance(v, str) for v in m.values())
    assert len(raw) == 8 + n + 44
    assert read_header(p) == h


def test_empty_file_and_no_metadata(tmp_path):
    p = tmp_path / "e.safetensors"
    write_file(p, {})
    assert read_file(p) == ({}, {})


def test_overwrite(tmp_path):
    p = tmp_path / "w.safetensors"
    write_file(p, {"a": np.ones(3, np.float32)}, {"v": 1})
    write_file(p, {"b": np.zeros(2, np.float64)}, {"v": 2})
    t, m = read_file(p)
    assert list(t) == ["b"] and m == {"v": 2}


def test_bad_inputs_on_write(tmp_path):
    p = tmp_path / "w.safetensors"
    with pytest.raises(TypeError, match="dtype"):
        write_file(p, {"a": np.array(["x"], dtype=object)}, {})
    with pytest.raises(TypeError, match="dtype"):
        write_file(p, {"a": np.zeros(2, np.complex64)}, {})
    with pytest.raises(TypeError, match="JSON"):
        write_file(p, {"a": np.zeros(2, np.float32)}, {"x": object()})
    with pytest.raises(ValueError, match="__metadata__"):
        write_file(p, {"__metadata__": np.zeros(2, np.float32)}, {})
    assert _paths(tmp_path) == []


# ---------------------------------------------------------------- corruption

def _written(tmp_path):
    p = tmp_path / "x.safetensors"
    write_file(p, _tensors(), META)
    return p


def _header_len(raw):
    return int.from_bytes(raw[:8], "little")


def _rewrite_header(p, edit):
    raw = p.read_bytes()
    n = _header_len(raw)
    h = json.loads(raw[8:8 + n])
    edit(h)
    hb = json.dumps(h).encode()
    hb += b" " * (-(8 + len(hb)) % 8)
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + raw[8 + n:])


def test_missing_file(tmp_path):
    with pytest.raises(WeightFileError, match="nope.safetensors: no such file"):
        read_file(tmp_path / "nope.safetensors")
    with pytest.raises(WeightFileError, match="directory"):
        read_file(tmp_path)


def test_truncated(tmp_path):
    p = _written(tmp_path)
    raw = p.read_bytes()
    for cut in (len(raw) - 1, len(raw) - 100, 8 + _header_len(raw) + 3, 8 + 10, 5, 0):
        p.write_bytes(raw[:cut])
        with pytest.raises(WeightFileError, match=r"x\.safetensors: .*(truncated|too short)"):
            read_file(p)


def test_flipped_byte_in_data(tmp_path):
    p = _written(tmp_path)
    raw = bytearray(p.read_bytes())
    raw[-10] ^= 0x01
    p.write_bytes(bytes(raw))
    with pytest.raises(WeightFileError,
                       match=r"x\.safetensors: checksum mismatch \(file corrupt, truncated or edited\)"):
        read_file(p)
    read_file(p, verify=False)  # structure still fine, checksum skipped


def test_trailing_bytes(tmp_path):
    p = _written(tmp_path)
    p.write_bytes(p.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightFileError, match="unexpected bytes"):
        read_file(p)


@pytest.mark.parametrize("n", [0, 1, 2**63, 10**9])
def test_bad_header_length(tmp_path, n):
    p = _written(tmp_path)
    raw = p.read_bytes()
    p.write_bytes(n.to_bytes(8, "little") + raw[8:])
    with pytest.raises(WeightFileError, match="header length"):
        read_file(p)


def test_header_length_within_file_but_wrong(tmp_path):
    p = _written(tmp_path)
    raw = p.read_bytes()
    p.write_bytes((_header_len(raw) - 8).to_bytes(8, "little") + raw[8:])
    with pytest.raises(WeightFileError, match="JSON"):
        read_file(p)


def test_garbage_json(tmp_path):
    p = tmp_path / "g.safetensors"
    for hb in (b"{not json}     ", b"\xff\xfe garbage", b"[1, 2, 3]      ", b'{"a": 1}'):
        p.write_bytes(len(hb).to_bytes(8, "little") + hb)
        with pytest.raises(WeightFileError, match=r"g\.safetensors: "):
            read_file(p)
    p.write_bytes(os.urandom(4096))
    with pytest.raises(WeightFileError):
        read_file(p)


def test_duplicate_key(tmp_path):
    p = tmp_path / "d.safetensors"
    hb = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' \
         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    hb += b" " * (-(8 + len(hb)) % 8)
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + b"\0" * 4)
    with pytest.raises(WeightFileError, match="duplicate"):
        read_file(p)


@pytest.mark.parametrize("edit, msg", [
    (lambda h: h["features.0.bias"].update(shape=[5]), "needs 20 bytes"),
    (lambda h: h["features.0.bias"].update(dtype="F64"), "needs 32 bytes"),
    (lambda h: h["features.0.bias"].update(dtype="Q7"), "unknown or unsupported dtype"),
    (lambda h: h["features.0.bias"].update(shape=[-4]), "bad shape"),
    (lambda h: h["features.0.bias"].update(shape="4"), "bad shape"),
    (lambda h: h["features.0.bias"].update(data_offsets=[10]), "bad data_offsets"),
    (lambda h: h["features.0.bias"].update(data_offsets=[20, 4]), "bad data_offsets"),
    (lambda h: h["features.0.bias"].pop("dtype"), "exactly dtype"),
    (lambda h: h["features.0.bias"].update(extra=1), "exactly dtype"),
    (lambda h: h["features.0.bias"].update(data_offsets=[0, 16]), "overlap"),
    (lambda h: h.pop("features.0.bias"), "gap"),
    (lambda h: h["__metadata__"].update(format_version="99"), "format_version"),
    (lambda h: h["__metadata__"].update(alexnet_cpu="{oops"), "metadata is not valid JSON"),
    (lambda h: h["__metadata__"].update(x=3), "__metadata__ must be"),
    (lambda h: h.update(__metadata__=[1]), "__metadata__ must be"),
])
def test_header_inconsistent(tmp_path, edit, msg):
    p = _written(tmp_path)
    _rewrite_header(p, edit)
    with pytest.raises(WeightFileError, match=msg) as e:
        read_file(p)
    assert str(e.value).startswith(str(p) + ": ") and "\n" not in str(e.value)


@pytest.mark.parametrize("edit", [
    lambda h: h["__metadata__"].update(alexnet_cpu=json.dumps({**META, "epoch": 4})),
    lambda h: h["__metadata__"].update(extra="x"),
    lambda h: h["features.0.bias"].update(shape=[2, 2]),            # same byte count
    lambda h: h.update({"renamed": h.pop("scalar")}),               # a tensor renamed
])
def test_checksum_covers_header_and_metadata(tmp_path, edit):
    p = _written(tmp_path)
    _rewrite_header(p, edit)
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        read_file(p)
    read_file(p, verify=False)   # the structure itself is fine


def test_checksum_compared_on_all_64_digits(tmp_path):
    """A stored digest that differs from the true one in any single hex digit (the first,
    a middle or the last) is refused: the whole digest is compared, not a prefix."""
    p = _written(tmp_path)
    true = read_header(p)["__metadata__"]["sha256"]
    for i in (0, 31, 62, 63):
        wrong = true[:i] + "0123456789abcdef"[(int(true[i], 16) + 1) % 16] + true[i + 1:]
        _rewrite_header(p, lambda h: h["__metadata__"].update(sha256=wrong))
        with pytest.raises(WeightFileError, match="checksum mismatch"):
            read_file(p)
    _rewrite_header(p, lambda h: h["__metadata__"].update(sha256=true))
    assert read_file(p)[1] == META          # the true digest, put back, loads


def test_our_files_require_the_checksum(tmp_path):
    p = _written(tmp_path)
    _rewrite_header(p, lambda h: h["__metadata__"].pop("sha256"))
    with pytest.raises(WeightFileError, match="no sha256 checksum"):
        read_file(p)
    _rewrite_header(p, lambda h: h["__metadata__"].update(sha256="abc"))
    with pytest.raises(WeightFileError, match="bad sha256"):
        read_file(p)


def test_version_1_files_still_load(tmp_path):
    """Version 1 (checksum of the data block only) as the previous writer made them."""
    p = _written(tmp_path)
    raw = p.read_bytes()
    n = _header_len(raw)
    data = raw[8 + n:]
    import hashlib
    _rewrite_header(p, lambda h: h["__metadata__"].update(
        format_version="1", sha256=hashlib.sha256(data).hexdigest()))
    t, m = read_file(p)
    assert m == META and np.array_equal(t["ints"], _tensors()["ints"])
    raw = bytearray(p.read_bytes())
    raw[-10] ^= 1
    p.write_bytes(bytes(raw))
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        read_file(p)


@pytest.mark.parametrize("value, msg", [
    ("3.5", "metadata is a JSON float, not an object"),
    ("null", "metadata is a JSON NoneType, not an object"),
    ("[1, 2]", "metadata is a JSON list"),
    ("[" * 100_000 + "]" * 100_000, "metadata is nested too deeply"),
])
def test_metadata_must_be_an_object(tmp_path, value, msg):
    p = _written(tmp_path)
    _rewrite_header(p, lambda h: h["__metadata__"].update(alexnet_cpu=value))
    with pytest.raises(WeightFileError, match=msg) as e:
        read_file(p)
    assert str(e.value).startswith(str(p) + ": ")


def test_deeply_nested_header(tmp_path):
    p = tmp_path / "deep.safetensors"
    hb = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    p.write_bytes(len(hb).to_bytes(8, "little") + hb)
    with pytest.raises(WeightFileError, match="header is nested too deeply"):
        read_file(p)


def test_plain_safetensors_without_checksum(tmp_path):
    p = _written(tmp_path)
    _rewrite_header(p, lambda h: h.update(__metadata__={"format": "pt"}))
    t, m = read_file(p)
    assert m == {}
    np.testing.assert_array_equal(t["ints"], _tensors()["ints"])
    _rewrite_header(p, lambda h: h.pop("__metadata__"))
    assert read_file(p)[1] == {}


def test_bf16_read(tmp_path):
    p = tmp_path / "b.safetensors"
    x = np.array([1.0, -2.5, 3.140625], np.float32)
    bits = (x.view(np.uint32) >> 16).astype("<u2")
    hb = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + bits.tobytes())
    t, _ = read_file(p)
    assert t["x"].dtype == np.float32
    np.testing.assert_array_equal(t["x"], x)


# ---------------------------------------------------------------- atomicity

def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "w.safetensors"
    write_file(p, {"a": np.arange(4, dtype=np.float32)}, {"v": "old"})
    old = p.read_bytes()
    calls = []
    real = weights._write_tensor

    def flaky(f, arr):
        calls.append(1)
        if len(calls) == 2:
            real(f, arr[: arr.size // 2] if arr.ndim else arr)  # half written, then the crash
            raise OSError(28, "No space left on device")
        real(f, arr)

    monkeypatch.setattr(weights, "_write_tensor", flaky)
    with pytest.raises(OSError, match="No space"):
        write_file(p, {"a": np.ones(1000, np.float32), "b": np.ones(1000, np.float32)}, {"v": "new"})
    assert p.read_bytes() == old
    assert _paths(tmp_path) == ["w.safetensors"]
    assert read_file(p)[1] == {"v": "old"}


def test_failure_at_rename_and_interrupt(tmp_path, monkeypatch):
    p = tmp_path / "w.safetensors"
    write_file(p, {"a": np.arange(4, dtype=np.float32)}, {"v": "old"})
    old = p.read_bytes()

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(weights.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_file(p, {"a": np.ones(3, np.float32)}, {"v": "new"})
    assert p.read_bytes() == old
    assert _paths(tmp_path) == ["w.safetensors"]


def test_new_file_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(weights.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        write_file(tmp_path / "n.safetensors", {"a": np.ones(3, np.float32)}, {})
    assert _paths(tmp_path) == []


def test_save_removes_stale_temporaries_of_the_same_path(tmp_path):
    import subprocess
    import sys
    import time
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [f".w.safetensors.{dead}.0123456789ab.tmp",        # its process is gone
             ".w.safetensors.0123456789ab.tmp"]                 # older writer, an hour old
    keep = [f".w.safetensors.{os.getpid()}.0123456789ab.tmp",   # a save of this process
            f".w.safetensors.{os.getppid()}.0123456789ab.tmp",  # a running process's
            ".w.safetensors.fedcba987654.tmp",                  # no PID, but recent
            f".v.safetensors.{dead}.0123456789ab.tmp",          # another file's
            f".w.safetensors.{dead}.xyz.tmp", "w.safetensors.tmp"]   # not our pattern
    for name in stale + keep:
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - 2 * weights._STALE_NO_PID
    os.utime(tmp_path / stale[1], (old, old))
    write_file(tmp_path / "w.safetensors", {"a": np.ones(2, np.float32)})
    assert _paths(tmp_path) == sorted(keep + ["w.safetensors"])


def test_file_mode_follows_umask(tmp_path):
    p = tmp_path / "w.safetensors"
    old = os.umask(0o022)
    try:
        write_file(p, {"a": np.ones(3, np.float32)}, {})
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644


# ---------------------------------------------------------------- interchange

def test_safetensors_reads_ours(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    p = tmp_path / "w.safetensors"
    t = _tensors()
    t.pop("noncontig")
    write_file(p, t, META)
    got = st.load_file(str(p))
    assert set(got) == set(t)
    for k, v in t.items():
        np.testing.assert_array_equal(got[k], v)
    from safetensors import safe_open
    with safe_open(str(p), framework="numpy") as f:
        assert json.loads(f.metadata()["alexnet_cpu"]) == META


def test_we_read_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    p = tmp_path / "theirs.safetensors"
    rng = np.random.default_rng(1)
    t = {"classifier.6.weight": rng.standard_normal((10, 16)).astype(np.float32),
         "classifier.6.bias": rng.standard_normal(10).astype(np.float32),
         "b": np.arange(3, dtype=np.int64), "h": np.arange(5, dtype=np.float16),
         "s": np.array(2.0, dtype=np.float64)}
    st.save_file(t, str(p))
    got, meta = read_file(p)
    assert meta == {}
    for k, v in t.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)
    st.save_file(t, str(p), metadata={"format": "pt"})
    assert read_file(p)[1] == {}


def test_we_read_torch_state_dict(tmp_path):
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    p = tmp_path / "torch.safetensors"
    sd = {"features.0.weight": torch.randn(8, 3, 11, 11), "features.0.bias": torch.randn(8),
          "bf": torch.tensor([1.0, 2.0, -0.5], dtype=torch.bfloat16)}
    save_file(sd, str(p))
    got, meta = read_file(p)
    assert meta == {}
    for k, v in sd.items():
        np.testing.assert_array_equal(got[k], v.float().numpy())
