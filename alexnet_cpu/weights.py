"""Weight files: safetensors-compatible, checksummed, written atomically. No pickle.

Layout (the safetensors format, so other tools read our files and we read theirs):

    8 bytes   N, little-endian uint64: length of the JSON header
    N bytes   JSON header, padded with spaces so that 8 + N is a multiple of 8:
              {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
               "__metadata__": {str: str}}
    rest      the tensors' raw little-endian bytes, back to back, in the header's order;
              offsets are relative to the start of this data block.

Our files carry in ``__metadata__``: "format": "alexnet-cpu", "format_version": "1",
"alexnet_cpu": json.dumps(<caller's metadata>), "sha256": hex SHA-256 of the whole data block.
Files from other tools (no checksum) load too, with metadata {}; ``read_header`` shows their
raw header. Every problem found on reading raises WeightFileError naming the file.
"""
import hashlib
import json
import math
import os
import secrets

import numpy as np

__all__ = ["WeightFileError", "write_file", "read_file", "read_header", "FORMAT", "FORMAT_VERSION"]

FORMAT = "alexnet-cpu"
FORMAT_VERSION = "1"
_MAX_HEADER = 100_000_000  # safetensors' own limit

# safetensors dtype tag <-> numpy little-endian dtype.
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_TAGS = {dt: tag for tag, dt in _DTYPES.items()}
# BF16 (common in other tools' files) has no numpy dtype: read as uint16, widen to float32.
_BF16 = "BF16"


class WeightFileError(ValueError):
    """A weight file is missing, unreadable, malformed or corrupt."""


def _tag_of(name, arr):
    dt = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    tag = _TAGS.get(dt)
    if tag is None:
        raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored "
                        f"(supported: float64/32/16, int64/32/16/8, uint64/32/16/8, bool)")
    return tag


def _bytes_view(arr):
    """The array's bytes as a flat uint8 view (no copy; arr is C-contiguous)."""
    return arr.reshape(-1).view(np.uint8)


def _write_tensor(f, arr):
    if arr.size:
        f.write(_bytes_view(arr))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems / platforms cannot fsync a directory
    finally:
        os.close(fd)


