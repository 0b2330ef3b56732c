"""Reading a CSV table: pandas' C parser when pandas is installed (missing-value markers
included, and rows dropped with `drop_missing` after a vectorised check of the file's structure),
else NumPy's `np.loadtxt` (also in C): no cell of a clean table is touched by Python. A file the
fast reader does not take as it is (a problem to report, quotes around a short row, text labels or
missing values without pandas, '#' both starting lines and inside cells) is read by the reference
reader of `_csv_reference`, which names the line and column of the first problem.

Memory and time stay bounded whatever the file: pandas is given only tables of at most
`_PANDAS_MAX_COLUMNS` columns whose first record fits the header (it sizes its columns on that
record), and the reference reader counts a record's delimiters before it splits the record.
"""

from __future__ import annotations

import codecs
import importlib.util
import io
import itertools
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._threads import cores, pool
from ._csv_header import _Header, _header
from ._csv_reference import _records, _reference
from ._table import _NAME_SAFE, MAX_NAME_CHARS, MISSING, Table, _select

_NOT_SPACE = re.compile(rb"\S")
# pandas' parser spends time and memory per column (a table of 100,000 columns and two rows
# would take it gigabytes): wider tables are read by NumPy (numbers) or the reference reader.
_PANDAS_MAX_COLUMNS = 2000


def import_pandas_meanwhile() -> None:
    """Start importing pandas on a thread (when it is installed and not imported yet), so that
    reading the file's bytes overlaps it; `_pandas` then finds it imported or waits for it
    (Python's import lock)."""
    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is not None:
        threading.Thread(target=_pandas, name="eqx_ffn-import-pandas", daemon=True).start()


