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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._ffn import FFN, Dense
from ._standardize import Standardized, Standardizer

__all__ = ["ModelFileError", "load", "read_header", "save"]

MAGIC = b"\x89EQXFFN\n"
FORMAT = "eqx_ffn.model"
FORMAT_VERSION = 1
_LEN = struct.Struct("<Q")
_DIGEST = 32
_MAX_HEADER = 1 << 24  # 16 MiB: far above any real header; guards against garbage lengths


class ModelFileError(ValueError):
    """A file that `eqx_ffn.load` cannot read: not a model file, damaged, or from a newer format.

    A subclass of `ValueError`; the message names the file and the problem.
    """


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eqx_ffn")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return str(getattr(sys.modules.get("eqx_ffn"), "__version__", "unknown"))


# -- describing a model ------------------------------------------------------------------------


def _dtype_name(a: Any) -> str:
    return jnp.dtype(a.dtype).name


def _describe_ffn(model: FFN, where: str) -> dict[str, Any]:
    for attr, name in (
        ("activation", model.activation_name),
        ("final_activation", model.final_activation_name),
    ):
        if name is None:
            raise ValueError(
                f"Cannot save {where}: its {attr} is a user-defined callable "
                f"({getattr(model, attr)!r}) with no registered name, so it could not be "
                "rebuilt on load. Use one of the named activations (eqx_ffn.ACTIVATIONS), or "
                "save the parameters with eqx.tree_serialise_leaves and rebuild the model "
                "yourself."
            )
    layers = []
    for layer in model.layers:
        if not isinstance(layer, Dense):
            raise ValueError(f"Cannot save {where}: layer {layer!r} is not an eqx_ffn.Dense.")
        layers.append(
            {
                "in_size": layer.in_size,
                "out_size": layer.out_size,
                "bias": layer.bias is not None,
                "dtype": _dtype_name(layer.weight),
                "bias_dtype": None if layer.bias is None else _dtype_name(layer.bias),
            }
        )
    return {
        "in_size": model.in_size,
        "out_size": model.out_size,
        "hidden_sizes": list(model.hidden_sizes),
        "use_bias": [layer["bias"] for layer in layers],
        "activation": model.activation_name,
        "final_activation": model.final_activation_name,
        "dtype": _dtype_name(model.layers[0].weight),
        "layers": layers,
    }


def _describe_scaler(scaler: Standardizer | None) -> dict[str, Any] | None:
    if scaler is None:
        return None
    return {"size": scaler.size, "dtype": _dtype_name(scaler.mean)}


def _header_for(model: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": _library_version(),
        "jax_version": jax.__version__,
        "equinox_version": getattr(eqx, "__version__", "unknown"),
    }
    if type(model) is FFN:
        header["kind"] = "FFN"
        header["ffn"] = _describe_ffn(model, "this FFN")
    elif type(model) is Standardized:
        if type(model.model) is not FFN:
            raise ValueError(
                f"Cannot save a Standardized wrapping a {type(model.model).__name__}: only "
                "Standardized(FFN) is supported."
            )
        header["kind"] = "Standardized"
        header["ffn"] = _describe_ffn(model.model, "this Standardized model")
        header["x_scaler"] = _describe_scaler(model.x_scaler)
        header["y_scaler"] = _describe_scaler(model.y_scaler)
    else:
        raise TypeError(
            f"save expects an eqx_ffn.FFN or eqx_ffn.Standardized; got {type(model).__name__}."
        )
    return header


# -- rebuilding a model from its header --------------------------------------------------------


