"""A CSV file's header row: where it is, which delimiter separates its cells, and its column
names (unique, non-empty, plain text)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from ._table import _NAME_SAFE, MAX_NAME_CHARS, _show

_MAX_HEADER_BYTES = 1 << 20


@dataclasses.dataclass
class _Header:
    names: list[str]
    line: int  # 1-based file line of the header
    body_start: int  # byte offset of the first line after the header
    delimiter: str
    hint: str = ""  # for a delimiter= that leaves one column where the file seems to use another


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
    hint = _delimiter_hint(text, path, delim, names, line_no) if delimiter is not None else ""
    return _Header(names, line_no, min(end + 1, len(raw)), delim, hint)


def _delimiter_hint(text: str, path: Path, delimiter: str, names: list[str], line_no: int) -> str:
    """When the delimiter passed leaves the header one column but another delimiter splits it,
    a sentence saying which one the file seems to use (else "")."""
    guess = _sniff_delimiter(text, path)
    n = text.count(guess)
    if len(names) != 1 or guess == delimiter or n == 0:
        return ""
    return (
        f" The header (line {line_no}) is one column when split at delimiter={delimiter!r}, but "
        f"it holds {n} {guess!r}: the file seems to use {guess!r}. Pass delimiter={guess!r} (on "
        f"the command line --delimiter {guess!r}), or leave the delimiter out to have it guessed."
    )
