"""Issue 10: time to a first result in a fresh process, on two scikit-learn tables.

Each measurement is a fresh `python -m benchmarks._worker` process, timed from the parent: Python
start, imports, loading the data, building the model, fitting (compiling included), predicting
the test rows. One fixed split per table (`train_test_split(test_size=0.25, random_state=0)`,
saved once by the parent so that every process loads the same rows), for
`load_diabetes` (regression, test R^2) and `load_digits` (classification, test accuracy).

- eqx_ffn: `Standardized.around(FFN(d, k, (64,), activation="relu", init="glorot_uniform"), x,
  y)` (targets standardised for the regression), Adam at 1e-3 on mini-batches of 200, at most
  200 epochs, validation on the last 10% of the training rows once an epoch, `patience=10`:
  scikit-learn's MLP defaults, so both do the same work. With the persistent compilation
  cache cold (a fresh temporary folder) and warm (the same folder again, a second process).
- scikit-learn: `make_pipeline(StandardScaler(), MLPRegressor/MLPClassifier(
  hidden_layer_sizes=(64,), early_stopping=True, random_state=0))`, the regressor's targets
  standardised with `TransformedTargetRegressor` (without it scikit-learn needs ~1000 epochs and
  scores lower on this table: the stronger baseline is used).

The processes run interleaved (eqx cold, eqx warm, scikit-learn, per table and repeat); the
targets are judged on the fastest process of each (noise only adds time). Targets: test quality
no more than 0.02 below scikit-learn's; wall time within 2.0x scikit-learn's with the cache
cold, 1.2x warm (issue 21; issue 10 had asked for 2.5x and 1.5x).

Also `FFN(1, 1, (16,), key=jax.random.key(0))` in a fresh process: seconds after the imports
(target 0.15 s) without a persistent cache, and with a warm one; the import time itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import peers
from ._common import Mode, attempt, median_runs, python_process, ratio
from ._report import Check, Table

TITLE = "Time to first result in a fresh process (issues 10, 21)"
DATASETS = {"diabetes": "regression", "digits": "classification"}
FULL_ONLY = ("diabetes",)  # a quick run's fresh processes: digits (the larger fit) and FFN
QUALITY_MARGIN, COLD_TARGET, WARM_TARGET, FFN_TARGET = 0.02, 2.0, 1.2, 0.15
WORKER = ["-m", "benchmarks._worker"]


def _save_split(name: str, path: Path) -> dict[str, Any]:
    """Load a scikit-learn table, split it once, save it for the workers; its shape."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    task = DATASETS[name]
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        task=np.array(task),
        n_classes=np.array(len(np.unique(y)) if task == "classification" else 0),
    )
    return {"n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0]), "d": x.shape[1]}


def _table(mode: Mode, name: str, tmp: Path) -> Table:
    data = tmp / f"{name}.npz"
    shape = _save_split(name, data)
    runs: dict[str, list] = {"cold": [], "warm": [], "sklearn": []}
    for r in range(mode.slow_repeats):  # interleaved: eqx cold, eqx warm, scikit-learn
        args = [
            *WORKER,
            "first_eqx",
            "--data",
            str(data),
            "--cache",
            str(tmp / f"cache_{name}_{r}"),
        ]
        runs["cold"].append(python_process(args))
        runs["warm"].append(python_process(args))
        runs["sklearn"].append(python_process([*WORKER, "first_sklearn", "--data", str(data)]))
    cold, warm, sk = (median_runs(v) for v in runs.values())
    metric = "test R^2" if DATASETS[name] == "regression" else "test accuracy"
    t = Table(
        f"{name} ({DATASETS[name]}; {shape['n_train']} training rows, {shape['n_test']} test rows, "
        f"{shape['d']} features; {metric})",
        ["process", "total", "fastest", "imports", "data", "model", "fit", "of which compile",
         "predict", "epochs", "quality"],
        formats="tssssssssgg",
    )  # fmt: skip
    for label, r in (("eqx_ffn, persistent cache cold", cold),
                     ("eqx_ffn, persistent cache warm", warm),
                     ("scikit-learn, early_stopping=True", sk)):  # fmt: skip
        t.add(label, r["process_s"], r["process_min_s"], *(r.get(k) for k in (
            "import_s", "data_s", "model_s", "fit_s", "compile_s", "predict_s", "epochs", "quality")))  # fmt: skip
    t.checks = _checks(name, cold["quality"] - sk["quality"],
                       ratio(cold["process_min_s"], sk["process_min_s"]),
                       ratio(warm["process_min_s"], sk["process_min_s"]),
                       f"fastest of {cold['runs']} interleaved processes each; quality eqx_ffn "
                       f"{cold['quality']:.4f}, scikit-learn {sk['quality']:.4f}")  # fmt: skip
    t.notes.append(f"eqx_ffn cold: {cold.get('xla_compiles')} XLA compiles "
                   f"({cold.get('xla_compile_s', 0):.2f} s; slowest: {cold.get('slowest_compiles')}).")  # fmt: skip
    return t


def _checks(name: str, gap, cold, warm, how: str, judged: bool = True) -> list[Check]:
    """The table's three targets (a value None, nothing measured, is a FAIL; not `judged`: n/a)."""
    metric = "test R^2" if DATASETS[name] == "regression" else "test accuracy"
    checks = [
        Check(f"{name}: eqx_ffn {metric} no more than {QUALITY_MARGIN} below scikit-learn's", gap,
              f">= -{QUALITY_MARGIN}", gap is not None and gap >= -QUALITY_MARGIN, 10, how),
        Check(f"{name}: fresh process, cache cold, within {COLD_TARGET}x scikit-learn's", cold,
              f"<= {COLD_TARGET}", cold is not None and cold <= COLD_TARGET, 21, how),
        Check(f"{name}: fresh process, cache warm, within {WARM_TARGET}x scikit-learn's", warm,
              f"<= {WARM_TARGET}", warm is not None and warm <= WARM_TARGET, 21, how),
    ]  # fmt: skip
    for c in checks if not judged else ():
        c.verdict = None
    return checks


def _ffn(mode: Mode, tmp: Path) -> Table:
    """`FFN(1, 1, (16,))` in fresh processes, without a persistent cache and with a warm one."""
    plain = [python_process([*WORKER, "ffn"]) for _ in range(max(1, mode.slow_repeats))]
    args = [*WORKER, "ffn", "--cache", str(tmp / "cache_ffn")]
    if not mode.quick:  # with a warm persistent cache: the full mode
        python_process(args)  # fills the cache
    cached = [] if mode.quick else [python_process(args) for _ in range(mode.slow_repeats)]
    t = Table("`FFN(1, 1, (16,), key=jax.random.key(0))` in a fresh process (medians)",
              ["process", "model after imports", "fastest", "XLA compiles", "their seconds",
               "a second model", "imports", "whole process"], formats="tssgssss")  # fmt: skip
    fastest = min(r["model_s"] for _, r in plain)
    for label, runs in (("no persistent cache", plain), ("persistent cache warm", cached)):
        if not runs:
            continue
        r = median_runs(runs)
        t.add(label, r["model_s"], min(x["model_s"] for _, x in runs), r.get("xla_compiles"),
              r.get("xla_compile_s"), r["second_model_s"], r["import_s"], r["process_s"])  # fmt: skip
    t.notes.append(f"Slowest compiles of the last process: {plain[-1][1].get('compiled') or '—'}.")
    t.checks.append(Check(
        f"FFN(1, 1, (16,), key=...) in a fresh process within {FFN_TARGET} s after imports",
        fastest, f"<= {FFN_TARGET} s", fastest <= FFN_TARGET, 10,
        f"fastest of {len(plain)} processes, no persistent cache",
    ))  # fmt: skip
    return t


def run(mode: Mode) -> list[Table]:
    if peers.optional("sklearn") is None:
        return [Table("scikit-learn not installed", [])]
    tables = []
    with tempfile.TemporaryDirectory(prefix="eqx_ffn_first_") as tmp_name:
        tmp = Path(tmp_name)
        start = python_process(["-c", "pass"])[0]
        for name in DATASETS:
            if mode.quick and name in FULL_ONLY:
                tables.append(Table(f"{name}: full run only", [], checks=_checks(
                    name, None, None, None, "full run only: a quick run measures digits", False)))  # fmt: skip
                continue
            table, error = attempt(lambda name=name: _table(mode, name, tmp))
            tables.append(table or Table(f"{name}: failed: {error}", [], checks=_checks(
                name, None, None, None, f"failed: {error}")))  # fmt: skip
        table, error = attempt(lambda: _ffn(mode, tmp))
        tables.append(table or Table(f"FFN: failed: {error}", [], checks=[Check(
            f"FFN(1, 1, (16,), key=...) in a fresh process within {FFN_TARGET} s after imports",
            None, f"<= {FFN_TARGET} s", False, 10, f"failed: {error}")]))  # fmt: skip
    first = next((t for t in tables if t.rows), tables[0])
    first.notes.insert(0, f"Fresh processes timed from their parent; a bare `python -c pass` "
                              f"takes {start:.2f} s. *Total*: median process; *fastest*: the "
                              "figure the targets use.")  # fmt: skip
    return tables
