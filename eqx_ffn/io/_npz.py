"""Reading a table from an `.npz` archive: arrays named by `x_cols` / `y_cols`, joined column-wise.

An archive may come from anyone. Its directory is bounded (`_MAX_ENTRIES`) before it is read;
the sizes the chosen entries declare, and then each array's `.npy` header (shape and dtype), are
checked against the byte bound before anything is decompressed, counting the float64 table the
arrays become; no pickled object is ever loaded.
"""

from __future__ import annotations

import contextlib
import math
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._table import Table, _as_col_list, _available, _missing_hint


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return fmt.read_array_header_1_0(f)
    if version == (2, 0):
        return fmt.read_array_header_2_0(f)
    read = getattr(fmt, "_read_array_header", None)
    if read is None:  # pragma: no cover - only a NumPy without the private reader
        raise ValueError(f"unsupported .npy format version {version}")
    return read(f, version)


def _npz_names(cols: Any, default: str, argument: str, path: Path, entries: Any) -> list[str]:
    names = _as_col_list(default if cols is None else cols, argument)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(
                f"{path}: {argument} names arrays of an .npz archive by name; got {name!r}. "
                + _available(list(entries), "arrays")
            )
    return [str(n) for n in names]


_MAX_ENTRIES = 100_000  # entries in an archive's directory (an .npz holds a few arrays)


def _entry_count(path: Path) -> int | None:
    """The number of entries the archive's end record declares (`None` if it cannot be found:
    `zipfile` then gives its own error)."""
    try:
        with open(path, "rb") as f:
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except (OSError, AttributeError, struct.error):  # pragma: no cover - a future zipfile
        return None
    if end is None:
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def _open_archive(path: Path) -> zipfile.ZipFile:
    n_entries = _entry_count(path)
    if n_entries is not None and n_entries > _MAX_ENTRIES:
        raise ValueError(
            f"{path}: the archive declares {n_entries:,} entries, more than the {_MAX_ENTRIES:,} "
            "an .npz table may hold; it is damaged or not a table."
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e}).") from None


def _requested(
    path: Path, x_cols: Any, y_cols: Any, entries: dict[str, zipfile.ZipInfo]
) -> tuple[list[str], list[str]]:
    """The arrays named by `x_cols` and `y_cols` (default `"x"` and `"y"`), all present, none
    twice, none in both."""
    names = list(entries)
    x_names_req = _npz_names(x_cols, "x", "x_cols", path, entries)
    y_names_req = _npz_names(y_cols, "y", "y_cols", path, entries)
    for argument, req in (("x_cols", x_names_req), ("y_cols", y_names_req)):
        for name in req:
            if name not in entries:
                raise ValueError(
                    f"{path}: {argument} names array {name!r}, which is not in the archive. "
                    + _available(names, "arrays")
                )
            if req.count(name) > 1:
                raise ValueError(f"{path}: {argument} names array {name!r} twice.")
    both = [n for n in x_names_req if n in y_names_req]
    if both:
        raise ValueError(
            f"{path}: array {both[0]!r} is named by both x_cols and y_cols; an array cannot "
            "be an input and an output."
        )
    if not x_names_req and not y_names_req:
        raise ValueError(f"{path}: x_cols and y_cols are both empty; select at least one array.")
    return x_names_req, y_names_req


def _check_npy(
    path: Path, name: str, f: Any, info: zipfile.ZipInfo, text_ok: bool
) -> tuple[tuple[int, ...], int]:
    """Check one entry's `.npy` header; return its shape and the bytes of the float64 (or text)
    table it becomes."""
    shape, _, dtype = _npy_header(f)
    if dtype.hasobject:
        raise ValueError(
            f"{path}: array {name!r} holds Python objects (dtype {dtype}); only "
            "numeric arrays are read, never pickled objects."
        )
    if dtype.kind not in "fiu" + ("U" if text_ok else ""):
        raise ValueError(f"{path}: array {name!r} must hold real numbers; got dtype {dtype}.")
    if len(shape) not in (1, 2):
        raise ValueError(f"{path}: array {name!r} must have shape (N,) or (N, k); got {shape}.")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > info.file_size:
        raise ValueError(
            f"{path}: array {name!r} declares shape {shape} ({nbytes:,} bytes) "
            f"but its entry holds {info.file_size:,}; the archive is damaged."
        )
    # What reading it costs: at least 8 bytes a cell (float64, or a text label and its mask),
    # and a row of an (N, 0) array still costs its place in the row mask.
    cells = shape[0] * max(1, math.prod(shape[1:]))
    return shape, cells * max(8, dtype.itemsize)


