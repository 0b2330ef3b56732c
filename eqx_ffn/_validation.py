"""The package's argument checks, written once: every module validates through these.

Each check names the argument, says what was expected and what was given. A value of the wrong
type raises `ArgumentTypeError`, which is both a `TypeError` and a `ValueError` (as NumPy's
`AxisError` is), so callers catching either keep working; a value of the right type out of range
raises `ValueError`.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS: tuple[str | None, ...] = (None, "default", "high", "highest")
"""Matmul precisions (`None`: JAX's `default_matmul_precision`; "highest": full float32 on GPUs,
whose default float32 matmul is TF32)."""


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a `TypeError` and a `ValueError`)."""


def unknown_name(argument: str, value: Any, valid: Iterable[Any], hint: str = "") -> ValueError:
    """`ValueError("Unknown <argument> <value>. Valid names are 'a', 'b'<hint>.")`."""
    names = ", ".join(repr(n) for n in valid)
    return ValueError(f"Unknown {argument} {value!r}. Valid names are {names}{hint}.")


def check_int(value: Any, argument: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (Python or NumPy, not a bool) in `[minimum, maximum]`, as a Python int.

    The message names the bound the value breaks: "n must be an integer >= 1; got 0.", "n must
    be an integer <= 10; got 11."."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{argument} must be an integer <= {maximum}; got {value!r}.")
    return int(value)


def check_number(
    value: Any,
    argument: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    closed: bool = False,
) -> float:
    """A finite real number (Python or NumPy scalar, not a bool or a string) between `low` and
    `high`: the open interval, or the closed one with `closed=True`."""
    if low == -math.inf and high == math.inf:
        bounds = "finite"
    elif high == math.inf:
        bounds = f">= {low:g}" if closed else f"> {low:g}"
    else:
        bounds = f"in [{low:g}, {high:g}]" if closed else f"in ({low:g}, {high:g})"
    if not _is_real(value):
        raise ArgumentTypeError(f"{argument} must be a number {bounds}; got {value!r}.")
    inside = low <= value <= high if closed else low < value < high
    if not (inside and math.isfinite(value)):
        raise ValueError(f"{argument} must be a number {bounds}; got {value!r}.")
    return float(value)


def _is_real(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def check_precision(precision: Any, argument: str = "precision") -> str | None:
    """One of `PRECISIONS`."""
    if not isinstance(precision, (str, type(None))) or precision not in PRECISIONS:
        raise ValueError(
            f"Unknown {argument} {precision!r}: {argument} must be one of None, 'default', "
            "'high', 'highest' (None is JAX's default_matmul_precision; 'highest' is full float32 "
            "on GPUs, whose default float32 matmuls use TF32)."
        )
    return precision


def check_bool(value: Any, argument: str) -> bool:
    """`True` or `False` (a NumPy bool too); anything else is refused, not taken for its truth."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{argument} must be True or False; got {value!r}.")
    return bool(value)


def check_path(value: Any, argument: str = "path", *, empty_hint: str = "") -> Path:
    """A file path: a str or `os.PathLike`, not empty (a bool, bytes, a number are refused).

    `empty_hint` ends the message for an empty path ("pass the path of a CSV file")."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise ArgumentTypeError(
            f"{argument} must be a file path (a str or os.PathLike); got {value!r} "
            f"({type(value).__name__})."
        )
    if not text.strip():
        raise ValueError(f"{argument} is empty" + (f"; {empty_hint}." if empty_hint else "."))
    return Path(text)


class NotARegularFileError(ValueError):
    """A path that names a device, a pipe or a socket where a regular file was expected."""


def check_regular_file(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """`os.stat(path)` of a readable regular file, or an error naming `what` and the path.

    Raises `FileNotFoundError`, `IsADirectoryError`, `PermissionError`, `OSError` (any other
    failure to stat), or `NotARegularFileError` (a `ValueError`: a device, pipe or socket, which
    could block a reader or never end).
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such {what}: {p}") from None
    except OSError as e:
        raise OSError(f"cannot read {what} {p}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{what} {p} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(
            f"{what} {p} is not a regular file (a device, pipe or socket); only regular files "
            "are read"
        )
    if not os.access(p, os.R_OK):
        raise PermissionError(f"cannot read {what} {p} (permission denied)")
    return st


def default_float() -> np.dtype:
    """JAX's default float dtype: float32, or float64 under `jax_enable_x64`. Without making an
    array (`jnp.zeros(()).dtype` compiles a kernel in a fresh process); JAX is imported here, so
    modules that avoid importing it at start-up can call this."""
    import jax.numpy as jnp

    return np.dtype(jnp.result_type(float))


def as_jax_array(x: Any, dtype: Any = None) -> Any:
    """`jnp.asarray(x, dtype)` without compiling anything for host data.

    JAX arrays and tracers go through `jnp.asarray`. Anything else (a NumPy array, a list, a
    scalar) becomes a NumPy array of JAX's dtype for it (float64 -> float32 without
    `jax_enable_x64`) and goes to the default device with `jax.device_put`: `jnp.asarray` of a
    NumPy array compiles and runs a staging program for each new shape (about 15 ms each in a
    fresh process, JAX 0.10). Unlike `jnp.asarray`, a Python scalar is not weakly typed."""
    import jax
    import jax.numpy as jnp
    from jax.core import Tracer

    if isinstance(x, (jax.Array, Tracer)):
        return jnp.asarray(x, dtype)
    arr = np.asarray(x, dtype)
    if arr.dtype.kind not in "biufc":  # text, objects: jnp.asarray's own error or result
        return jnp.asarray(x, dtype)
    return jax.device_put(arr.astype(jax.dtypes.canonicalize_dtype(arr.dtype), copy=False))
