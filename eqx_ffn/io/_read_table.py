"""The public table readers: `read_table` (NumPy arrays) and `load_table` (a `Dataset` of JAX
arrays), for CSV files with a header row and `.npz` archives.

This module needs only NumPy (and pandas when present); `load_table` imports JAX to return a
`Dataset`, `read_table` returns NumPy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_regular_file, default_float
from ._csv import _read_csv, import_pandas_meanwhile
from ._npz import _read_npz
from ._table import (
    DEFAULT_MAX_BYTES,
    Table,
    _as_col_list,
    _check_flag,
    _check_path,
    _float_limit,
)

__all__ = ["load_table", "read_table"]


def _available_memory() -> int | None:
    """Bytes of memory available now, when the system says (Linux, most Unixes)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - e.g. Windows
        return None


def _byte_cap(max_bytes: Any) -> tuple[int, str]:
    """The size bound and how to say where it comes from."""
    if max_bytes is None:
        cap, why = DEFAULT_MAX_BYTES, f"the default limit max_bytes={DEFAULT_MAX_BYTES}"
    else:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
            raise TypeError(f"max_bytes must be an int (bytes) or None; got {max_bytes!r}.")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1; got {max_bytes}.")
        cap, why = int(max_bytes), f"max_bytes={int(max_bytes)}"
    avail = _available_memory()
    if avail is not None and avail // 2 < cap:
        cap, why = avail // 2, f"half the memory available ({avail:,} bytes)"
    return cap, why


def _check_file(path: Path, cap: int, why: str) -> None:
    """A readable regular file of at most `cap` bytes (`why` says where the bound comes from)."""
    try:
        st = check_regular_file(path, "file")
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a directory, not a data file.") from None
    if st.st_size > cap:
        raise ValueError(
            f"{path} is {st.st_size:,} bytes, more than {why}; read_table and load_table "
            "take a larger max_bytes= to read it anyway."
        )


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise OSError(f"cannot read {path}: {e.strerror or e}") from None


def read_table(
    path: str | os.PathLike,
    x_cols: Any = None,
    y_cols: Any = None,
    *,
    delimiter: str | None = None,
    drop_missing: bool = False,
    labels: bool = False,
    dtype: Any = None,
    max_bytes: int | None = None,
) -> Table:
    """Read columns of a CSV file (with a header row) or an `.npz` archive as NumPy arrays.

    **CSV** (any suffix but `.npz`): the first line that is neither blank nor starts with `#`
    is the header; later lines starting with `#` are comments. Cells are separated by
    `delimiter` (default: guessed from the header line among `,`, tab, `;`, `|`, or a tab for
    `.tsv`); cells may be quoted with `"`. Column names must be unique, non-empty and plain
    text. Columns are chosen by name or 0-based index (negative counts from the end);
    `y_cols=None` takes the last column, `x_cols=None` every column not in `y_cols`.

    **NPZ**: `x_cols` / `y_cols` name arrays (default `"x"` and `"y"`), each `(N,)` or `(N, k)`,
    joined column-wise. Object arrays are refused (no pickle is ever loaded), and the sizes the
    archive declares are checked before anything is decompressed.

    **Arguments:**

    - `path`: the file.
    - `x_cols`, `y_cols`: input and output column(s): a name, an index, or a list of them; an
      empty list gives shape `(N, 0)`. A column cannot be in both.
    - `delimiter`: CSV cell separator (one character).
    - `drop_missing`: drop rows with a missing value (an empty cell, or a marker in `MISSING`)
      in a chosen column, instead of raising; `Table.n_dropped` says how many.
    - `labels`: let a single `y` column hold text labels (returned as strings).
    - `dtype`: the float dtype the data will be fitted in: values beyond its range are refused
      (default: no check beyond float64's).
    - `max_bytes`: the largest table read (default `DEFAULT_MAX_BYTES`, 2 GiB).

    **Returns:** a `Table`.

    **Raises:** `FileNotFoundError`, `IsADirectoryError`, `OSError` (unreadable); `ValueError`
    naming the line (1-based) and column for a missing value, a cell that is not a number, an
    infinite value, a ragged row; and for an empty file, a header without rows, duplicate or
    unnamed columns, an unknown or repeated column, a column in both `x_cols` and `y_cols`,
    binary or non-UTF-8 data, an object array, or a table larger than the bound.

    ```python
    table = read_table("plant.csv", ["u1", "u2"], "y", drop_missing=True)
    table.x.shape, table.n_dropped                 # (N, 2), 3
    ```
    """
    path = _check_path(path)
    drop_missing = _check_flag(drop_missing, "drop_missing")
    labels = _check_flag(labels, "labels")
    limit = _float_limit(dtype)
    cap, why = _byte_cap(max_bytes)
    _check_file(path, cap, why)
    if labels and y_cols is not None and len(_as_col_list(y_cols, "y_cols")) != 1:
        labels = False  # text labels only for a single label column
    if path.suffix.lower() == ".npz":
        return _read_npz(
            path,
            x_cols,
            y_cols,
            drop_missing=drop_missing,
            labels=labels,
            cap=cap,
            why=why,
            limit=limit,
        )
    import_pandas_meanwhile()
    raw = _read_bytes(path)
    return _read_csv(
        path,
        raw,
        x_cols,
        y_cols,
        delimiter=delimiter,
        drop_missing=drop_missing,
        labels=labels,
        limit=limit,
    )