def _read_arrays(
    path: Path,
    archive: zipfile.ZipFile,
    entries: dict[str, zipfile.ZipInfo],
    names: list[str],
    text_ok: set[str],
    cap: int,
    why: str,
) -> dict[str, np.ndarray]:
    """The named arrays, once every header has been checked and the table they make fits in
    `cap` bytes."""
    # Sizes first: the zip entries' declared sizes, then each .npy header, before any data.
    total = sum(entries[n].file_size for n in names)
    if total > cap:
        raise ValueError(
            f"{path}: the arrays declare {total:,} bytes uncompressed, more than {why}; "
            "refused before decompressing (a zip bomb?). read_table and load_table take a "
            "larger max_bytes= to read it anyway."
        )
    shapes, needed = {}, 0
    for name in names:
        with _damaged(path, name):
            with archive.open(entries[name]) as f:
                shapes[name], cost = _check_npy(path, name, f, entries[name], name in text_ok)
        needed += cost
    if needed > cap:
        shown = ", ".join(f"{n!r} {shapes[n]}" for n in names[:5])
        raise ValueError(
            f"{path}: the arrays ({shown}) make a table of {needed:,} bytes once read, more "
            f"than {why}. read_table and load_table take a larger max_bytes= to read it anyway."
        )
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        with _damaged(path, name):
            with archive.open(entries[name]) as f:
                arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


@contextlib.contextmanager
def _damaged(path: Path, name: str) -> Iterator[None]:
    """Turn the errors of a damaged archive or array into a `ValueError` naming the file."""
    try:
        yield
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{path}: the .npz archive is damaged ({e}).") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: array {name!r} cannot be read ({e}).") from None


def _join(
    path: Path, arrays: dict[str, np.ndarray], req: list[str]
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The arrays `req`, each `(N,)` or `(N, k)`, side by side, and their columns' names."""
    parts, labels_ = [], []
    for name in req:
        a = arrays[str(name)]
        if a.ndim == 1:
            a = a[:, None]
        parts.append(a)
        labels_ += [str(name)] if a.shape[1] == 1 else [f"{name}[{k}]" for k in range(a.shape[1])]
    if not parts:
        return None, ()
    rows = {p.shape[0] for p in parts}
    if len(rows) != 1:
        raise ValueError(
            f"{path}: arrays {[str(r) for r in req]} have different numbers of rows {sorted(rows)}."
        )
    if any(p.dtype.kind == "U" for p in parts):
        if len(parts) != 1 or parts[0].shape[1] != 1:
            raise ValueError(f"{path}: text labels must be one array of shape (N,).")
        return np.char.strip(parts[0]), tuple(labels_)
    return np.concatenate(parts, axis=1).astype(np.float64), tuple(labels_)


def _rows_to_keep(
    path: Path,
    parts: tuple[tuple[np.ndarray, tuple[str, ...]], ...],
    drop_missing: bool,
    limit: float | None,
) -> np.ndarray:
    """The rows without a missing value (NaN, an empty label); infinite values and values beyond
    `limit` refused."""
    keep = np.ones(parts[0][0].shape[0], bool)
    for part_, names_ in parts:
        if part_.dtype.kind == "U":
            empty = part_[:, 0] == ""
            if empty.any() and not drop_missing:
                r = int(np.argmax(empty))
                raise ValueError(
                    f"{path}: row {r} (0-based) of {names_[0]!r} is empty (a missing label). "
                    + _missing_hint()
                )
            keep &= ~empty
            continue
        nan = np.isnan(part_)
        if nan.any() and not drop_missing:
            r, c = np.argwhere(nan)[0]
            raise ValueError(
                f"{path}: row {r} (0-based), column {names_[c]!r} is NaN (a missing value). "
                + _missing_hint()
            )
        keep &= ~nan.any(axis=1)
        bad = np.isinf(part_) | (
            np.isfinite(part_) & (np.abs(part_) > limit) if limit is not None else False
        )
        if np.any(bad):
            r, c = np.argwhere(bad)[0]
            if np.isinf(part_[r, c]):
                what = "infinite values are not allowed (NaN and inf cannot be fitted)"
            else:
                what = "beyond the float32 range (about ±3.4e38) the data are fitted in"
            raise ValueError(
                f"{path}: row {r} (0-based), column {names_[c]!r} is {part_[r, c]}: {what}."
            )
    return keep


def _read_npz(
    path: Path,
    x_cols: Any,
    y_cols: Any,
    *,
    drop_missing: bool,
    labels: bool,
    cap: int,
    why: str,
    limit: float | None,
) -> Table:
    """The table of the arrays `x_cols` and `y_cols` of the archive at `path`."""
    with _open_archive(path) as archive:
        entries = {
            info.filename[: -len(".npy")]: info
            for info in archive.infolist()
            if info.filename.endswith(".npy")
        }
        x_names_req, y_names_req = _requested(path, x_cols, y_cols, entries)
        text_ok = set(y_names_req) if labels else set()
        arrays = _read_arrays(path, archive, entries, x_names_req + y_names_req, text_ok, cap, why)
    x, x_names = _join(path, arrays, x_names_req)
    y, y_names = _join(path, arrays, y_names_req)
    if x is None and y is not None:
        x = np.zeros((y.shape[0], 0))
    if y is None and x is not None:
        y = np.zeros((x.shape[0], 0))
    assert x is not None and y is not None
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{path}: x has {x.shape[0]} rows but y has {y.shape[0]}; they must match."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{path}: the arrays are empty (0 rows).")
    keep = _rows_to_keep(path, ((x, x_names), (y, y_names)), drop_missing, limit)
    n_dropped = int((~keep).sum())
    if n_dropped == keep.size:
        raise ValueError(f"{path}: every row has a missing value; nothing is left to fit.")
    return Table(x[keep], y[keep], x_names, y_names, n_dropped, None)
