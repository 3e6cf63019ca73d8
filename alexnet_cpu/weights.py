"""Weight files: safetensors-compatible, checksummed, written atomically. No pickle.

Layout (the safetensors format, so other tools read our files and we read theirs):

    8 bytes   N, little-endian uint64: length of the JSON header
    N bytes   JSON header, padded with spaces so that 8 + N is a multiple of 8:
              {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
               "__metadata__": {str: str}}
    rest      the tensors' raw little-endian bytes, back to back, in the header's order;
              offsets are relative to the start of this data block.

Our files carry in ``__metadata__``: "format": "alexnet-cpu", "format_version": "2",
"alexnet_cpu": json.dumps(<caller's metadata: a JSON object>), "sha256": hex SHA-256 of
the header without the "sha256" field (canonical JSON: sorted keys, no spaces, ASCII, its
length first as 8 little-endian bytes) followed by the whole data block. So the checksum
covers names, shapes and metadata as well as the tensor bytes, and a file that says it is
ours must carry it. Version "1" files (checksum of the data block only) still load.
Files from other tools (no checksum) load too, with metadata {}; ``read_header`` shows their
raw header. Every problem found on reading raises WeightFileError naming the file.

Saving writes ``.NAME.PID.RANDOM.tmp`` beside NAME and renames it over NAME; a save also
removes such files left by earlier saves of NAME whose process no longer runs (a kill -9
mid-save), and ones without a PID (older writers) more than an hour old.
"""
import hashlib
import json
import math
import os
import re
import secrets
import time

import numpy as np

__all__ = ["WeightFileError", "write_file", "read_file", "read_header", "read_metadata", "FORMAT",
           "FORMAT_VERSION"]

FORMAT = "alexnet-cpu"
FORMAT_VERSION = "2"
_VERSIONS = ("1", "2")   # the versions this reader knows: "1" has a data-only checksum
_MAX_HEADER = 100_000_000  # safetensors' own limit
_MAX_NDIM = 32             # numpy's limit is 64; no weight has more than a handful
_MAX_ELEMS = 1 << 60       # bound on the product of a shape's non-zero sides (numpy's own)
_STALE_NO_PID = 3600       # seconds after which a temporary file without a PID is stale

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

    header["__metadata__"] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "alexnet_cpu": meta_json}
    digest = _header_digest(header)
    for arr in arrays:
        if arr.size:
            digest.update(_bytes_view(arr))
    header["__metadata__"]["sha256"] = digest.hexdigest()
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-(8 + len(hbytes)) % 8)

    def write(f):
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for arr in arrays:
            _write_tensor(f, arr)
    write_atomically(path, write)


def write_atomically(path, write):
    """Write `path` through write(f) into a temporary beside it, fsynced and renamed into
    place: a crash leaves the previous file intact (temporaries of dead processes are
    removed by the next write of the same path)."""
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory, os.path.basename(path))
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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


def _header_digest(header):
    """SHA-256 started with the header minus its "sha256" field, in canonical JSON."""
    meta = {k: v for k, v in header.get("__metadata__", {}).items() if k != "sha256"}
    canon = json.dumps({**header, "__metadata__": meta}, sort_keys=True,
                       separators=(",", ":"), ensure_ascii=True).encode("ascii")
    digest = hashlib.sha256(len(canon).to_bytes(8, "little"))
    digest.update(canon)
    return digest


def _pid_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists but not ours (EPERM), or cannot tell: keep its file
    return True


def _remove_stale_temporaries(directory, name):
    """Remove .NAME.PID.RANDOM.tmp files of earlier saves whose process is gone, and
    .NAME.RANDOM.tmp ones (older writers, no PID) more than _STALE_NO_PID seconds old."""
    pattern = re.compile(r"\." + re.escape(name) + r"\.(?:(\d+)\.)?[0-9a-f]{12}\.tmp")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for e in entries:
        m = pattern.fullmatch(e.name)
        if m is None:
            continue
        try:
            if m.group(1) is not None:
                stale = int(m.group(1)) != os.getpid() and not _pid_running(int(m.group(1)))
            else:
                stale = time.time() - e.stat(follow_symlinks=False).st_mtime > _STALE_NO_PID
            if stale and e.is_file(follow_symlinks=False):
                os.unlink(e.path)
        except OSError:
            pass   # another save removed it first, or not ours to remove


def _fail(path, msg):
    raise WeightFileError(f"{path}: {msg}")


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _short(x, limit=80):
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + "..."


def _parse_json(path, data, what):
    """json.loads that reports every failure, deep nesting included, as a WeightFileError."""
    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data,
                          object_pairs_hook=_no_duplicates)
    except RecursionError:
        _fail(path, f"{what} is nested too deeply")
    except (UnicodeDecodeError, ValueError) as e:
        _fail(path, f"{what} is not valid JSON ({_short(str(e), 120)})")


