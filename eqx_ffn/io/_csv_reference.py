"""The reference CSV reader, on Python's `csv` module: row by row, it stops at the first problem
in file order and names its line and column. Bad or unusual files take this path; clean ones are
read by the fast readers of `_csv` (a test checks that both give the same tables and messages).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._csv_header import _Header
from ._table import _NAME_SAFE, MAX_NAME_CHARS, MISSING, _missing_hint, _show

_MAX_EXTRA = 4096  # delimiters beyond the header's allowed in a record with quoted cells
_STRICT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)", re.I)


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


class _CheckedLines:
    """The body's lines, as `csv.reader` takes them, each checked before it is split into cells.

    A record's cell count is checked against the header before the record is split, so that a
    line of millions of cells is refused in the time and memory of counting its delimiters. A
    record that starts on a line without quotes has exactly one cell more than the line has
    delimiters: one with too many is refused at once, with the message the split would give. A
    record with quotes may hold delimiters inside its cells; it is refused only past
    `_MAX_EXTRA` delimiters beyond the header's. Comment lines reach `csv.reader` as a bare
    `#`: they are skipped, never split.
    """

    def __init__(self, path: Path, lines: Iterable[str], head: _Header):
        self.lines = iter(lines)
        self.path, self.head, self.ncol = path, head, len(head.names)
        self.line = head.line  # the last line handed to the reader
        self.delimiters = 0  # delimiters handed out in the current record
        self.record_start = True  # the next line starts a record
        self.record_line = head.line + 1  # the line the current record started on

    def __iter__(self) -> _CheckedLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.line += 1
        n = line.count(self.head.delimiter)
        if not self.record_start:
            n += self.delimiters
        elif '"' not in line:
            if line.startswith("#"):
                return "#" + line[len(line.rstrip("\r\n")) :]  # a comment, skipped whole
            if n + 1 > self.ncol:
                raise ValueError(
                    f"{self.path}: line {self.line} has {n + 1} cells but the header (line "
                    f"{self.head.line}) has {self.ncol} columns; every row needs one cell per "
                    "column."
                )
        if self.record_start:
            self.record_line = self.line
        self.record_start, self.delimiters = False, n
        if n > self.ncol - 1 + _MAX_EXTRA:
            raise ValueError(
                f"{self.path}: the record on line {self.record_line} holds {n:,} or more "
                f"delimiters {self.head.delimiter!r} (quoted cells included), but the header "
                f"(line {self.head.line}) has {self.ncol} columns; this is not a table row."
            )
        return line

    def record_done(self) -> None:
        """The reader has returned a record: the next line starts a new one."""
        self.record_start, self.delimiters = True, 0


def _records(path: Path, text: Iterable[str], head: _Header) -> Iterator[tuple[int, list[str]]]:
    """`(line, cells)` for every data record of the body's lines `text`: blank and '#' comment
    lines skipped, the cell count checked (before the record is split); `line` is the 1-based
    line the record starts on."""
    ncol = len(head.names)
    lines = _CheckedLines(path, text, head)
    reader = csv.reader(lines, delimiter=head.delimiter)
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
        lines.record_done()
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
    for line, row in _records(path, io.StringIO(text, newline=""), head):
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
        columns[j] = _label_column(path, head.names[j], cells, lines, mask, drop_missing, limit)
    return columns, mask


def _label_column(
    path: Path,
    name: str,
    cells: list[str],
    lines: Any,
    mask: np.ndarray,
    drop_missing: bool,
    limit: float | None,
) -> np.ndarray:
    """A label column: text labels `(N, 1)`, checked as names; or, when every cell is a number
    or a missing-value marker, numeric labels `(N,)`, whose missing rows are cleared in `mask`."""
    numeric = all(c in MISSING or _parse_number(c) is not None for c in cells)
    if not numeric:
        for i, cell in enumerate(cells):
            where = f"{path}: line {lines[i]}, column {name!r}"
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
        return np.asarray(cells, dtype=str)[:, None]
    values = np.asarray([math.nan if c in MISSING else float(c) for c in cells])
    nan = np.isnan(values)
    wrong = np.isinf(values)
    if limit is not None:
        wrong |= np.abs(np.where(nan, 0.0, values)) > limit
    problem = (wrong | (nan & (not drop_missing))) & mask
    if problem.any():
        i = int(np.argmax(problem))
        where = f"{path}: line {lines[i]}, column {name!r}"
        if nan[i]:
            raise ValueError(f"{where} is {cells[i]!r} (a missing value). " + _missing_hint())
        raise ValueError(f"{where} is {_show(cells[i])}: not a finite float32 number.")
    mask &= ~nan
    return values