def _need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise KeyError(f"{where} lacks {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise KeyError(f"{where}[{key!r}] has the wrong type ({type(value).__name__})")
    return value


def _check_dtype(name: str) -> np.dtype:
    try:
        dtype = jnp.dtype(name)
    except TypeError:
        raise KeyError(f"unknown dtype {name!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise KeyError(f"dtype {name!r} is not a floating-point dtype")
    if dtype.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise _X64Needed(name)
    return dtype


class _X64Needed(Exception):
    pass


def _template(header: dict[str, Any]) -> Any:
    """The model's structure with `jax.ShapeDtypeStruct` leaves, built from the header alone."""
    kind = _need(header, "kind", str, "header")
    if kind not in ("FFN", "Standardized"):
        raise KeyError(f"unknown model kind {kind!r}")
    ffn = _need(header, "ffn", dict, "header")
    activation = _need(ffn, "activation", str, "ffn")
    final_activation = _need(ffn, "final_activation", str, "ffn")
    specs = []
    for i, layer in enumerate(_need(ffn, "layers", list, "ffn")):
        where = f"ffn.layers[{i}]"
        n_in = _need(layer, "in_size", int, where)
        n_out = _need(layer, "out_size", int, where)
        has_bias = _need(layer, "bias", bool, where)
        w_dtype = _check_dtype(_need(layer, "dtype", str, where))
        b_dtype = _check_dtype(_need(layer, "bias_dtype", str, where)) if has_bias else None
        specs.append((n_in, n_out, w_dtype, b_dtype))
    if not specs:
        raise KeyError("ffn.layers is empty")
    summary = {
        "in_size": specs[0][0],
        "out_size": specs[-1][1],
        "hidden_sizes": [spec[1] for spec in specs[:-1]],
        "use_bias": [spec[3] is not None for spec in specs],
    }
    for name, value in summary.items():
        if ffn.get(name) != value:
            raise KeyError(f"ffn.{name} is {ffn.get(name)!r} but its layers give {value!r}")
    scalers = {}
    if kind == "Standardized":
        for name in ("x_scaler", "y_scaler"):
            if name not in header:
                raise KeyError(f"header lacks {name!r}")
            spec = header[name]
            if spec is not None:
                spec = (
                    _need(spec, "size", int, name),
                    _check_dtype(_need(spec, "dtype", str, name)),
                )
            scalers[name] = spec

    def build():
        layers = [
            Dense(
                jnp.zeros((n_out, n_in), w_dtype),
                None if b_dtype is None else jnp.zeros((n_out,), b_dtype),
            )
            for n_in, n_out, w_dtype, b_dtype in specs
        ]
        model = FFN.from_layers(layers, activation=activation, final_activation=final_activation)
        if kind == "FFN":
            return model
        made = {
            name: None
            if spec is None
            else Standardizer(jnp.zeros(spec[0], spec[1]), jnp.ones(spec[0], spec[1]))
            for name, spec in scalers.items()
        }
        return Standardized(model, made["x_scaler"], made["y_scaler"])

    try:
        return eqx.filter_eval_shape(build)
    except (ValueError, TypeError) as e:  # sizes that do not chain, unknown activation, ...
        raise KeyError(str(e)) from None


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
    `path` is left untouched. Parent folders are created.

    **Arguments:**

    - `path`: where to write (any name; `.eqx` is a good suffix).
    - `model`: an `eqx_ffn.FFN`, or an `eqx_ffn.Standardized` wrapping one (either scaler may be
      `None`). Its activations must be named ones (`model.activation_name` not `None`).
    - `metadata`: optional JSON-serialisable dict with string keys (e.g. the data's column
      names), stored in the header and returned by `read_header(path)["metadata"]`.

    **Returns:** the path written, as a `pathlib.Path`.

    **Raises:** `ValueError` for an activation that is a user callable with no registered
    name; `TypeError` for another kind of model or for metadata that JSON cannot hold.

    ```python
    eqx_ffn.save("model.eqx", model)
    same = eqx_ffn.load("model.eqx")
    ```
    """
    path = Path(path)
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
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    payload = buffer.getvalue()
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    body = b"".join(
        (MAGIC, _LEN.pack(len(header_bytes)), header_bytes, _LEN.pack(len(payload)), payload)
    )
    data = body + hashlib.sha256(body).digest()
    _atomic_write(path, data)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        # os.open with mode 0o666 so that the final file gets the usual umask-derived mode.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


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


def _split(path: Path, data: bytes) -> tuple[dict[str, Any], bytes]:
    """Check the framing, version and checksum; return `(header, payload)`."""

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"Cannot load {path}: {problem}")

    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise fail(f"the file is truncated ({len(data)} bytes).")
        raise fail(f"not an eqx_ffn model file: it is {_foreign(data)}.")
    pos = len(MAGIC)
    if len(data) < pos + _LEN.size:
        raise fail(f"the file is truncated ({len(data)} bytes).")
    (n_header,) = _LEN.unpack_from(data, pos)
    pos += _LEN.size
    header: dict[str, Any] | None = None
    if n_header <= _MAX_HEADER and len(data) >= pos + n_header:
        try:
            parsed = json.loads(data[pos : pos + n_header].decode("utf-8"))
            header = parsed if isinstance(parsed, dict) else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
    # Report a newer format as such, even if its layout beyond the header differs from ours.
    if header is not None:
        version = header.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise fail(
                f"it uses model-file format version {version}, written by eqx_ffn "
                f"{header.get('library_version', '?')}; this eqx_ffn ({_library_version()}) "
                f"reads up to version {FORMAT_VERSION}. Upgrade eqx_ffn to load it."
            )
    if n_header > _MAX_HEADER or len(data) < pos + n_header + _LEN.size + _DIGEST:
        raise fail(f"the file is truncated or damaged ({len(data)} bytes; bad header length).")
    pos_payload = pos + n_header + _LEN.size
    (n_payload,) = _LEN.unpack_from(data, pos + n_header)
    expected = pos_payload + n_payload + _DIGEST
    if len(data) < expected:
        raise fail(f"the file is truncated ({len(data)} bytes; expected {expected}).")
    if len(data) > expected:
        raise fail(f"the file has {len(data) - expected} unexpected bytes at its end.")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise fail("the checksum does not match: the file is corrupted.")
    if header is None:
        raise fail("the header is not valid JSON.")
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise fail(
            f"unknown format {header.get('format')!r} version {header.get('format_version')!r}."
        )
    return header, data[pos_payload : pos_payload + n_payload]


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a model file (checked as `load` checks it), without loading the model.

    **Returns:** a dict with `"format_version"`, `"library_version"`, `"kind"` (`"FFN"` or
    `"Standardized"`), `"ffn"` (`in_size`, `out_size`, `hidden_sizes`, `use_bias`,
    `activation`, `final_activation`, `dtype`, `layers`) and, for `Standardized`,
    `"x_scaler"` / `"y_scaler"` (`{"size", "dtype"}` or `None`), and `"metadata"` when `save`
    was given some.

    **Raises:** `FileNotFoundError`; `ModelFileError` (a `ValueError`) as `load` does.
    """
    path = Path(path)
    header, _ = _split(path, path.read_bytes())
    return header


def load(path: str | os.PathLike) -> FFN | Standardized:
    """Load a model written by `save`: no template needed, leaves equal bit for bit.

    **Arguments:**

    - `path`: the file.

    **Returns:** the `eqx_ffn.FFN` or `eqx_ffn.Standardized` that was saved
    (`eqx.tree_equal(load(path), model)` is `True`).

    **Raises:** `FileNotFoundError` for a missing file; `ModelFileError` (a `ValueError`)
    naming the file and the problem for a truncated, corrupted, foreign or newer-format file, and
    for a float64 model when `jax_enable_x64` is off (turn it on to load the model).
    """
    path = Path(path)
    header, payload = _split(path, path.read_bytes())
    try:
        template = _template(header)
    except _X64Needed as e:
        raise ModelFileError(
            f"Cannot load {path}: the model was saved in {e}, but jax_enable_x64 is off, so JAX "
            "would silently round it to float32. Enable it first: "
            "jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1."
        ) from None
    except (KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else repr(e)
        raise ModelFileError(f"Cannot load {path}: the header is invalid ({msg}).") from None
    stream = io.BytesIO(payload)
    try:
        model = eqx.tree_deserialise_leaves(stream, template)
    except Exception as e:  # numpy/equinox errors on malformed leaves
        raise ModelFileError(
            f"Cannot load {path}: the parameters do not match the header ({e})."
        ) from None
    if stream.tell() != len(payload):
        raise ModelFileError(
            f"Cannot load {path}: {len(payload) - stream.tell()} bytes of parameters were left "
            "unread; the header does not describe them."
        )
    return model