def write_file(path, tensors, metadata=None):
    """Write {name: ndarray} and a JSON-able metadata dict to `path`, atomically.

    The file appears complete or not at all: bytes go to a temporary file in the same
    directory, which is fsynced and renamed over `path`; on any error the temporary file is
    removed and an existing `path` is left untouched.
    """
    path = os.fspath(path)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors: expected a dict of name -> ndarray, got {type(tensors).__name__}")
    try:
        meta_json = json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata: must be JSON-serialisable ({e})") from None

    arrays, header, offset = [], {}, 0
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor name {name!r}: expected a non-empty str other than '__metadata__'")
        arr = np.asarray(value)
        tag = _tag_of(name, arr)
        arr = np.asarray(arr, dtype=_DTYPES[tag], order="C")  # little-endian, C order (keeps 0-d)
        n = arr.nbytes
        header[name] = {"dtype": tag, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + n]}
        arrays.append(arr)
        offset += n

    digest = hashlib.sha256()
    for arr in arrays:
        if arr.size:
            digest.update(_bytes_view(arr))
    header["__metadata__"] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "alexnet_cpu": meta_json, "sha256": digest.hexdigest()}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-(8 + len(hbytes)) % 8)

    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(hbytes).to_bytes(8, "little"))
            f.write(hbytes)
            for arr in arrays:
                _write_tensor(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fail(path, msg):
    raise WeightFileError(f"{path}: {msg}")


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _open_and_parse(path):
    """Open the file, read and validate its header. Returns (file, header, entries, data_len)
    with entries [(name, tag, shape, begin, end)] sorted by offset."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        _fail(path, "no such file")
    except IsADirectoryError:
        _fail(path, "is a directory, not a weight file")
    except OSError as e:
        _fail(path, f"cannot open ({e.strerror or e})")
    try:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(8)
        if len(raw) < 8:
            _fail(path, f"too short to be a weight file ({size} bytes)")
        n = int.from_bytes(raw, "little")
        if n < 2 or n > _MAX_HEADER:
            _fail(path, f"bad header length {n} (not a safetensors weight file?)")
        if 8 + n > size:
            _fail(path, f"header length {n} exceeds the file size {size} (file truncated?)")
        hbytes = f.read(n)
        if len(hbytes) != n:
            _fail(path, "file shorter than its header says (truncated)")
        try:
            header = json.loads(hbytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as e:
            _fail(path, f"header is not valid JSON ({e})")
        if not isinstance(header, dict):
            _fail(path, "header is not a JSON object")
        meta = header.get("__metadata__", {})
        if meta is None:
            meta = {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            _fail(path, "__metadata__ must be an object of strings")

        entries = []
        for name, e in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
                _fail(path, f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
            tag, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
            if tag not in _DTYPES and tag != _BF16:
                _fail(path, f"tensor {name!r}: unknown or unsupported dtype {tag!r}")
            if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
                _fail(path, f"tensor {name!r}: bad shape {shape!r}")
            if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)
                    or offs[0] > offs[1]):
                _fail(path, f"tensor {name!r}: bad data_offsets {offs!r}")
            itemsize = 2 if tag == _BF16 else _DTYPES[tag].itemsize
            nbytes = math.prod(shape) * itemsize
            if offs[1] - offs[0] != nbytes:
                _fail(path, f"tensor {name!r}: shape {shape} {tag} needs {nbytes} bytes, "
                            f"data_offsets {offs} give {offs[1] - offs[0]}")
            entries.append((name, tag, tuple(shape), offs[0], offs[1]))

        entries.sort(key=lambda t: (t[3], t[4]))
        pos = 0
        for name, _, _, begin, end in entries:
            if begin != pos:
                what = "overlap" if begin < pos else "a gap"
                _fail(path, f"tensor {name!r}: data_offsets leave {what} at byte {min(begin, pos)}")
            pos = end
        data_len = size - 8 - n
        if pos > data_len:
            _fail(path, f"data block is {data_len} bytes, tensors need {pos} (file truncated)")
        if pos < data_len:
            _fail(path, f"{data_len - pos} unexpected bytes after the last tensor")
        return f, header, entries, data_len
    except BaseException:
        f.close()
        raise


def read_header(path):
    """The file's validated JSON header (tensor entries and raw __metadata__), no data read."""
    path = os.fspath(path)
    f, header, _, _ = _open_and_parse(path)
    f.close()
    return header


def read_file(path, verify=True):
    """Read a weight file -> (tensors {name: ndarray}, metadata dict).

    The structure (header, dtypes, shapes, offsets, sizes) is always checked; with
    verify=True the SHA-256 of the data is checked too when the file carries one. Arrays are
    fresh, writeable, C-contiguous, in native byte order, in the file's header order.
    metadata is what write_file was given; {} for files from other tools.
    """
    path = os.fspath(path)
    f, header, entries, _ = _open_and_parse(path)
    raw_meta = header.get("__metadata__") or {}
    ours = raw_meta.get("format") == FORMAT
    if ours and raw_meta.get("format_version") != FORMAT_VERSION:
        f.close()
        _fail(path, f"format_version {raw_meta.get('format_version')!r} not supported "
                    f"(this reader knows {FORMAT_VERSION!r})")
    want = raw_meta.get("sha256") if (ours and verify) else None
    digest = hashlib.sha256() if want else None
    out = {}
    with f:
        for name, tag, shape, begin, end in entries:
            dt = np.dtype("<u2") if tag == _BF16 else _DTYPES[tag]
            arr = np.empty(shape, dtype=dt)
            if end > begin:
                buf = _bytes_view(arr)
                got = f.readinto(buf)
                if got != end - begin:
                    _fail(path, f"tensor {name!r}: file ended early (truncated)")
                if digest is not None:
                    digest.update(buf)
            if tag == _BF16:
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            out[name] = arr
    if digest is not None and digest.hexdigest() != want:
        _fail(path, "checksum mismatch (file corrupt or truncated)")

    metadata = {}
    if ours and "alexnet_cpu" in raw_meta:
        try:
            metadata = json.loads(raw_meta["alexnet_cpu"])
        except ValueError as e:
            _fail(path, f"metadata is not valid JSON ({e})")
    # header order, not offset order
    order = [k for k in header if k != "__metadata__"]
    return {k: out[k] for k in order}, metadata
