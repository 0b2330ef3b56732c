"""Reading the user's tables (CSV with a header row, `.npz` archives) and writing CSV.

CSV files go through pandas' C parser when pandas is installed (missing-value markers included,
and rows dropped with `drop_missing` after a vectorised check of the file's structure), else
NumPy's `np.loadtxt` (also in C): no cell of a clean table is touched by Python. A file the fast
reader does not take as it is (a problem to report, quotes around a short row, text labels or
missing values without pandas, '#' both starting lines and inside cells) is read by a reference
reader built on the `csv` module, row by row, which stops at the first problem in file order
and names its line and column. Only bad or unusual files take that slower path; a test checks
that both fast readers give the reference reader's tables and messages.

This module needs only NumPy (and pandas when present); `load_table` imports JAX to return a
`Dataset`, `read_table` returns NumPy arrays.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import math
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_BYTES", "MISSING", "Table", "load_table", "read_table", "write_csv"]

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

_MAX_HEADER_BYTES = 1 << 20
_SHOW = 40  # characters of a cell quoted in a message
_NOT_SPACE = re.compile(rb"\S")
_NAME_SAFE = re.compile(r"[\x00-\x1f\x7f]")
_STRICT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)", re.I)


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


def _pandas() -> Any:
    """pandas when it is installed, else `None` (tests replace this to try the NumPy path)."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is optional
        return None
    return pandas


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
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as e:
        raise OSError(f"cannot read {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path} is a directory, not a data file.")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"{path} is not a regular file (a device, pipe or socket); tables are read from "
            "regular files only."
        )
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


# -- CSV: the header ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Header:
    names: list[str]
    line: int  # 1-based file line of the header
    body_start: int  # byte offset of the first line after the header
    delimiter: str


def _sniff_delimiter(line: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _check_delimiter(delimiter: Any) -> str:
    """A one-character cell separator that cannot be part of a number or a quoted cell."""
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(
            f"delimiter must be one character such as ',', ';' or a tab; got {delimiter!r}."
        )
    if delimiter.isalnum() or delimiter in "\"'.+-#\r\n_" or ord(delimiter) < 9:
        raise ValueError(
            f"delimiter {delimiter!r} cannot separate cells: it can appear inside a number, a "
            "quoted cell or a comment. Use ',', ';', '|', a tab or a space."
        )
    return delimiter


def _header(path: Path, raw: bytes, delimiter: str | None) -> _Header:
    pos, line_no = 0, 1
    while True:
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        line = raw[pos:end]
        if line.strip() and not line.startswith(b"#"):
            break
        if end >= len(raw):
            raise ValueError(
                f"{path}: the file has no header row (only blank or '#' comment lines); expected "
                "a header row and data rows."
            )
        pos, line_no = end + 1, line_no + 1
    if len(line) > _MAX_HEADER_BYTES:
        raise ValueError(
            f"{path}: the header (line {line_no}) is {len(line):,} bytes long; this is not a "
            "table's header row."
        )
    try:
        text = line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: line {line_no} is not UTF-8 text ({e.reason} at byte {e.start}); load_table "
            "reads CSV files with a header row, or .npz archives."
        ) from None
    delim = _sniff_delimiter(text, path) if delimiter is None else _check_delimiter(delimiter)
    try:
        names = next(csv.reader([text], delimiter=delim, strict=True))
    except csv.Error as e:
        raise ValueError(
            f"{path}: the header (line {line_no}) cannot be read ({e}); a quoted name must be "
            "closed on the same line."
        ) from None
    names = [n.strip() for n in names]
    for j, name in enumerate(names):
        if not name:
            raise ValueError(
                f"{path}: column {j + 1} of the header (line {line_no}) has no name (an index "
                "written by pandas' to_csv?). Name it, or remove the column."
            )
        if _NAME_SAFE.search(name):
            raise ValueError(
                f"{path}: the name of column {j + 1} ({_show(name)}, line {line_no}) holds a "
                "line break or another control character; column names must be plain text."
            )
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(
                f"{path}: the name of column {j + 1} (line {line_no}) has {len(name):,} "
                f"characters; names are limited to {MAX_NAME_CHARS}."
            )
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"{path}: the header (line {line_no}) names column {name!r} twice (columns "
                f"{seen[name] + 1} and {j + 1}); column names must be unique. Rename one."
            )
        seen[name] = j
    return _Header(names, line_no, min(end + 1, len(raw)), delim)


# -- CSV: the reference reader (csv module; every problem named by line and column) -----------


