"""A table read from a file (`Table`), and the rules every table reader shares: which cells
are missing (`MISSING`), what a column name may be, how columns are chosen (`x_cols`, `y_cols`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_bool, check_path

__all__ = ["DEFAULT_MAX_BYTES", "MAX_NAME_CHARS", "MISSING", "Table"]

DEFAULT_MAX_BYTES = 2 << 30
"""The largest table read by default (2 GiB): a CSV file's size, or the total size of the arrays
an `.npz` archive declares (checked before anything is decompressed). Pass `max_bytes=` to
change it; half the memory available is a second bound."""

MISSING = frozenset(
    {"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "-nan", "-NaN", "NULL", "null", "None"}
    | {"none", "#N/A", "<NA>", "?"}
)
"""Cells that mean "missing" in a numeric column (after stripping spaces). In a column of text
labels only an empty cell is missing."""

MAX_NAME_CHARS = 256
"""The longest column name (or class label) accepted."""

_SHOW = 40  # characters of a cell quoted in a message
_NAME_SAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Columns read from a file, as NumPy arrays (what `read_table` returns).

    **Attributes:**

    - `x`: inputs, float64, shape `(N, n_x)`.
    - `y`: outputs, float64, shape `(N, n_y)`; with `labels=True` and a label column that holds
      text, a string array of shape `(N, 1)` (cells stripped of surrounding spaces).
    - `x_names`, `y_names`: the chosen columns' names.
    - `n_dropped`: rows dropped for missing values (`drop_missing=True`).
    - `delimiter`: the CSV cell separator used (`None` for `.npz`).
    """

    x: np.ndarray
    y: np.ndarray
    x_names: tuple[str, ...]
    y_names: tuple[str, ...]
    n_dropped: int = 0
    delimiter: str | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows `N` kept."""
        return int(self.x.shape[0])

    @property
    def text_labels(self) -> bool:
        """Whether `y` holds text (a label column with `labels=True`)."""
        return self.y.dtype.kind == "U"


# -- small helpers -----------------------------------------------------------------------------


def _show(cell: str) -> str:
    """A cell quoted for a message, cut to a readable length."""
    if len(cell) <= _SHOW:
        return repr(cell)
    return f"{cell[:_SHOW]!r}... ({len(cell):,} characters)"


def _as_col_list(cols: Any, argument: str) -> list[str | int]:
    if isinstance(cols, (str, int, np.integer)) and not isinstance(cols, bool):
        cols = [cols]
    if not isinstance(cols, Sequence) or isinstance(cols, (bytes, str)):
        raise ValueError(
            f"{argument} must be a column name, a 0-based column index, or a list of them; "
            f"got {cols!r}."
        )
    out: list[str | int] = []
    for c in cols:
        if isinstance(c, bool) or not isinstance(c, (str, int, np.integer)):
            raise ValueError(f"{argument} entries must be names (str) or indices (int); got {c!r}.")
        out.append(c if isinstance(c, str) else int(c))
    return out


def _available(names: Sequence[str], what: str = "columns") -> str:
    shown = ", ".join(repr(n) for n in names[:30])
    more = f" and {len(names) - 30} more" if len(names) > 30 else ""
    return f"Available {what}: {shown or 'none'}{more}."


def _indices(cols: list[str | int], header: list[str], argument: str, path: Path) -> list[int]:
    out = []
    for c in cols:
        if isinstance(c, str):
            if c not in header:
                raise ValueError(
                    f"{path}: {argument} names column {c!r}, which is not in the header. "
                    + _available(header)
                )
            j = header.index(c)
        else:
            if not -len(header) <= c < len(header):
                raise ValueError(
                    f"{path}: {argument} asks for column index {c}, but the file has "
                    f"{len(header)} columns (0 to {len(header) - 1}). " + _available(header)
                )
            j = c % len(header)
        if j in out:
            raise ValueError(f"{path}: {argument} names column {header[j]!r} twice.")
        out.append(j)
    return out


def _select(x_cols: Any, y_cols: Any, header: list[str], path: Path) -> tuple[list[int], list[int]]:
    """Column indices of x and y: defaults, unknown names, repeats and overlaps checked."""
    if y_cols is None:
        y_idx = [len(header) - 1]
    else:
        y_idx = _indices(_as_col_list(y_cols, "y_cols"), header, "y_cols", path)
    if x_cols is None:
        x_idx = [j for j in range(len(header)) if j not in y_idx]
        if not x_idx:
            raise ValueError(
                f"{path}: no columns are left for x once y_cols "
                f"({', '.join(header[j] for j in y_idx)}) are taken; a table needs at least one "
                "input column."
            )
    else:
        x_idx = _indices(_as_col_list(x_cols, "x_cols"), header, "x_cols", path)
    both = [j for j in x_idx if j in y_idx]
    if both:
        raise ValueError(
            f"{path}: column {header[both[0]]!r} is named by both x_cols and y_cols; a column "
            "cannot be an input and an output (the network would learn y from y)."
        )
    if not x_idx and not y_idx:
        raise ValueError(f"{path}: x_cols and y_cols are both empty; select at least one column.")
    return x_idx, y_idx


_check_flag = check_bool


def _check_path(path: Any) -> Path:
    """The `path` of a table to read: a str or `os.PathLike`, not empty."""
    return check_path(path, empty_hint="pass the path of a CSV file or an .npz archive")


def _float_limit(dtype: Any) -> float | None:
    if dtype is None:
        return None
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be a floating-point dtype such as float32; got {dt}.")
    return float(np.finfo(dt).max) if dt.itemsize < 8 else None


def _missing_hint() -> str:
    return (
        "Fill it in, or drop the rows with missing values (drop_missing=True; on the command "
        "line --drop-missing)."
    )
