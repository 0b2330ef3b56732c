"""Saving and loading models: one self-describing, checksummed file; no template needed.

File layout (integers little-endian):

| bytes | content                                                             |
|-------|---------------------------------------------------------------------|
| 8     | magic `b"\\x89EQXFFN\\n"`                                           |
| 8     | `h`, length of the header (uint64)                                  |
| h     | header: UTF-8 JSON (format version, model kind, sizes, dtypes, ...) |
| 8     | `p`, length of the payload (uint64)                                 |
| p     | payload: the leaves, written by `eqx.tree_serialise_leaves`         |
| 32    | SHA-256 of everything before it                                     |

A model file may come from anyone, so `load` treats it as untrusted data. It reads only
regular files (never a pipe or a device, which could block or never end); it checks the magic
bytes and bounds the header's length before reading it, and never reads more than the file
holds; it bounds the header's JSON (nesting depth, number of layers, each size) and checks
every field, metadata included, against what `save` writes; it checks that the parameters the
header describes fit in the bytes present before reading any, and reads each one only after
its stored shape and dtype match the header. Loading never runs code: the header is JSON, the
parameters are raw numbers, no pickle. `save` refuses what `load` would refuse. A writer that
adds header fields must raise `FORMAT_VERSION`: unknown keys are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_path
from ..model._ffn import FFN, Dense
from ..model._standardize import Standardized, Standardizer, check_scaler_values
from ._atomic import _atomic_write, _target
from ._header import (
    _DIGEST,
    _LEN,
    _MAX_DEPTH,
    _MAX_HEADER,
    _PREFIX,
    FORMAT,
    FORMAT_VERSION,
    MAGIC,
    _check_header,
    _header_for,
    _Invalid,
    _library_version,
    _parse_header,
    _plain,
    _show,
    _Spec,
)

__all__ = ["ModelFileError", "load", "read_header", "save"]

_NPY_MAX_HEADER = 4096  # bytes of one parameter's .npy header


class ModelFileError(ValueError):
    """A file that `eqx_ffn.load` cannot read: not a model file, damaged, or from a newer format.

    A subclass of `ValueError`; the message names the file and the problem.
    """


# -- saving ------------------------------------------------------------------------------------


def save(
    path: str | os.PathLike,
    model: FFN | Standardized,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save a model to one self-describing file; `load(path)` rebuilds it without a template.

    The file holds a header (format version, library version, model kind, sizes, per-layer bias
    presence and dtype, activation names, and for `Standardized` the scalers' sizes), the
    parameters written by `eqx.tree_serialise_leaves`, and a SHA-256 checksum. The write is
    atomic: the bytes go to a temporary file in the same folder, which is flushed, synced and then
    renamed over `path`; if anything fails, the temporary file is removed and a file already at
    `path` is left untouched. A temporary file of the same `path` left behind by a save that was
    killed (its process is gone, or it is untouched for 15 minutes) is removed. Parent folders
    are created.

    Whatever `load` would refuse is refused here, before anything is written.

    **Arguments:**

    - `path`: where to write (any name; `.eqx` is a good suffix).
    - `model`: an `eqx_ffn.FFN` (1 to 1000 layers of float16, bfloat16, float32 or float64), or an
      `eqx_ffn.Standardized` wrapping one (either scaler may be `None`). Its activations must be
      named ones (`model.activation_name` not `None`).
    - `metadata`: optional JSON-serialisable dict with string keys (e.g. the data's column
      names), stored in the header and returned by `read_header(path)["metadata"]`. Keys are
      one-line names; nesting at most 30 levels; strings hold no control characters other than
      tab and newline. `"x_cols"` and `"y_cols"`, which `eqx-ffn predict` reads, must be lists
      of distinct one-line column names, one per model input (output), or empty.

    **Returns:** the path written, as a `pathlib.Path`.

    **Raises:** `ValueError` for an activation that is a user callable with no registered
    name, or for sizes, dtypes, scalers or metadata that `load` would refuse (the message names
    the field); `TypeError` for another kind of model or for metadata that JSON cannot hold.

    ```python
    eqx_ffn.save("model.eqx", model, metadata={"x_cols": ["u"], "y_cols": ["y"]})
    same = eqx_ffn.load("model.eqx")
    ```
    """
    path = _target(path)
    header = _header_for(model)
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise TypeError(
                f"metadata must be a dict with string keys; got {type(metadata).__name__}."
            )
        try:
            header["metadata"] = json.loads(json.dumps(dict(metadata), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"metadata must hold only JSON values (dicts, lists, str, finite numbers, bool, "
                f"None); {e}."
            ) from None
        except RecursionError:
            raise ValueError(
                f"Cannot save {path}: metadata is nested deeper than {_MAX_DEPTH} levels."
            ) from None
    try:
        _check_header(header)
    except _Invalid as e:
        raise ValueError(f"Cannot save {path}: {e}.") from None
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    if len(header_bytes) > _MAX_HEADER:
        raise ValueError(
            f"Cannot save {path}: its header would take {len(header_bytes)} bytes, more than the "
            f"{_MAX_HEADER} a model file may hold; store less metadata."
        )
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    payload = buffer.getvalue()
    body = b"".join(
        (MAGIC, _LEN.pack(len(header_bytes)), header_bytes, _LEN.pack(len(payload)), payload)
    )
    data = body + hashlib.sha256(body).digest()
    _atomic_write(path, data)
    return path


# -- loading -----------------------------------------------------------------------------------


def _foreign(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "a PNG image"
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive (an .npz or an eqx.tree_serialise_leaves file?)"
    if data.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file (an eqx.tree_serialise_leaves file?)"
    head = data[:64]
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return f"text starting {head[:40].decode('ascii')!r}"
    return f"a file starting with bytes {data[:8]!r}"


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"  # pragma: no cover - door, whiteout, ...


def _read(f: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes (fewer only at the end of the file)."""
    return f.read(n) if n > 0 else b""


def _fail(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"Cannot load {path}: {problem}")


def _truncated(path: Path, size: int, detail: str = "") -> ModelFileError:
    empty = "; it is empty" if size == 0 else ""
    return _fail(path, f"the file is truncated ({size} bytes{empty}{detail}).")


def _not_regular(path: Path, mode: int) -> ModelFileError:
    return _fail(
        path,
        f"it is {_file_kind(mode)}, not a regular file; expected a model file written by "
        "eqx_ffn.save.",
    )


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, once it is known to be a regular file (checked again on the
    open file, should the path have been swapped in between)."""
    info = os.stat(path)  # FileNotFoundError, PermissionError, ... as they are
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it cannot hang.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    f = os.fdopen(os.open(path, flags | getattr(os, "O_BINARY", 0)), "rb")
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):
        f.close()
        raise _not_regular(path, info.st_mode)
    return f


def _read_head(path: Path, f: BinaryIO, size: int) -> tuple[bytes, bytes]:
    """The magic and length prefix, and the header's bytes: the length bounded before reading."""
    first = _read(f, min(size, _PREFIX))
    if not first.startswith(MAGIC):
        if MAGIC.startswith(first):
            raise _truncated(path, size)
        raise _fail(path, f"not an eqx_ffn model file: it is {_foreign(first + f.read(48))}.")
    if len(first) < _PREFIX:
        raise _truncated(path, size)
    (n_header,) = _LEN.unpack_from(first, len(MAGIC))
    if n_header > _MAX_HEADER:
        raise _fail(
            path,
            f"its header length field says {n_header} bytes, more than the {_MAX_HEADER} a "
            "model-file header may hold: the file is damaged or not an eqx_ffn model file.",
        )
    if _PREFIX + n_header > size:
        raise _truncated(path, size, f"; its header alone needs {_PREFIX + n_header}")
    raw_header = _read(f, n_header)
    if len(raw_header) < n_header:  # pragma: no cover - the file shrank while being read
        raise _truncated(path, size)
    return first, raw_header


def _refuse_newer(path: Path, header: dict[str, Any] | None) -> None:
    """Report a newer format as such, even if its layout beyond the header differs from ours."""
    version = None if header is None else header.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        assert header is not None
        raise _fail(
            path,
            f"it uses model-file format version {_show(version)}, written by eqx_ffn "
            f"{_plain(header.get('library_version'))}; this eqx_ffn ({_library_version()}) "
            f"reads up to version {FORMAT_VERSION}. Upgrade eqx_ffn to load it.",
        )


def _read_file(path: Path) -> tuple[dict[str, Any], bytes]:
    """Check the framing, version and checksum of a model file; return `(header, payload)`.

    Reads only a regular file, and at most its size; the header's length is bounded before the
    header is read.
    """
    with _open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        first, raw_header = _read_head(path, f, size)
        header, problem = _parse_header(raw_header)
        _refuse_newer(path, header)
        n_header = len(raw_header)
        if size < _PREFIX + n_header + _LEN.size + _DIGEST:
            raise _truncated(path, size)
        raw_length = _read(f, _LEN.size)
        (n_payload,) = _LEN.unpack(raw_length)
        expected = _PREFIX + n_header + _LEN.size + n_payload + _DIGEST
        if size < expected:
            raise _truncated(path, size, f"; expected {expected}")
        if size > expected:
            raise _fail(path, f"the file has {size - expected} unexpected bytes at its end.")
        payload = _read(f, n_payload)
        digest = _read(f, _DIGEST)
        if len(payload) < n_payload or len(digest) < _DIGEST:  # pragma: no cover - it shrank
            raise _truncated(path, size)
    hasher = hashlib.sha256(first)
    for part in (raw_header, raw_length, payload):
        hasher.update(part)
    if hasher.digest() != digest:
        raise _fail(path, "the checksum does not match: the file is corrupted.")
    if header is None:
        raise _fail(path, f"the header is not valid JSON ({problem}).")
    version = header.get("format_version")
    if header.get("format") != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise _fail(
            path,
            f"unknown format {_show(header.get('format'))} version "
            f"{_show(header.get('format_version'))}.",
        )
    return header, payload


def _checked(path: Path, header: dict[str, Any]) -> _Spec:
    try:
        return _check_header(header)
    except _Invalid as e:
        raise ModelFileError(f"Cannot load {path}: the header is invalid ({e}).") from None


class _BadLeaf(Exception):
    pass


def _read_leaf(stream: io.BytesIO, name: str, shape: tuple[int, ...], dtype: np.dtype):
    """One array written by `np.save`, after checking its record against `shape` and `dtype`."""
    # NumPy stores bfloat16 (not a NumPy type) as raw 2-byte records; jnp.load views them back.
    stored = np.dtype("V2") if dtype == jnp.bfloat16 else dtype
    start = stream.tell()
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            got = np.lib.format.read_array_header_1_0(stream, max_header_size=_NPY_MAX_HEADER)
        elif version == (2, 0):
            got = np.lib.format.read_array_header_2_0(stream, max_header_size=_NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # NumPy's parser raises several types on garbage; all mean the same
        raise _BadLeaf(f"{name}: no valid array record at byte {start} ({_show(str(e))})") from None
    got_shape, fortran_order, got_dtype = got
    if tuple(got_shape) != shape or got_dtype != stored:
        raise _BadLeaf(
            f"{name} is stored with shape {tuple(got_shape)} and dtype {got_dtype}; the header "
            f"says {shape} and {dtype.name}"
        )
    n_bytes = math.prod(shape) * dtype.itemsize
    data = stream.read(n_bytes)
    if len(data) < n_bytes:
        raise _BadLeaf(f"{name} needs {n_bytes} bytes but only {len(data)} remain")
    array = np.frombuffer(data, dtype=stored).reshape(shape, order="F" if fortran_order else "C")
    return array.view(dtype) if stored != dtype else array


def _build(path: Path, spec: _Spec, payload: bytes) -> FFN | Standardized:
    leaves = spec.leaves()
    n_values = sum(math.prod(shape) for _, shape, _ in leaves)
    n_bytes = sum(math.prod(shape) * dtype.itemsize for _, shape, dtype in leaves)
    if n_bytes > len(payload):
        raise ModelFileError(
            f"Cannot load {path}: the header describes {n_values} parameters ({n_bytes} bytes) "
            f"but the file holds only {len(payload)} bytes of parameters."
        )
    stream = io.BytesIO(payload)
    try:
        arrays = [_read_leaf(stream, *leaf) for leaf in leaves]
    except _BadLeaf as e:
        raise ModelFileError(
            f"Cannot load {path}: the parameters do not match the header ({e})."
        ) from None
    if stream.tell() != len(payload):
        raise ModelFileError(
            f"Cannot load {path}: {len(payload) - stream.tell()} bytes of parameters were left "
            "unread; the header does not describe them."
        )
    it = iter(arrays)
    layers = [Dense(next(it), None if b_dtype is None else next(it)) for *_, b_dtype in spec.layers]
    model = FFN.from_layers(
        layers, activation=spec.activation, final_activation=spec.final_activation
    )
    if spec.kind == "FFN":
        return model
    scalers = []
    for scaler in spec.scalers:
        if scaler is None:
            scalers.append(None)
            continue
        mean, scale = next(it), next(it)
        try:
            check_scaler_values(mean, scale, "", f"{scaler[0]}.")
        except ValueError as e:
            raise ModelFileError(f"Cannot load {path}: {e}") from None
        scalers.append(Standardizer(mean, scale))
    return Standardized(model, scalers[0], scalers[1])


def _source(path: Any) -> Path:
    """The `path` of a model file to read: a str or `os.PathLike`, not empty."""
    return check_path(path, empty_hint="pass the path of a model file written by eqx_ffn.save")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a model file (checked as `load` checks it), without loading the model.

    **Arguments:**

    - `path`: the file.

    **Returns:** a dict with `"format_version"`, `"library_version"`, `"kind"` (`"FFN"` or
    `"Standardized"`), `"ffn"` (`in_size`, `out_size`, `hidden_sizes`, `use_bias`,
    `activation`, `final_activation`, `dtype`, `layers`) and, for `Standardized`,
    `"x_scaler"` / `"y_scaler"` (`{"size", "dtype"}` or `None`), and `"metadata"` when `save`
    was given some (checked: `x_cols` / `y_cols` are lists of distinct one-line names).

    **Raises:** `FileNotFoundError`; `ModelFileError` (a `ValueError`) as `load` does, except
    that a float64 model reads without `jax_enable_x64`.
    """
    path = _source(path)
    header, _ = _read_file(path)
    _checked(path, header)
    return header


def load(path: str | os.PathLike) -> FFN | Standardized:
    """Load a model written by `save`: no template needed, leaves equal bit for bit.

    The file is treated as untrusted: only a regular file is read, never more than its size;
    the header is bounded (4 MiB, nesting 32, 1000 layers, sizes up to 2**31 - 1) and every
    field checked; parameters are read only once they fit in the file and their stored shapes
    and dtypes match the header. Nothing in the file is ever run (no pickle).

    **Arguments:**

    - `path`: the file.

    **Returns:** the `eqx_ffn.FFN` or `eqx_ffn.Standardized` that was saved
    (`eqx.tree_equal(load(path), model)` is `True`).

    **Raises:** `FileNotFoundError` for a missing file; `ModelFileError` (a `ValueError`)
    naming the file and the problem for a folder, pipe or device, and for a truncated,
    corrupted, foreign, crafted or newer-format file, and for a float64 model when
    `jax_enable_x64` is off (turn it on to load the model).

    ```python
    model = eqx_ffn.load("model.eqx")
    y = jax.vmap(model)(x)
    ```
    """
    path = _source(path)
    header, payload = _read_file(path)
    spec = _checked(path, header)
    wide = [name for name, _, dtype in spec.leaves() if dtype.itemsize == 8]
    if wide and not jax.config.read("jax_enable_x64"):
        raise ModelFileError(
            f"Cannot load {path}: the model was saved in float64, but jax_enable_x64 is off "
            f"({wide[0]} is float64), so JAX would silently round it to float32. Enable it "
            "first: jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1."
        )
    return _build(path, spec, payload)
