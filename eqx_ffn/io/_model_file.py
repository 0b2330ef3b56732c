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
import re
import secrets
import socket
import stat
import struct
import sys
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model._activations import ACTIVATIONS
from ..model._ffn import FFN, Dense
from ..model._standardize import Standardized, Standardizer, check_scaler_values

__all__ = ["ModelFileError", "load", "read_header", "save"]

MAGIC = b"\x89EQXFFN\n"
FORMAT = "eqx_ffn.model"
FORMAT_VERSION = 1
_LEN = struct.Struct("<Q")
_DIGEST = 32
_PREFIX = len(MAGIC) + _LEN.size

# Bounds on what a model file may declare. Real models stay far below them; they keep a crafted
# file from taking the machine's memory or time.
_MAX_HEADER = 4 << 20  # bytes of header JSON
_MAX_DEPTH = 32  # nesting of the header JSON (metadata included)
_MAX_LAYERS = 1000  # Dense layers in one network
_MAX_SIZE = 2**31 - 1  # any one size (inputs, outputs, a layer's width)
_MAX_NAME = 1024  # characters in a column name or metadata key
_MAX_VERSION = 100  # characters in a version string
_NPY_MAX_HEADER = 4096  # bytes of one parameter's .npy header
_FLOAT_DTYPES = ("bfloat16", "float16", "float32", "float64")
_STALE_AFTER_S = 15 * 60  # a temporary file untouched this long belongs to a dead save


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
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Dense):
            raise ValueError(f"Cannot save {where}: layer {layer!r} is not an eqx_ffn.Dense.")
        shapes = (layer.weight.shape, None if layer.bias is None else layer.bias.shape)
        if shapes[0] != (layer.out_size, layer.in_size) or shapes[1] not in (
            None,
            (layer.out_size,),
        ):
            raise ValueError(
                f"Cannot save {where}: layer {i} declares {layer.in_size} inputs and "
                f"{layer.out_size} outputs but holds a weight of shape {shapes[0]} and a bias of "
                f"shape {shapes[1]} (edited after it was built?). Rebuild it with "
                "eqx_ffn.Dense(weight, bias)."
            )
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


def _describe_scaler(scaler: Any, name: str) -> dict[str, Any] | None:
    if scaler is None:
        return None
    where = "Cannot save this Standardized model"
    if not isinstance(scaler, Standardizer):
        raise TypeError(
            f"{where}: its {name} is a {type(scaler).__name__}; expected an "
            "eqx_ffn.Standardizer or None."
        )
    mean, scale = scaler.mean, scaler.scale
    if mean.ndim != 1 or scale.shape != mean.shape or scale.dtype != mean.dtype:
        raise ValueError(
            f"{where}: its {name} holds mean {mean.shape} {mean.dtype} and scale "
            f"{scale.shape} {scale.dtype}; expected both of one shape (d,) and one dtype. "
            "Rebuild it with eqx_ffn.Standardizer(mean, scale)."
        )
    check_scaler_values(mean, scale, where, f"{name}.")
    return {"size": scaler.size, "dtype": _dtype_name(mean)}


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
        header["x_scaler"] = _describe_scaler(model.x_scaler, "x_scaler")
        header["y_scaler"] = _describe_scaler(model.y_scaler, "y_scaler")
    else:
        raise TypeError(
            f"save expects an eqx_ffn.FFN or eqx_ffn.Standardized; got {type(model).__name__}."
        )
    return header


# -- checking a header -------------------------------------------------------------------------


class _Invalid(Exception):
    """A header field that `load` refuses (and `save` will not write); the message names it."""


