"""Writing a table as a CSV file (`write_csv`), in a form `read_table` reads back exactly."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import _target
from ._csv_header import _check_delimiter

__all__ = ["write_csv"]


def _cells(column: np.ndarray) -> list[str]:
    if column.dtype.kind in "fiu":
        # str() of a NumPy scalar is its shortest round-tripping repr in its own dtype.
        return [str(v) for v in column]
    if column.dtype.kind == "b":
        return [str(bool(v)) for v in column]
    return [str(v) for v in column]


def write_csv(
    path: str | os.PathLike,
    columns: Any,
    header: Sequence[str],
    *,
    delimiter: str = ",",
) -> Path:
    """Write a table as a CSV file with a header row (e.g. predictions for the CLI).

    Numbers are written in the shortest form that reads back to the same value in the array's
    dtype, so `load_table` round-trips them exactly. Cells holding the delimiter, a quote or a
    line break are quoted (`csv` module rules), so a name can never add a row. Parent folders
    are created.

    **Arguments:**

    - `path`: the file to write (overwritten).
    - `columns`: an array of shape `(N, k)` (or `(N,)`, one column) of real numbers, or a list
      of `k` one-dimensional arrays of length `N` (numbers or strings, e.g. class labels).
    - `header`: `k` column names.
    - `delimiter`: cell separator (default `","`).

    **Returns:** the path written.

    ```python
    write_csv("pred.csv", predictions, ["y_pred"])             # predictions: (N, 1)
    write_csv("labels.csv", [labels, p0, p1], ["class", "p_a", "p_b"])
    ```
    """
    if isinstance(columns, (list, tuple)):
        cols = [np.asarray(c) for c in columns]
        if any(c.ndim != 1 for c in cols) or len({c.shape[0] for c in cols}) > 1:
            raise ValueError(
                "write_csv expects a list of one-dimensional columns of the same length; got "
                f"shapes {[c.shape for c in cols]}."
            )
        if any(c.dtype.kind not in "fiubU" for c in cols):
            raise ValueError("write_csv columns must hold numbers or strings.")
    else:
        arr = np.asarray(columns)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"write_csv expects columns of shape (N, k); got {arr.shape}.")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"write_csv expects real numbers; got dtype {arr.dtype}.")
        cols = list(arr.T)
    header = [str(h) for h in header]
    if len(header) != len(cols):
        raise ValueError(
            f"write_csv: header has {len(header)} names but columns has {len(cols)} columns."
        )
    _check_delimiter(delimiter)
    path = _target(path, example="table.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        _write_rows(f, header, cols, delimiter)
    return path


def _write_rows(f: Any, header: Sequence[str], cols: Sequence[np.ndarray], delimiter: str) -> None:
    """Write `header` and the columns `cols` to the text stream `f` as CSV."""
    writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*[_cells(c) for c in cols], strict=True))
