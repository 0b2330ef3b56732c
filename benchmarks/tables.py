"""Issue 21: reading a large CSV table in a fresh process.

A 500,000 x 11 table of numbers (`%.6g`, 50 MB, one header row), written once by the parent.
Each measurement is a fresh Python process timed from its parent (Python start, imports, the
first read): `eqx_ffn.datasets.read_table(path)` (the last column as `y`, the others as `x`),
and, as the reference, pandas' own `pandas.read_csv(path)` (its C parser, one thread) with
nothing else. The processes run interleaved; the target is judged on the fastest process (noise
only adds time): under 0.6 s.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from . import peers
from ._common import Mode, median_runs, python_process
from ._report import Check, Table

TITLE = "Reading a 500,000 x 11 CSV in a fresh process (issue 21)"
ROWS, COLUMNS, TARGET_S = 500_000, 11, 0.6

_EQX = """
import json, time
t0 = time.perf_counter()
from eqx_ffn.datasets import read_table
t1 = time.perf_counter()
table = read_table({path!r})
t2 = time.perf_counter()
assert table.x.shape == ({rows}, {columns} - 1), table.x.shape
print(json.dumps({{"import_s": t1 - t0, "read_s": t2 - t1}}))
"""

_PANDAS = """
import json, time
t0 = time.perf_counter()
import pandas
t1 = time.perf_counter()
frame = pandas.read_csv({path!r})
t2 = time.perf_counter()
assert frame.shape == ({rows}, {columns}), frame.shape
print(json.dumps({{"import_s": t1 - t0, "read_s": t2 - t1}}))
"""


def _write(path: Path, repeat: int = 1) -> int:
    """The table, written once; its size in bytes. `repeat` > 1 (a quick run): the first
    `ROWS // repeat` rows formatted once and written `repeat` times (formatting is the slow part)."""
    values = np.random.default_rng(0).standard_normal((ROWS // repeat, COLUMNS))
    header = ",".join(f"c{j}" for j in range(COLUMNS))
    if repeat == 1:
        np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.6g")
        return path.stat().st_size
    body = io.StringIO()
    np.savetxt(body, values, delimiter=",", fmt="%.6g")
    path.write_text(header + "\n" + body.getvalue() * repeat)
    return path.stat().st_size


def run(mode: Mode) -> list[Table]:
    repeats = 2 if mode.quick else 5
    with tempfile.TemporaryDirectory(prefix="eqx_ffn_csv_") as tmp:
        path = Path(tmp) / "table.csv"
        size = _write(path, 10 if mode.quick else 1)
        fill = {"path": str(path), "rows": ROWS, "columns": COLUMNS}
        start = min(python_process(["-c", "pass"])[0] for _ in range(2))
        codes = {"eqx_ffn.datasets.read_table": _EQX.format(**fill)}
        if peers.optional("pandas") is not None:
            codes["pandas.read_csv alone (the reference)"] = _PANDAS.format(**fill)
        runs: dict[str, list] = {label: [] for label in codes}
        for _ in range(repeats):  # interleaved
            for label, code in codes.items():
                runs[label].append(python_process(["-c", code]))
    t = Table(
        f"{ROWS:,} x {COLUMNS} numbers, {size / 1e6:.0f} MB; fresh processes, fastest of {repeats}",
        ["process", "total", "fastest", "imports", "first read"],
        formats="tssss",
    )
    for label, r in ((label, median_runs(v)) for label, v in runs.items()):
        t.add(label, r["process_s"], r["process_min_s"], r["import_s"], r["read_s"])
    fastest = min(w for w, _ in runs["eqx_ffn.datasets.read_table"])
    t.notes.append(
        f"Timed from the parent: Python's start, the imports and the first read (a bare `python "
        f"-c pass` takes {start:.2f} s). *Imports* and *first read*: medians the processes "
        "report. `read_table` imports NumPy and pandas, not JAX; pandas parses the body in "
        "parts, one thread per core."
        + (" Quick run: the table is its first 50,000 rows written 10 times." if mode.quick else "")
    )
    t.checks.append(
        Check(
            f"a {ROWS:,} x {COLUMNS} CSV read in a fresh process in under {TARGET_S} s",
            fastest,
            f"< {TARGET_S} s",
            fastest < TARGET_S,
            21,
            f"fastest of {repeats} fresh processes, timed from the parent",
        )
    )
    return [t]