def _show(value: Any) -> str:
    """A short, printable description of a JSON value for an error message."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    if isinstance(value, (list, dict)):
        items = list(value.values()) if isinstance(value, dict) else value
        small = len(items) <= 10 and all(
            item is None or (isinstance(item, (bool, int, float)) and len(repr(item)) <= 20)
            for item in items
        )
        if small and (isinstance(value, list) or all(len(str(k)) <= 20 for k in value)):
            return repr(value)
        kind = "a list" if isinstance(value, list) else "an object"
        return f"{kind} of {len(items)} item{'' if len(items) == 1 else 's'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> str:
    """`value` if it is a short version-like string, else `'?'` (safe to print as it is)."""
    return value if isinstance(value, str) and re.fullmatch(r"[\w.+!-]{1,40}", value) else "?"


def _object(value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is {_show(value)}; expected a JSON object")
    for key in required:
        if key not in value:
            raise _Invalid(f"{where} lacks {key!r}")
    for key in value:
        if key not in required and key not in optional:
            raise _Invalid(
                f"{where} has an unexpected key {_show(key)}; expected only "
                f"{', '.join(required + optional)}"
            )
    return value


def _int(value: Any, where: str, low: int = 1, high: int = _MAX_SIZE) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(f"{where} is {_show(value)}; expected an integer from {low} to {high}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{where} is {_show(value)}; expected true or false")
    return value


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _Invalid(f"{where} is {_show(value)}; expected one of {', '.join(choices)}")
    return value


def _dtype(value: Any, where: str) -> np.dtype:
    return np.dtype(jnp.dtype(_choice(value, where, _FLOAT_DTYPES)))


def _name(value: Any, where: str, limit: int = _MAX_NAME) -> str:
    """A short one-line name: no control, format or line-separator characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise _Invalid(f"{where} is {_show(value)}; expected a string of 1 to {limit} characters")
    for c in value:
        if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029":
            raise _Invalid(
                f"{where} is {_show(value)}, which holds the character U+{ord(c):04X} (a control, "
                "format or line-break character); expected printable text on one line"
            )
    return value