def _check_our_metadata(path, meta):
    """The fields every file of ours carries: a known version and its checksum."""
    version = meta.get("format_version")
    if version not in _VERSIONS:
        _fail(path, f"format_version {_short(version)} not supported "
                    f"(this reader knows {', '.join(_VERSIONS)})")
    sha = meta.get("sha256")
    if sha is None:
        _fail(path, "no sha256 checksum (required in alexnet-cpu files)")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        _fail(path, f"bad sha256 field {_short(sha)}")


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
        header = _parse_json(path, hbytes, "header")
        if not isinstance(header, dict):
            _fail(path, "header is not a JSON object")
        meta = header.get("__metadata__", {})
        if meta is None:
            meta = {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            _fail(path, "__metadata__ must be an object of strings")
        if meta.get("format") == FORMAT:
            _check_our_metadata(path, meta)

        entries = []
        for name, e in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
                _fail(path, f"tensor {_short(name)}: entry must have exactly dtype, shape, data_offsets")
            tag, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
            if not isinstance(tag, str) or (tag not in _DTYPES and tag != _BF16):
                _fail(path, f"tensor {_short(name)}: unknown or unsupported dtype {_short(tag)}")
            if not name:
                _fail(path, "a tensor has an empty name")
            if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                    or not all(_is_int(s) for s in shape)
                    or math.prod(s for s in shape if s) > _MAX_ELEMS):
                _fail(path, f"tensor {_short(name)}: bad shape {_short(shape)}")
            if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)
                    or offs[0] > offs[1]):
                _fail(path, f"tensor {_short(name)}: bad data_offsets {_short(offs)}")
            itemsize = 2 if tag == _BF16 else _DTYPES[tag].itemsize
            nbytes = math.prod(shape) * itemsize
            if offs[1] - offs[0] != nbytes:
                _fail(path, f"tensor {_short(name)}: shape {shape} {tag} needs {nbytes} bytes, "
                            f"data_offsets {offs} give {offs[1] - offs[0]}")
            entries.append((name, tag, tuple(shape), offs[0], offs[1]))

        entries.sort(key=lambda t: (t[3], t[4]))
        pos = 0
        for name, _, _, begin, end in entries:
            if begin != pos:
                what = "overlap" if begin < pos else "a gap"
                _fail(path, f"tensor {_short(name)}: data_offsets leave {what} at byte {min(begin, pos)}")
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


def _metadata(path, raw_meta):
    """The caller's metadata dict from a validated __metadata__ ({} in other tools' files)."""
    if raw_meta.get("format") != FORMAT or "alexnet_cpu" not in raw_meta:
        return {}
    metadata = _parse_json(path, raw_meta["alexnet_cpu"], "metadata")
    if not isinstance(metadata, dict):
        _fail(path, f"metadata is a JSON {type(metadata).__name__}, not an object")
    return metadata


def read_metadata(path):
    """({name: shape}, metadata) with the header validated as read_file does, without
    reading the tensors or verifying the checksum (cheap, for inspecting a file)."""
    path = os.fspath(path)
    f, header, entries, _ = _open_and_parse(path)
    with f:
        metadata = _metadata(path, header.get("__metadata__") or {})
    return {name: shape for name, _, shape, _, _ in entries}, metadata


def read_file(path, verify=True):
    """Read a weight file -> (tensors {name: ndarray}, metadata dict).

    The structure (header, dtypes, shapes, offsets, sizes) is always checked; with
    verify=True the SHA-256 (header and data) is checked too in our files. Arrays are
    fresh, writeable, C-contiguous, in native byte order, in the file's header order.
    metadata is what write_file was given; {} for files from other tools.
    """
    path = os.fspath(path)
    f, header, entries, _ = _open_and_parse(path)
    raw_meta = header.get("__metadata__") or {}
    ours = raw_meta.get("format") == FORMAT
    digest, out = None, {}
    with f:
        metadata = _metadata(path, raw_meta)
        want = raw_meta["sha256"] if (ours and verify) else None
        if want:
            digest = (hashlib.sha256() if raw_meta["format_version"] == "1"
                      else _header_digest(header))
        for name, tag, shape, begin, end in entries:
            dt = np.dtype("<u2") if tag == _BF16 else _DTYPES[tag]
            arr = np.empty(shape, dtype=dt)
            if end > begin:
                buf = _bytes_view(arr)
                got = f.readinto(buf)
                if got != end - begin:
                    _fail(path, f"tensor {_short(name)}: file ended early (truncated)")
                if digest is not None:
                    digest.update(buf)
            if tag == _BF16:
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            out[name] = arr
    if digest is not None and digest.hexdigest() != want:
        _fail(path, "checksum mismatch (file corrupt, truncated or edited)")
    # header order, not offset order
    order = [k for k in header if k != "__metadata__"]
    return {k: out[k] for k in order}, metadata
