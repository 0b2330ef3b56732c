"""The nonlinear system-identification benchmarks' measured records, with their official splits.

- `cascaded_tanks(path=None)`: M. Schoukens, P. Mattson, T. Wigren, J.-P. Noël, "Cascaded tanks
  benchmark combining soft and hard nonlinearities", Workshop on Nonlinear System Identification
  Benchmarks, 2016. The 30 KB file ships with the package (`eqx_ffn/sysid/data/`, see the README
  there for its citation).
- `silverbox(path)`: T. Wigren and J. Schoukens, "Three free data sets for development and
  benchmarking in nonlinear system identification", European Control Conference 2013
  (`SNLS80mV.csv`, not shipped: pass its path).

Both come from nonlinearbenchmark.org; cite them as their authors ask wherever they are used.
Each test record carries its state-initialisation window (`Experiment.n_init`, 50 samples): its
first samples may be used with the measured output to estimate the initial state, and are not
scored.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .._validation import check_regular_file
from ._experiment import Experiment

__all__ = ["cascaded_tanks", "silverbox"]

N_INIT = 50
"""The benchmarks' state-initialisation window (samples)."""

_TANKS = Path(__file__).resolve().parent / "data" / "cascaded_tanks.csv"

SILVERBOX_ARROW = (100, 40575)
SILVERBOX_ARROW_NO_EXTRAPOLATION = 32000
SILVERBOX_MULTISINE = (40650, 127400)


def read_columns(path: str | os.PathLike[str], what: str, needed: tuple[str, ...]) -> dict:
    """The named columns of a benchmark CSV (header row, trailing commas, padding rows), and
    the header's names under `"__header__"`; empty cells are skipped."""
    check_regular_file(path, what)
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = [h.strip() for h in next(rows, [])]
        missing = [n for n in needed if n not in header]
        if missing:
            raise ValueError(f"{what} {path} lacks the columns {missing}; its header is {header}.")
        index = [header.index(n) for n in needed]
        columns: dict[str, list[float]] = {n: [] for n in needed}
        for line, row in enumerate(rows, start=2):
            cells = [row[i].strip() if i < len(row) else "" for i in index]
            if not any(cells):
                continue  # padding rows
            for name, cell in zip(needed, cells, strict=True):
                if cell:
                    try:
                        columns[name].append(float(cell))
                    except ValueError:
                        raise ValueError(
                            f"{what} {path}, line {line}: column {name!r} holds {cell!r}, not a "
                            "number."
                        ) from None
    return {**{n: np.asarray(v) for n, v in columns.items()}, "__header__": header}


def cascaded_tanks(path: str | os.PathLike[str] | None = None) -> tuple[Experiment, Experiment]:
    """The Cascaded Tanks benchmark's `(train, test)` records (1024 samples each, Ts = 4 s).

    **Arguments:**

    - `path`: the benchmark's CSV (columns `uEst`, `uVal`, `yEst`, `yVal`, `Ts`); default the
      copy shipped with the package.

    **Returns:** `(train, test)`: `train` from (`uEst`, `yEst`), `test` from (`uVal`, `yVal`)
    with `n_init=50`. The benchmark's score is the RMSE in volts of the free-run simulation of
    `test`, its initial state estimated from the first 50 samples, over samples 50-1023.
    """
    cols = read_columns(path or _TANKS, "Cascaded Tanks file", ("uEst", "uVal", "yEst", "yVal"))
    ts = 4.0
    train = Experiment(cols["uEst"], cols["yEst"], ts, "cascaded_tanks train")
    test = Experiment(cols["uVal"], cols["yVal"], ts, "cascaded_tanks test", n_init=N_INIT)
    return train, test


def silverbox(path: str | os.PathLike[str]) -> tuple[Experiment, dict[str, Experiment]]:
    """The Silverbox benchmark's training record and its three official test records.

    **Arguments:**

    - `path`: the benchmark's `SNLS80mV.csv` (columns `V1` input, `V2` output, volts).

    **Returns:** `(train, tests)`: `train` is the first 75% of the multisine part (samples
    40650-127399; cut it chronologically with `train.split` for a validation record); `tests`
    maps `"multisine"` (that part's last 25%), `"arrow_full"` (samples 100-40574) and
    `"arrow_no_extrapolation"` (the arrow's first 32,000 samples) to records with `n_init=50`.
    Scores are RMSEs in millivolts of the free-run simulation after that window.
    """
    cols = read_columns(path, "Silverbox file", ("V1", "V2"))
    u, y = cols["V1"], cols["V2"]
    if len(u) != len(y) or len(u) < SILVERBOX_MULTISINE[1]:
        raise ValueError(
            f"Silverbox file {path} must hold at least {SILVERBOX_MULTISINE[1]} samples of V1 "
            f"and V2; got {len(u)} and {len(y)}."
        )
    ts = 1 / 610.35
    start, stop = SILVERBOX_MULTISINE
    cut = start + int(0.75 * (stop - start))
    a0, a1 = SILVERBOX_ARROW
    train = Experiment(u[start:cut], y[start:cut], ts, "silverbox train")
    tests = {
        "multisine": Experiment(u[cut:stop], y[cut:stop], ts, "silverbox multisine", n_init=N_INIT),
        "arrow_full": Experiment(u[a0:a1], y[a0:a1], ts, "silverbox arrow full", n_init=N_INIT),
        "arrow_no_extrapolation": Experiment(
            u[a0 : a0 + SILVERBOX_ARROW_NO_EXTRAPOLATION],
            y[a0 : a0 + SILVERBOX_ARROW_NO_EXTRAPOLATION],
            ts,
            "silverbox arrow, no extrapolation",
            n_init=N_INIT,
        ),
    }
    return train, tests