def _parse_number(cell: str) -> float | None:
    """The cell's value, or `None` when it is not a plain decimal number (or inf)."""
    if not _STRICT_NUMBER.fullmatch(cell):
        return None
    return float(cell)


def _text_body(path: Path, raw: bytes, start: int, first_line: int) -> str:
    try:
        return str(memoryview(raw)[start:], "utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", start, start + e.start)
        raise ValueError(
            f"{path}: line {line} is not UTF-8 text ({e.reason}); load_table reads CSV files "
            "with a header row, or .npz archives."
        ) from None


def _records(path: Path, text: str, head: _Header) -> Any:
    """`(line, cells)` for every data record: blank and '#' comment lines skipped, the cell count
    checked; `line` is the 1-based line the record starts on."""
    ncol = len(head.names)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=head.delimiter)
    prev = 0
    while True:
        start = head.line + 1 + prev
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                raise ValueError(
                    f"{path}: line {start} holds a cell of more than {csv.field_size_limit():,} "
                    "characters; this is not a table of numbers or labels."
                ) from None
            raise ValueError(f"{path}: line {start} cannot be read as CSV ({e}).") from None
        prev = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if row[0].startswith("#"):
            continue  # a comment
        if len(row) != ncol:
            raise ValueError(
                f"{path}: line {start} has {len(row)} cells but the header (line {head.line}) "
                f"has {ncol} columns; every row needs one cell per column."
            )
        yield start, row