def _resolve_dtype(dtype: Any) -> np.dtype:
    if dtype is None:
        return default_float()
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be a floating-point dtype such as float32; got {dt}.")
    return dt


def load_table(
    path: str | os.PathLike,
    x_cols: Any = None,
    y_cols: Any = None,
    *,
    dtype: Any = None,
    delimiter: str | None = None,
    drop_missing: bool = False,
    max_bytes: int | None = None,
) -> Any:
    """Read a data set from a CSV file with a header row, or from an `.npz` archive.

    The table is read by `read_table` (see there for the CSV and NPZ rules); this returns it as
    an `eqx_ffn.datasets.Dataset` of JAX arrays, ready for `eqx_ffn.fit`.

    **Arguments:**

    - `path`: the file.
    - `x_cols`: input column(s): a name, a 0-based index, or a list of them (default: every
      column not in `y_cols`). An empty list gives `x` of shape `(N, 0)`.
    - `y_cols`: output column(s) (default: the last column); an empty list gives `y` of shape
      `(N, 0)` (to read only inputs, e.g. for `predict`).
    - `dtype`: float dtype of the result; default the JAX default float (float32, or float64
      under `jax_enable_x64`). Values beyond its range are refused.
    - `delimiter`: CSV cell separator (default: guessed from the header line).
    - `drop_missing`: drop rows with a missing value instead of raising (the `Dataset`'s
      description says how many).
    - `max_bytes`: the largest table read (default 2 GiB; see `read_table`).

    **Returns:** a `Dataset` with `x (N, n_x)`, `y (N, n_y)` as JAX arrays, `name` the file's
    stem, and `x_names`, `y_names` the chosen columns.

    **Raises:** as `read_table`: `FileNotFoundError` for a missing file; `ValueError` naming
    the line and column of a missing value or a cell that is not a number, and for duplicate
    column names, a column in both `x_cols` and `y_cols`, ragged rows, an empty file, ...

    ```python
    ds = load_table("plant.csv", x_cols=["u1", "u2"], y_cols="y")
    model, history = eqx_ffn.fit(eqx_ffn.FFN(ds.n_x, ds.n_y, key=key), ds.x, ds.y)
    ```
    """
    import jax.numpy as jnp

    from ._lecture_data import Dataset

    dt = _resolve_dtype(dtype)
    table = read_table(
        path,
        x_cols,
        y_cols,
        delimiter=delimiter,
        drop_missing=drop_missing,
        dtype=dt,
        max_bytes=max_bytes,
    )
    dropped = f" ({table.n_dropped} rows with missing values dropped)" if table.n_dropped else ""
    return Dataset(
        x=jnp.asarray(table.x.astype(dt)),
        y=jnp.asarray(table.y.astype(dt)),
        name=Path(path).stem,
        description=(
            f"{table.n_rows} rows read from {path}{dropped}: x = {', '.join(table.x_names)}; "
            f"y = {', '.join(table.y_names)}."
        ),
        x_names=table.x_names,
        y_names=table.y_names,
    )