def _pandas() -> Any:
    """pandas when it is installed, else `None` (tests replace this to try the NumPy path)."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is optional
        return None
    return pandas


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


def _first_row_fits(raw: bytes, head: _Header, start: int | None = None) -> bool:
    """Whether the first data record (from byte `start`, default the body's) has one cell per
    column. pandas sizes its columns on that record, so a first record of millions of cells
    would take it gigabytes before it is refused; here it is checked by the reference reader's
    guard, which counts delimiters before splitting (the reference reader then names the
    problem)."""
    stream = io.BytesIO(raw)  # shares raw's bytes
    stream.seek(head.body_start if start is None else start)
    lines = (line.decode("utf-8", "replace") for line in stream)
    try:
        for _ in _records(Path(), lines, head):
            return True
    except ValueError:
        return False
    return True


class _Want(NamedTuple):
    """What the fast readers are asked for."""

    wanted: list[int]  # the columns read, in order
    label_cols: set[int]  # the ones holding class labels (text allowed)
    comments: bool  # '#' starts comment lines
    drop_missing: bool
    limit: float | None  # the largest magnitude a value may have


PARALLEL_PARSE_MIN_BYTES = 4 << 20
"""A table body of at least this many bytes (and no quote character) is parsed in parts, one per
core: pandas' C parser releases the GIL, so 2 cores parse a 500,000 x 11 table in about 0.6x the
time of one stream."""


def _parts(raw: bytes, start: int, k: int) -> list[tuple[int, int]]:
    """`raw[start:]` cut into `k` byte ranges at line ends (about equal)."""
    cuts = [start]
    for i in range(1, k):
        cut = raw.find(b"\n", max(cuts[-1], start + (len(raw) - start) * i // k)) + 1
        if cut > 0:
            cuts.append(cut)
    cuts.append(len(raw))
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _parse_pandas(pd: Any, raw: bytes, head: _Header, kwargs: dict[str, Any]) -> list[Any]:
    """`pd.read_csv` of the body of `raw`, as data frames in row order: a large body in parts
    on a thread each (cut at line ends; never where a quote could hold a line end; each part's
    first record fits the header, as the body's does). A part that pandas refuses alone (say,
    nothing but comments) sends the body to one stream, as before."""
    start = head.body_start
    k = cores()
    parts = [(start, len(raw))]
    if k > 1 and len(raw) - start >= PARALLEL_PARSE_MIN_BYTES and raw.find(b'"', start) < 0:
        parts = _parts(raw, start, k)
    if len(parts) > 1 and all(_first_row_fits(raw, head, a) for a, _ in parts[1:]):
        try:
            return list(pool().map(lambda ab: _read_part(pd, raw, ab[0], ab[1], kwargs), parts))
        except Exception:  # one stream decides (the caller names what pandas refused)
            pass
    return [_read_part(pd, raw, start, len(raw), kwargs)]


def _read_part(pd: Any, raw: bytes, a: int, b: int, kwargs: dict[str, Any]) -> Any:
    if b == len(raw):
        stream = io.BytesIO(raw)  # shares raw's bytes
        stream.seek(a)
    else:
        stream = io.BytesIO(memoryview(raw)[a:b])  # a copy of the part's bytes
    return pd.read_csv(stream, **kwargs)


def _read_csv_kwargs(
    head: _Header, names: list[str], label_cols: set[int], comments: bool
) -> dict[str, Any]:
    """`pd.read_csv`'s keywords for the body: missing-value markers as `MISSING` (only an empty
    cell in a label column), label columns as text, '#' comments where the file has them."""
    # one list for every column unless some are labels (a dict costs memory per column)
    na: Any = sorted(MISSING)
    if label_cols:
        na = {names[j]: [""] if j in label_cols else sorted(MISSING) for j in range(len(names))}
    return {
        "sep": head.delimiter,
        "header": None,
        "names": names,
        "index_col": False,
        "dtype": {names[j]: str for j in label_cols},
        "keep_default_na": False,
        "na_values": na,
        "comment": "#" if comments else None,
        "skip_blank_lines": True,
        "engine": "c",
        "encoding": "utf-8",
    }


def _fast_pandas(
    pd: Any, raw: bytes, head: _Header, want: _Want
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    wanted, label_cols, comments, drop_missing, limit = want
    names = [f"c{j}" for j in range(len(head.names))]
    kwargs = _read_csv_kwargs(head, names, label_cols, comments)
    try:
        with warnings.catch_warnings():
            # e.g. "Length of header or names does not match length of data. This leads to a
            # loss of data": any doubt goes to the reference reader (warnings in the parsing
            # threads too: the filters are the process's)
            warnings.simplefilter("error")
            frames = _parse_pandas(pd, raw, head, kwargs)
    except Exception:  # ParserError, UnicodeDecodeError, EmptyDataError, ...: let the
        raise _Slow from None  # reference reader name the line
    n = sum(len(df) for df in frames)
    if n == 0:
        raise _Slow
    columns: dict[int, np.ndarray] = {}
    missing = np.zeros(n, bool)
    store = np.empty((len(wanted), n))  # the numeric columns, one row each: copied once
    for row, j in enumerate(wanted):
        parts = [df[names[j]] for df in frames]
        if j in label_cols:
            col = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
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
        elif all(part.dtype.kind in "fiu" for part in parts):
            values = np.concatenate([part.to_numpy(np.float64) for part in parts], out=store[row])
        else:
            raise _Slow  # text (or True/False) in a numeric column
        if np.isfinite(values.sum()):  # one pass: NaN and inf reach the sum
            if limit is not None and max(values.max(), -values.min()) > limit:
                raise _Slow
        else:
            nan = np.isnan(values)
            if np.isinf(values).any() or (
                limit is not None and np.abs(values[~nan]).max(initial=0) > limit
            ):
                raise _Slow
            missing |= nan
        columns[j] = values
    keep = np.ones(n, bool)
    if missing.any() or any(df.isna().to_numpy().any() for df in frames):
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


def _fast_numpy(path: Path, head: _Header, want: _Want) -> tuple[dict[int, np.ndarray], np.ndarray]:
    wanted, comments, limit = want.wanted, want.comments, want.limit
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
    # NaN or inf anywhere: a missing value, a short row (NaN in an unused column) or an
    # overflow: pandas or the reference reader decide
    if not np.isfinite(arr).all():
        raise _Slow
    sub = arr[:, wanted]
    if limit is not None and np.abs(sub).max(initial=0) > limit:
        raise _Slow
    return {j: arr[:, j] for j in wanted}, np.ones(arr.shape[0], bool)


def _fast(
    path: Path, raw: bytes, head: _Header, want: _Want
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """A fast reader: pandas' C parser when pandas is installed and the table is not too wide
    (its parsing takes half the time of NumPy's `loadtxt`, which pays for importing pandas),
    else NumPy's `loadtxt` for numbers; `_Slow` when neither takes the file as it is."""
    pd = _pandas()
    if pd is not None and len(head.names) <= _PANDAS_MAX_COLUMNS:
        return _fast_pandas(pd, raw, head, want)
    if want.label_cols:
        raise _Slow  # NumPy reads numbers only; labels may be text
    return _fast_numpy(path, head, want)


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
    try:
        return _read_body(path, raw, head, x_cols, y_cols, drop_missing, labels, limit)
    except ValueError as e:
        if not head.hint:
            raise
        raise ValueError(f"{e}{head.hint}") from None


def _stacked(cols: list[np.ndarray]) -> np.ndarray:
    """The 1-D columns as a `(k, N)` array: a view where they are consecutive rows of one array
    (the fast reader's store), else a copy."""
    base = cols[0].base
    if isinstance(base, np.ndarray) and base.ndim == 2 and base.flags.c_contiguous:
        step = base.strides[0]
        first = (cols[0].ctypes.data - base.ctypes.data) // step
        if all(
            c.base is base
            and c.shape == base.shape[1:]
            and c.ctypes.data == base.ctypes.data + (first + i) * step
            for i, c in enumerate(cols)
        ):
            return base[first : first + len(cols)]
    return np.array(cols)


def _read_body(
    path: Path,
    raw: bytes,
    head: _Header,
    x_cols: Any,
    y_cols: Any,
    drop_missing: bool,
    labels: bool,
    limit: float | None,
) -> Table:
    """The table below the header `head`: the columns chosen, the fast reader tried first."""
    x_idx, y_idx = _select(x_cols, y_cols, head.names, path)
    wanted = list(dict.fromkeys(x_idx + y_idx))
    label_cols = set(y_idx) if labels else set()
    if _NOT_SPACE.search(raw, head.body_start) is None:
        raise ValueError(
            f"{path}: the file has a header ({', '.join(head.names)}) but no data rows."
        )
    comments = _comment_mode(raw, head.body_start)
    try:
        if comments is None or not _first_row_fits(raw, head):
            raise _Slow
        want = _Want(wanted, label_cols, comments, drop_missing, limit)
        columns, keep = _fast(path, raw, head, want)
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
        block = _stacked(cols)  # (k, N)
        return (block if everything else block[:, keep]).T  # (N, k), column-major

    return Table(
        x=part(x_idx),
        y=part(y_idx),
        x_names=tuple(head.names[j] for j in x_idx),
        y_names=tuple(head.names[j] for j in y_idx),
        n_dropped=n_dropped,
        delimiter=head.delimiter,
    )