def _reference(
    path: Path,
    raw: bytes,
    head: _Header,
    wanted: list[int],
    label_cols: set[int],
    drop_missing: bool,
    limit: float | None,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The csv-module reader: row by row, stopping at the first problem (in file order)."""
    import array

    text = _text_body(path, raw, head.body_start, head.line + 1)
    numbers = {j: array.array("d") for j in wanted if j not in label_cols}
    labels: dict[int, list[str]] = {j: [] for j in wanted if j in label_cols}
    lines = array.array("q")
    keep = array.array("b")
    for line, row in _records(path, text, head):
        ok = 1
        for j in wanted:
            cell = row[j].strip()
            where = f"{path}: line {line}, column {head.names[j]!r}"
            if j in label_cols:  # checked once the column is known to be text or numbers
                if not cell:
                    if not drop_missing:
                        raise ValueError(f"{where} is empty (a missing label). " + _missing_hint())
                    ok = 0
                labels[j].append(cell)
                continue
            v = math.nan
            if cell in MISSING:
                if not drop_missing:
                    what = "empty" if not cell else f"{cell!r}"
                    raise ValueError(f"{where} is {what} (a missing value). " + _missing_hint())
                ok = 0
            else:
                parsed = _parse_number(cell)
                if parsed is None:
                    hint = ""
                    if re.fullmatch(r"[+-]?\d+,\d+", cell):
                        hint = " (a decimal comma? Numbers need a decimal point.)"
                    raise ValueError(f"{where} (index {j}): {_show(cell)} is not a number.{hint}")
                if not math.isfinite(parsed):
                    raise ValueError(
                        f"{where} is {_show(cell)}: infinite values are not allowed (NaN and inf "
                        "cannot be fitted)."
                    )
                if limit is not None and abs(parsed) > limit:
                    raise ValueError(
                        f"{where} is {_show(cell)}, beyond the float32 range (about ±3.4e38) the "
                        "data are fitted in; rescale the column."
                    )
                v = parsed
            numbers[j].append(v)
        lines.append(line)
        keep.append(ok)
    if not lines:
        raise ValueError(
            f"{path}: the file has a header ({', '.join(head.names)}) but no data rows."
        )
    mask = np.frombuffer(keep, dtype=np.int8).astype(bool)
    columns: dict[int, np.ndarray] = {
        j: np.frombuffer(a, dtype=np.float64) for j, a in numbers.items()
    }
    for j, cells in labels.items():
        # a label column of numbers (and missing-value markers) holds numeric labels
        numeric = all(c in MISSING or _parse_number(c) is not None for c in cells)
        if not numeric:
            for i, cell in enumerate(cells):
                where = f"{path}: line {lines[i]}, column {head.names[j]!r}"
                if len(cell) > MAX_NAME_CHARS:
                    raise ValueError(
                        f"{where} holds a label of {len(cell):,} characters; labels are "
                        f"limited to {MAX_NAME_CHARS}."
                    )
                if _NAME_SAFE.search(cell):
                    raise ValueError(
                        f"{where}: the label {_show(cell)} holds a control character; labels "
                        "must be plain text."
                    )
            columns[j] = np.asarray(cells, dtype=str)[:, None]
            continue
        values = np.asarray([math.nan if c in MISSING else float(c) for c in cells])
        nan = np.isnan(values)
        wrong = np.isinf(values)
        if limit is not None:
            wrong |= np.abs(np.where(nan, 0.0, values)) > limit
        problem = (wrong | (nan & (not drop_missing))) & mask
        if problem.any():
            i = int(np.argmax(problem))
            where = f"{path}: line {lines[i]}, column {head.names[j]!r}"
            if nan[i]:
                raise ValueError(f"{where} is {cells[i]!r} (a missing value). " + _missing_hint())
            raise ValueError(f"{where} is {_show(cells[i])}: not a finite float32 number.")
        mask &= ~np.isnan(values)
        columns[j] = values
    return columns, mask


# -- CSV: the fast readers (pandas / NumPy, in C) ---------------------------------------------


class _Slow(Exception):
    """The fast reader does not take this file as it is: use the reference reader."""


def _structure(raw: bytes, head: _Header, comments: bool) -> tuple[int, bool] | None:
    """For a file without quotes: the number of data records, and whether any of them has a
    wrong number of cells. Vectorised: NumPy over the bytes. `None` when quotes make lines and
    records differ."""
    if raw.find(b'"', head.body_start) >= 0:
        return None
    buf = np.frombuffer(raw, np.uint8, offset=head.body_start)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [buf.size]])
    if starts[-1] == buf.size:  # the file ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    delims = np.flatnonzero(buf == ord(head.delimiter))
    n_delims = np.searchsorted(delims, ends) - np.searchsorted(delims, starts)
    space = np.array([b in (9, 13, 32) and b != ord(head.delimiter) for b in range(256)])
    spaces = np.flatnonzero(space[buf])  # few in a table of numbers
    n_spaces = np.searchsorted(spaces, ends) - np.searchsorted(spaces, starts)
    blank = n_spaces == ends - starts
    record = ~blank
    if comments:
        first = buf[np.minimum(starts, buf.size - 1)] if buf.size else np.zeros(0, np.uint8)
        record &= ~((first == ord("#")) & (starts < ends))
    ragged = bool(np.any(record & (n_delims != len(head.names) - 1)))
    return int(record.sum()), ragged


def _comment_mode(raw: bytes, start: int) -> bool | None:
    """`True`: '#' starts comment lines only; `False`: no comment lines; `None`: '#' both starts
    lines and appears inside them (a fast parser would cut cells at it)."""
    if raw.find(b"#", start) < 0:
        return False
    starts = raw.startswith(b"#", start) or re.compile(rb"\n#").search(raw, start) is not None
    inside = re.compile(rb"[^\r\n]#").search(raw, start) is not None
    if starts and inside:
        return None
    return starts


def _fast_pandas(
    pd: Any,
    raw: bytes,
    head: _Header,
    wanted: list[int],
    label_cols: set[int],
    comments: bool,
    drop_missing: bool,
    limit: float | None,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    ncol = len(head.names)
    names = [f"c{j}" for j in range(ncol)]
    na = {names[j]: [""] if j in label_cols else sorted(MISSING) for j in range(ncol)}
    stream = io.BytesIO(raw)  # shares raw's bytes; read from the line after the header
    stream.seek(head.body_start)
    try:
        with warnings.catch_warnings():
            # e.g. "Length of header or names does not match length of data. This leads to a
            # loss of data": any doubt goes to the reference reader
            warnings.simplefilter("error")
            df = pd.read_csv(
                stream,
                sep=head.delimiter,
                header=None,
                names=names,
                index_col=False,
                dtype={names[j]: str for j in label_cols},
                keep_default_na=False,
                na_values=na,
                comment="#" if comments else None,
                skip_blank_lines=True,
                engine="c",
                encoding="utf-8",
            )
    except Exception:  # ParserError, UnicodeDecodeError, EmptyDataError, ...: let the
        raise _Slow from None  # reference reader name the line
    n = len(df)
    if n == 0:
        raise _Slow
    columns: dict[int, np.ndarray] = {}
    missing = np.zeros(n, bool)
    for j in wanted:
        col = df[names[j]]
        if j in label_cols:
            stripped = col.fillna("").astype(str).str.strip()
            marker = stripped.isin(MISSING).to_numpy()
            values = pd.to_numeric(stripped.mask(marker, "nan"), errors="coerce")
            values = values.to_numpy(np.float64)
            if np.all(marker | ~np.isnan(values)):  # numeric labels; markers are missing
                pass
            else:  # text labels; only an empty cell is missing
                text = stripped.to_numpy(dtype=str)
                too_long = np.char.str_len(text).max(initial=0) > MAX_NAME_CHARS
                if too_long or stripped.str.contains(_NAME_SAFE.pattern).any():
                    raise _Slow
                missing |= text == ""
                columns[j] = text[:, None]
                continue
        elif col.dtype.kind in "fiu":
            values = col.to_numpy(np.float64)
        else:
            raise _Slow  # text (or True/False) in a numeric column
        nan = np.isnan(values)
        if np.isinf(values).any() or (
            limit is not None and np.abs(values[~nan]).max(initial=0) > limit
        ):
            raise _Slow
        missing |= nan
        columns[j] = values
    keep = np.ones(n, bool)
    if missing.any() or df.isna().to_numpy().any():
        # Short rows read as NaN too: check the file's structure before trusting the NaNs.
        found = _structure(raw, head, comments)
        if found is None:
            raise _Slow
        n_records, ragged = found
        if ragged or n_records != n:
            raise _Slow
        if missing.any():
            if not drop_missing:
                raise _Slow  # the reference reader names the first missing cell
            keep = ~missing
    return columns, keep


def _fast_numpy(
    path: Path,
    head: _Header,
    wanted: list[int],
    label_cols: set[int],
    comments: bool,
    limit: float | None,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "input contained no data"
            arr = np.loadtxt(  # from the path: faster than from a decoded string
                path,
                skiprows=head.line,
                encoding="utf-8-sig",
                delimiter=head.delimiter,
                comments="#" if comments else None,
                quotechar='"',
                ndmin=2,
                dtype=np.float64,
            )
    except Exception:
        raise _Slow from None
    if arr.shape[0] == 0 or arr.shape[1] != len(head.names):
        raise _Slow
    sub = arr[:, wanted]
    if not np.isfinite(sub).all() or (limit is not None and np.abs(sub).max(initial=0) > limit):
        raise _Slow
    if np.isnan(arr).any():
        raise _Slow  # a NaN in an unused column: maybe a short row; let the reference decide
    return {j: arr[:, j] for j in wanted}, np.ones(arr.shape[0], bool)


def _read_csv(
    path: Path,
    raw: bytes,
    x_cols: Any,
    y_cols: Any,
    *,
    delimiter: str | None,
    drop_missing: bool,
    labels: bool,
    limit: float | None,
) -> Table:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw or raw.isspace():
        raise ValueError(f"{path}: the file is empty; expected a header row and data rows.")
    nul = raw.find(b"\x00")
    if nul >= 0:
        nul_line = raw.count(b"\n", 0, nul) + 1
        raise ValueError(
            f"{path}: binary data (a NUL byte on line {nul_line}), not a "
            "text table. load_table reads CSV files with a header row, or .npz archives."
        )
    head = _header(path, raw, delimiter)
    x_idx, y_idx = _select(x_cols, y_cols, head.names, path)
    wanted = list(dict.fromkeys(x_idx + y_idx))
    label_cols = set(y_idx) if labels else set()
    if _NOT_SPACE.search(raw, head.body_start) is None:
        raise ValueError(
            f"{path}: the file has a header ({', '.join(head.names)}) but no data rows."
        )
    comments = _comment_mode(raw, head.body_start)
    pd = _pandas()
    try:
        if comments is None:
            raise _Slow
        if pd is not None:
            columns, keep = _fast_pandas(
                pd, raw, head, wanted, label_cols, comments, drop_missing, limit
            )
        else:
            if label_cols:
                raise _Slow  # NumPy reads numbers only; labels may be text
            columns, keep = _fast_numpy(path, head, wanted, label_cols, comments, limit)
    except _Slow:
        columns, keep = _reference(path, raw, head, wanted, label_cols, drop_missing, limit)
    n_dropped = int((~keep).sum())
    if n_dropped == keep.size:
        raise ValueError(
            f"{path}: every one of the {keep.size} data rows has a missing value in the chosen "
            "columns; nothing is left to fit."
        )

    everything = bool(keep.all())

    def part(idx: list[int]) -> np.ndarray:
        cols = [columns[j] for j in idx]
        if any(c.ndim == 2 for c in cols):  # text labels
            return cols[0] if everything else cols[0][keep]
        if not cols:
            return np.zeros((int(keep.sum()), 0))
        block = np.array(cols)  # (k, N): one contiguous copy per column
        return (block if everything else block[:, keep]).T  # (N, k), column-major

    return Table(
        x=part(x_idx),
        y=part(y_idx),
        x_names=tuple(head.names[j] for j in x_idx),
        y_names=tuple(head.names[j] for j in y_idx),
        n_dropped=n_dropped,
        delimiter=head.delimiter,
    )


# -- NPZ ---------------------------------------------------------------------------------------


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
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e}).") from None
    with archive:
        entries = {
            info.filename[: -len(".npy")]: info
            for info in archive.infolist()
            if info.filename.endswith(".npy")
        }
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
            raise ValueError(
                f"{path}: x_cols and y_cols are both empty; select at least one array."
            )
        # Sizes first: the zip entries' declared sizes, then each .npy header, before any data.
        total = sum(entries[n].file_size for n in x_names_req + y_names_req)
        if total > cap:
            raise ValueError(
                f"{path}: the arrays declare {total:,} bytes uncompressed, more than {why}; "
                "refused before decompressing (a zip bomb?). read_table and load_table take a "
                "larger max_bytes= to read it anyway."
            )
        arrays: dict[str, np.ndarray] = {}
        for name in x_names_req + y_names_req:
            info = entries[name]
            try:
                with archive.open(info) as f:
                    shape, _, dtype = _npy_header(f)
                    if dtype.hasobject:
                        raise ValueError(
                            f"{path}: array {name!r} holds Python objects (dtype {dtype}); only "
                            "numeric arrays are read, never pickled objects."
                        )
                    allowed = "fiu" + ("U" if labels and name in y_names_req else "")
                    if dtype.kind not in allowed:
                        raise ValueError(
                            f"{path}: array {name!r} must hold real numbers; got dtype {dtype}."
                        )
                    nbytes = math.prod(shape) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(
                            f"{path}: array {name!r} declares shape {shape} ({nbytes:,} bytes) "
                            f"but its entry holds {info.file_size:,}; the archive is damaged."
                        )
                with archive.open(info) as f:
                    arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
            except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
                raise ValueError(f"{path}: the .npz archive is damaged ({e}).") from None
            except ValueError as e:
                if str(e).startswith(str(path)):
                    raise
                raise ValueError(f"{path}: array {name!r} cannot be read ({e}).") from None

    def part(req: list[str]) -> tuple[np.ndarray | None, tuple[str, ...]]:
        parts, labels_ = [], []
        for name in req:
            a = arrays[str(name)]
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2:
                raise ValueError(
                    f"{path}: array {name!r} must have shape (N,) or (N, k); got {a.shape}."
                )
            parts.append(a)
            labels_ += (
                [str(name)] if a.shape[1] == 1 else [f"{name}[{k}]" for k in range(a.shape[1])]
            )
        if not parts:
            return None, ()
        rows = {p.shape[0] for p in parts}
        if len(rows) != 1:
            raise ValueError(
                f"{path}: arrays {[str(r) for r in req]} have different numbers of rows "
                f"{sorted(rows)}."
            )
        if any(p.dtype.kind == "U" for p in parts):
            if len(parts) != 1 or parts[0].shape[1] != 1:
                raise ValueError(f"{path}: text labels must be one array of shape (N,).")
            return np.char.strip(parts[0]), tuple(labels_)
        return np.concatenate(parts, axis=1).astype(np.float64), tuple(labels_)

    x, x_names = part(x_names_req)
    y, y_names = part(y_names_req)
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
    keep = np.ones(x.shape[0], bool)
    for part_, names_ in ((x, x_names), (y, y_names)):
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
    n_dropped = int((~keep).sum())
    if n_dropped == keep.size:
        raise ValueError(f"{path}: every row has a missing value; nothing is left to fit.")
    return Table(x[keep], y[keep], x_names, y_names, n_dropped, None)


# -- the public readers ------------------------------------------------------------------------


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
    path = Path(path)
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
        import jax.numpy as jnp

        return np.dtype(jnp.zeros(()).dtype)
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

    from ._datasets import Dataset

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


# -- writing -----------------------------------------------------------------------------------


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        _write_rows(f, header, cols, delimiter)
    return path


def _write_rows(f: Any, header: Sequence[str], cols: Sequence[np.ndarray], delimiter: str) -> None:
    """Write `header` and the columns `cols` to the text stream `f` as CSV."""
    writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*[_cells(c) for c in cols], strict=True))