_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _free_json(value: Any, where: str, depth: int) -> None:
    """Any JSON value of bounded depth: finite numbers, text without control characters other
    than tab and newline. Iterative, so no input can exhaust the stack."""
    stack = [(value, where, depth)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > _MAX_DEPTH:
                raise _Invalid(f"{where} is nested deeper than {_MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _text(key, f"a key in {where}")
                    stack.append((item, f"{where}[{_show(key)}]", depth + 1))
            else:
                stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _text(value, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise _Invalid(f"{where} is {value}; expected a finite number")
        elif not (value is None or isinstance(value, (bool, int, float))):
            raise _Invalid(f"{where} is a {type(value).__name__}; expected a JSON value")


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _Invalid(f"{where} is {_show(value)}; expected a string")
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        raise _Invalid(
            f"{where} is {_show(value)}, which holds the character U+{ord(bad.group()):04X}; "
            "expected text without control characters (tab and newline allowed)"
        )


def _columns(value: Any, where: str, n: int, what: str, label_column: bool = False) -> None:
    """`x_cols` / `y_cols`: no names, or one distinct one-line name per model input/output (a
    classifier's `y_cols`, with `classes` in the metadata, names its one label column)."""
    if not isinstance(value, list):
        raise _Invalid(f"{where} is {_show(value)}; expected a list of {n} column names")
    allowed = (0, n, 1) if label_column else (0, n)
    if len(value) not in allowed:
        extra = " or 1, the label column of a classifier" if label_column else ""
        raise _Invalid(
            f"{where} holds {len(value)} names; expected {n}, one per model {what} (or none{extra})"
        )
    seen: set[str] = set()
    for i, name in enumerate(value):
        _name(name, f"{where}[{i}]")
        if name in seen:
            raise _Invalid(f"{where} names {_show(name)} twice; expected distinct column names")
        seen.add(name)


def _check_metadata(value: Any, n_in: int, n_out: int) -> None:
    if not isinstance(value, dict):
        raise _Invalid(f"metadata is {_show(value)}; expected a JSON object")
    for key, item in value.items():
        _name(key, "a metadata key")
        where = f"metadata[{key!r}]"
        if key == "x_cols":
            _columns(item, where, n_in, "input")
        elif key == "y_cols":
            _columns(item, where, n_out, "output", label_column="classes" in value)
        else:
            _free_json(item, where, 3)


@dataclass(frozen=True)
class _Spec:
    """What a checked header describes: enough to read the parameters and rebuild the model."""

    kind: str
    activation: str
    final_activation: str
    layers: tuple[tuple[int, int, np.dtype, np.dtype | None], ...]  # in, out, weight, bias
    scalers: tuple[tuple[str, int, np.dtype] | None, ...]  # x_scaler, y_scaler (Standardized)

    def leaves(self) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        """`(name, shape, dtype)` of each array, in the order `eqx.tree_serialise_leaves`
        writes them: each layer's weight and bias, then each scaler's mean and scale."""
        out: list[tuple[str, tuple[int, ...], np.dtype]] = []
        for i, (n_in, n_out, w_dtype, b_dtype) in enumerate(self.layers):
            out.append((f"ffn.layers[{i}].weight", (n_out, n_in), w_dtype))
            if b_dtype is not None:
                out.append((f"ffn.layers[{i}].bias", (n_out,), b_dtype))
        for scaler in self.scalers:
            if scaler is not None:
                name, size, dtype = scaler
                out.append((f"{name}.mean", (size,), dtype))
                out.append((f"{name}.scale", (size,), dtype))
        return out


def _check_header(header: Any) -> _Spec:
    """Check every field of a header; raise `_Invalid` naming the first bad one."""
    scaler_keys = ("x_scaler", "y_scaler")
    h = _object(
        header,
        "the header",
        ("format", "format_version", "library_version", "jax_version", "equinox_version"),
        ("kind", "ffn", *scaler_keys, "metadata"),
    )
    if (
        h["format"] != FORMAT
        or type(h["format_version"]) is not int
        or (h["format_version"] != FORMAT_VERSION)
    ):
        raise _Invalid(
            f"unknown format {_show(h['format'])} version {_show(h['format_version'])}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    for key in ("library_version", "jax_version", "equinox_version"):
        _name(h[key], key, _MAX_VERSION)
    for key in ("kind", "ffn"):
        if key not in h:
            raise _Invalid(f"the header lacks {key!r}")
    kind = h["kind"]
    if kind not in ("FFN", "Standardized"):
        raise _Invalid(f"unknown model kind {_show(kind)}; expected 'FFN' or 'Standardized'")
    ffn = _object(
        h["ffn"],
        "ffn",
        (
            "in_size",
            "out_size",
            "hidden_sizes",
            "use_bias",
            "activation",
            "final_activation",
            "dtype",
            "layers",
        ),
    )
    activation = _choice(ffn["activation"], "ffn.activation", tuple(ACTIVATIONS))
    final_activation = _choice(ffn["final_activation"], "ffn.final_activation", tuple(ACTIVATIONS))
    raw_layers = ffn["layers"]
    if not isinstance(raw_layers, list) or not 1 <= len(raw_layers) <= _MAX_LAYERS:
        count = f"{len(raw_layers)} layers" if isinstance(raw_layers, list) else _show(raw_layers)
        raise _Invalid(f"ffn.layers holds {count}; expected a list of 1 to {_MAX_LAYERS} layers")
    layers = []
    for i, raw in enumerate(raw_layers):
        where = f"ffn.layers[{i}]"
        layer = _object(raw, where, ("in_size", "out_size", "bias", "dtype", "bias_dtype"))
        n_in = _int(layer["in_size"], f"{where}.in_size")
        n_out = _int(layer["out_size"], f"{where}.out_size")
        w_dtype = _dtype(layer["dtype"], f"{where}.dtype")
        if _bool(layer["bias"], f"{where}.bias"):
            b_dtype = _dtype(layer["bias_dtype"], f"{where}.bias_dtype")
        elif layer["bias_dtype"] is not None:
            raise _Invalid(
                f"{where}.bias_dtype is {_show(layer['bias_dtype'])}; expected null for a layer "
                "without bias"
            )
        else:
            b_dtype = None
        layers.append((n_in, n_out, w_dtype, b_dtype))
    summary = {
        "in_size": layers[0][0],
        "out_size": layers[-1][1],
        "hidden_sizes": [layer[1] for layer in layers[:-1]],
        "use_bias": [layer[3] is not None for layer in layers],
        "dtype": layers[0][2].name,
    }
    for name, value in summary.items():
        # JSON text compares types too: `true` is not `1` here.
        if json.dumps(ffn[name]) != json.dumps(value):
            raise _Invalid(f"ffn.{name} is {_show(ffn[name])} but its layers give {_show(value)}")
    for i in range(1, len(layers)):
        if layers[i][0] != layers[i - 1][1]:
            raise _Invalid(
                f"ffn.layers[{i}].in_size is {layers[i][0]} but layer {i - 1} gives "
                f"{layers[i - 1][1]} outputs; the sizes must chain"
            )
    n_in, n_out = summary["in_size"], summary["out_size"]
    scalers: list[tuple[str, int, np.dtype] | None] = []
    if kind == "Standardized":
        for name, n, what in (("x_scaler", n_in, "inputs"), ("y_scaler", n_out, "outputs")):
            if name not in h:
                raise _Invalid(f"the header lacks {name!r} (a scaler, or null)")
            if h[name] is None:
                scalers.append(None)
                continue
            spec = _object(h[name], name, ("size", "dtype"))
            size = _int(spec["size"], f"{name}.size")
            if size != n:
                raise _Invalid(f"{name}.size is {size} but the network has {n} {what}")
            scalers.append((name, size, _dtype(spec["dtype"], f"{name}.dtype")))
    else:
        for name in scaler_keys:
            if name in h:
                raise _Invalid(f"the header has {name!r}, which only a Standardized model has")
    if "metadata" in h:
        _check_metadata(h["metadata"], n_in, n_out)
    return _Spec(kind, activation, final_activation, tuple(layers), tuple(scalers))


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


_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_stem(target: Path) -> str:
    """The start of the temporary files' names for `target` (short enough for any filesystem)."""
    name = target.name
    if len(name) > 180:
        name = name[:100] + "~" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16]
    return f".{name}."


def _temp_path(target: Path) -> Path:
    # .<name>.<host>-<pid>-<random>.tmp: the host and process id tell a later save whether the
    # writer is still alive.
    token = secrets.token_hex(6)
    return target.with_name(f"{_temp_stem(target)}{_HOST}-{os.getpid()}-{token}.tmp")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # pragma: no cover - no harmless liveness probe elsewhere
        return True
    if pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove temporary files of `target` that a killed save left behind; return them.

    Only regular files named as `_temp_path` names them for this very target (or as earlier
    versions did: `.<name>.<12 hex digits>.tmp`) are candidates, and only stale ones: written on
    this host by a process that no longer exists, or not modified for `_STALE_AFTER_S` seconds.
    """
    pattern = re.compile(
        re.escape(_temp_stem(target)) + r"(?:([0-9a-f]{8})-([0-9]{1,10})-)?[0-9a-f]{12}\.tmp"
    )
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        host, pid = match.groups()
        dead = host == _HOST and pid is not None and not _pid_alive(int(pid))
        if dead or now - info.st_mtime > _STALE_AFTER_S:
            try:
                os.unlink(entry.path)
            except OSError:  # removed by a concurrent save, or not ours to remove
                continue
            removed.append(Path(entry.path))
    return removed


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = _temp_path(path)
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


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {_show(key)} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_header(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """`(header, "")`, or `(None, why it is not a usable JSON object)`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text ({e.reason} at byte {e.start})"
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        return None, f"nested deeper than {_MAX_DEPTH} levels"
    except ValueError as e:  # JSONDecodeError, our hooks, an integer of thousands of digits
        return None, _clip(str(e))
    if not isinstance(value, dict):
        return None, f"it is {_show(value)}, not a JSON object"
    level: list[Any] = [value]
    for _ in range(_MAX_DEPTH):  # breadth first, level by level: no recursion, bounded work
        below = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, (dict, list)):
                    below.append(child)
        if not below:
            return value, ""
        level = below
    return None, f"nested deeper than {_MAX_DEPTH} levels"


def _read(f: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes (fewer only at the end of the file)."""
    return f.read(n) if n > 0 else b""


def _read_file(path: Path) -> tuple[dict[str, Any], bytes]:
    """Check the framing, version and checksum of a model file; return `(header, payload)`.

    Reads only a regular file, and at most its size; the header's length is bounded before the
    header is read.
    """

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"Cannot load {path}: {problem}")

    def not_regular(mode: int) -> ModelFileError:
        return fail(
            f"it is {_file_kind(mode)}, not a regular file; expected a model file written by "
            "eqx_ffn.save."
        )

    info = os.stat(path)  # FileNotFoundError, PermissionError, ... as they are
    if not stat.S_ISREG(info.st_mode):
        raise not_regular(info.st_mode)
    # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it cannot hang.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise not_regular(info.st_mode)
        size = info.st_size

        def truncated(detail: str = "") -> ModelFileError:
            empty = "; it is empty" if size == 0 else ""
            return fail(f"the file is truncated ({size} bytes{empty}{detail}).")

        first = _read(f, min(size, _PREFIX))
        if not first.startswith(MAGIC):
            if MAGIC.startswith(first):
                raise truncated()
            raise fail(f"not an eqx_ffn model file: it is {_foreign(first + f.read(48))}.")
        if len(first) < _PREFIX:
            raise truncated()
        (n_header,) = _LEN.unpack_from(first, len(MAGIC))
        if n_header > _MAX_HEADER:
            raise fail(
                f"its header length field says {n_header} bytes, more than the {_MAX_HEADER} a "
                "model-file header may hold: the file is damaged or not an eqx_ffn model file."
            )
        if _PREFIX + n_header > size:
            raise truncated(f"; its header alone needs {_PREFIX + n_header}")
        raw_header = _read(f, n_header)
        if len(raw_header) < n_header:  # pragma: no cover - the file shrank while being read
            raise truncated()
        header, problem = _parse_header(raw_header)
        # Report a newer format as such, even if its layout beyond the header differs from ours.
        if header is not None:
            version = header.get("format_version")
            if isinstance(version, int) and not isinstance(version, bool):
                if version > FORMAT_VERSION:
                    raise fail(
                        f"it uses model-file format version {_show(version)}, written by eqx_ffn "
                        f"{_plain(header.get('library_version'))}; this eqx_ffn "
                        f"({_library_version()}) reads up to version {FORMAT_VERSION}. Upgrade "
                        "eqx_ffn to load it."
                    )
        if size < _PREFIX + n_header + _LEN.size + _DIGEST:
            raise truncated()
        raw_length = _read(f, _LEN.size)
        (n_payload,) = _LEN.unpack(raw_length)
        expected = _PREFIX + n_header + _LEN.size + n_payload + _DIGEST
        if size < expected:
            raise truncated(f"; expected {expected}")
        if size > expected:
            raise fail(f"the file has {size - expected} unexpected bytes at its end.")
        payload = _read(f, n_payload)
        digest = _read(f, _DIGEST)
        if len(payload) < n_payload or len(digest) < _DIGEST:  # pragma: no cover - it shrank
            raise truncated()
    hasher = hashlib.sha256(first)
    for part in (raw_header, raw_length, payload):
        hasher.update(part)
    if hasher.digest() != digest:
        raise fail("the checksum does not match: the file is corrupted.")
    if header is None:
        raise fail(f"the header is not valid JSON ({problem}).")
    version = header.get("format_version")
    if header.get("format") != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise fail(
            f"unknown format {_show(header.get('format'))} version "
            f"{_show(header.get('format_version'))}."
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
    path = Path(path)
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
    path = Path(path)
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
