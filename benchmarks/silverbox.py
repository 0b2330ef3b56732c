"""Silverbox (issue 23): the recipe of `tests/sysid/recipe_silverbox.py` in the full run.

`NeuralStateSpace(1, 4, 1, (64, 64), linear=True, activation="silu", init="glorot_normal")` (a
linear bypass beside a SiLU network: it extrapolates where the arrow record leaves the training
amplitude) fitted by truncated simulation (windows of 100 samples, 64 a step, each started by an
encoder over the 50 samples before it) with Adam in three stages of falling learning rate, each
stopped early on the free-run simulation of the last 10% of the training record, within 540 s of
fitting; scored by the free-run test RMSE on the three official test records after their
50-sample initialisation windows. The data: T. Wigren and J.
Schoukens, "Three free data sets for development and benchmarking in nonlinear system
identification", European Control Conference 2013 (`SNLS80mV.csv`, found at
`$EQX_FFN_SILVERBOX` or `../shared/data/`). A quick run does not fit (n/a): the recipe's
figures need its whole budget.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._common import Mode
from ._report import Check, Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sysid"))
import recipe_silverbox as R

TITLE = "Silverbox: truncated simulation with an encoder (issue 23)"
GRU = {"multisine": 1.49, "arrow_full": 2.80, "arrow_no_extrapolation": 0.95}
BUDGET = 600.0  # seconds of fitting the issue allows


def _data() -> Path | None:
    env = os.environ.get("EQX_FFN_SILVERBOX")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "SNLS80mV.csv")
    return next((p for p in candidates if p.is_file()), None)


def run(mode: Mode) -> list[Table]:
    t = Table(
        "Free-run test RMSE (mV) after the 50-sample window",
        ["test record", "eqx_ffn", "target", "GRU (REFERENCE_SYSID)"],
        formats="tggg",
    )
    path = _data()
    if mode.quick or path is None:
        why = "full run only" if mode.quick else "SNLS80mV.csv not found"
        for name, target in R.TARGETS.items():
            t.checks.append(Check(f"Silverbox {name}: test RMSE", None, f"<= {target} mV", None,
                                  23, why))  # fmt: skip
        return [t]
    out = R.recipe(str(path), 540.0)
    for name, target in R.TARGETS.items():
        mv = out["mv"][name]
        t.add(name, mv, target, GRU[name])
        t.checks.append(Check(f"Silverbox {name}: test RMSE", mv, f"<= {target} mV",
                              mv <= target, 23, "one fit, seed 0"))  # fmt: skip
    seconds = float(out["seconds"])
    t.checks.append(Check("Silverbox fitting time", seconds, f"<= {BUDGET:.0f} s",
                          seconds <= BUDGET, 23, "2 CPU cores"))  # fmt: skip
    t.notes.append(f"Model: {R.MODEL}; settings: {R.SETTINGS}; stages (learning rate, share "
                   f"of the budget) {R.STAGES}; fitting took {seconds:.0f} s.")  # fmt: skip
    return [t]
