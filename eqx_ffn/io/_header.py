"""The model file's header: its format constants, what `save` writes for a model, and the
checks `load` applies to every field before anything is rebuilt.

A header is untrusted JSON. It is parsed with duplicate keys and non-finite constants refused,
its nesting bounded, and every field checked against a schema (`_FFN_KEYS`, `_LAYER_KEYS`, ...)
by the small typed readers below (`_int`, `_choice`, `_dtype`, ...), each of which names the
field it refuses.
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model._activations import ACTIVATIONS
from ..model._ffn import FFN, Dense
from ..model._standardize import Standardized, Standardizer, check_scaler_values

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
_FLOAT_DTYPES = ("bfloat16", "float16", "float32", "float64")


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


# The header's schema: the keys each object must hold (required) and may hold (optional).
_HEADER_KEYS = ("format", "format_version", "library_version", "jax_version", "equinox_version")
_SCALER_NAMES = ("x_scaler", "y_scaler")
_HEADER_OPTIONAL = ("kind", "ffn", *_SCALER_NAMES, "metadata")
_FFN_KEYS = (
    "in_size",
    "out_size",
    "hidden_sizes",
    "use_bias",
    "activation",
    "final_activation",
    "dtype",
    "layers",
)
_LAYER_KEYS = ("in_size", "out_size", "bias", "dtype", "bias_dtype")
_SCALER_KEYS = ("size", "dtype")
_KINDS = ("FFN", "Standardized")

_Layer = tuple[int, int, np.dtype, np.dtype | None]  # in, out, weight, bias dtypes


def _check_header(header: Any) -> _Spec:
    """Check every field of a header; raise `_Invalid` naming the first bad one."""
    h = _object(header, "the header", _HEADER_KEYS, _HEADER_OPTIONAL)
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
    if kind not in _KINDS:
        raise _Invalid(f"unknown model kind {_show(kind)}; expected 'FFN' or 'Standardized'")
    ffn = _object(h["ffn"], "ffn", _FFN_KEYS)
    activation = _choice(ffn["activation"], "ffn.activation", tuple(ACTIVATIONS))
    final_activation = _choice(ffn["final_activation"], "ffn.final_activation", tuple(ACTIVATIONS))
    layers = _check_layers(ffn)
    n_in, n_out = layers[0][0], layers[-1][1]
    scalers = _check_scalers(h, kind, n_in, n_out)
    if "metadata" in h:
        _check_metadata(h["metadata"], n_in, n_out)
    return _Spec(kind, activation, final_activation, tuple(layers), tuple(scalers))


def _check_layers(ffn: dict[str, Any]) -> list[_Layer]:
    """`ffn.layers`, each checked, chained, and agreeing with the summary fields of `ffn`."""
    raw_layers = ffn["layers"]
    if not isinstance(raw_layers, list) or not 1 <= len(raw_layers) <= _MAX_LAYERS:
        count = f"{len(raw_layers)} layers" if isinstance(raw_layers, list) else _show(raw_layers)
        raise _Invalid(f"ffn.layers holds {count}; expected a list of 1 to {_MAX_LAYERS} layers")
    layers: list[_Layer] = []
    for i, raw in enumerate(raw_layers):
        where = f"ffn.layers[{i}]"
        layer = _object(raw, where, _LAYER_KEYS)
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
    return layers


def _check_scalers(
    h: dict[str, Any], kind: str, n_in: int, n_out: int
) -> list[tuple[str, int, np.dtype] | None]:
    """A `Standardized` model's two scalers (each an object or null); none for an `FFN`."""
    scalers: list[tuple[str, int, np.dtype] | None] = []
    if kind != "Standardized":
        for name in _SCALER_NAMES:
            if name in h:
                raise _Invalid(f"the header has {name!r}, which only a Standardized model has")
        return scalers
    for name, n, what in (("x_scaler", n_in, "inputs"), ("y_scaler", n_out, "outputs")):
        if name not in h:
            raise _Invalid(f"the header lacks {name!r} (a scaler, or null)")
        if h[name] is None:
            scalers.append(None)
            continue
        spec = _object(h[name], name, _SCALER_KEYS)
        size = _int(spec["size"], f"{name}.size")
        if size != n:
            raise _Invalid(f"{name}.size is {size} but the network has {n} {what}")
        scalers.append((name, size, _dtype(spec["dtype"], f"{name}.dtype")))
    return scalers


# -- parsing ---------------------------------------------------------------------------------


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
