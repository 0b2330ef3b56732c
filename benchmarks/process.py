"""The whole process: Python start + imports + data + L-BFGS fit to MSE <= 1e-4.

Each measurement is a fresh `python -m benchmarks._worker` process, timed from the parent. Three
ways: eqx_ffn with a fresh, empty persistent compilation cache folder (cold: it compiles and
writes the cache), eqx_ffn again on that folder (warm: it loads the program), and scikit-learn's
`MLPRegressor(solver="lbfgs")`. Every process loads the same saved data and initial parameters
and runs the fewest L-BFGS iterations that reach MSE <= 1e-4 with its own library (found here
first: from `History.loss` for eqx_ffn, by refits for scikit-learn). The cold and warm pair is
also the persistent cache's figure (`eqx_ffn.enable_compilation_cache()`).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from . import peers
from ._common import Mode, lecture_data, median_runs, python_process, ratio
from ._report import Table, cell
from .lecture import lbfgs_steps_to

TITLE = "Whole process to MSE <= 1e-4 with L-BFGS (python start + import + data + fit)"
TARGET = 1e-4


def _processes(mode: Mode, tmp: Path, eqx_steps: int | None, sk_iters: int | None):
    data = tmp / "lecture.npz"
    x, y, params = lecture_data()
    np.savez(
        data, x=np.asarray(x), y=np.asarray(y), **{k: np.asarray(v) for k, v in params.items()}
    )
    worker = ["-m", "benchmarks._worker"]
    cold, warm = [], []
    for r in range(mode.slow_repeats if eqx_steps else 0):
        args = [*worker, "eqx", "--data", str(data), "--steps", str(eqx_steps)]
        cold.append(python_process([*args, "--cache", str(tmp / f"cache{r}")]))
        warm.append(python_process([*args, "--cache", str(tmp / f"cache{r}")]))
    args = [*worker, "sklearn", "--data", str(data), "--steps", str(sk_iters)]
    sk = [python_process(args) for _ in range(mode.slow_repeats if sk_iters else 0)]
    return [median_runs(runs) if runs else None for runs in (cold, warm, sk)]


def run(mode: Mode) -> list[Table]:
    x, y, params = lecture_data()
    eqx_steps = lbfgs_steps_to(TARGET)
    sk_iters, sk_label = None, "scikit-learn MLPRegressor(solver='lbfgs')"
    if peers.optional("sklearn") is not None:
        xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
        sk_iters, stop, mse = peers.sklearn_lbfgs_iterations_to(params, xn, yn, TARGET, cap=8192)
        if sk_iters is None:  # its own stopping rule ends it first: run it that far
            sk_iters, sk_label = stop, f"{sk_label}: stops at MSE {mse:.3g} (its own rule)"

    with tempfile.TemporaryDirectory(prefix="eqx_ffn_bench_") as tmp:
        start = statistics.median(python_process(["-c", "pass"])[0]
                                  for _ in range(1 if mode.quick else 3))  # fmt: skip
        import_jax = None if mode.quick else python_process(["-c", "import jax; jax.devices()"])[0]
        cold, warm, sk = _processes(mode, Path(tmp), eqx_steps, sk_iters)
    t = Table(
        "Fresh processes (medians)",
        ["process", "total", "imports", "data + model", "fit", "of which compile", "iterations",
         "final MSE"],
        formats="tsssssgg",
    )  # fmt: skip
    for label, r in (("eqx_ffn, persistent cache cold (empty folder)", cold),
                     ("eqx_ffn, persistent cache warm (second process)", warm),
                     (sk_label, sk)):  # fmt: skip
        if r is None:
            t.add(f"{label}: not run (never reached the target, or not installed)", *[None] * 7)
        else:
            t.add(label, r["process_s"], r.get("import_s"), r.get("data_s"), r.get("fit_s"),
                  r.get("compile_s"), r.get("steps"), r.get("mse"))  # fmt: skip
    get = lambda r, k: None if r is None else r.get(k)  # noqa: E731
    t.notes.append(
        f"A bare `python -c pass` takes {start:.2f} s; `import jax` in a process "
        f"{cell(import_jax, 's')} (full mode). eqx_ffn cold / warm {cell(ratio(get(cold, 'process_s'), get(warm, 'process_s')), 'x')}, "
        f"compile cold / warm {cell(ratio(get(cold, 'compile_s'), get(warm, 'compile_s')), 'x')} (warm: "
        "tracing + lowering + loading the program from JAX's persistent cache, "
        "`eqx_ffn.enable_compilation_cache()`); eqx_ffn cold / scikit-learn "
        f"{cell(ratio(get(cold, 'process_s'), get(sk, 'process_s')), 'x')}, warm / scikit-learn "
        f"{cell(ratio(get(warm, 'process_s'), get(sk, 'process_s')), 'x')}."
    )
    return [t]
