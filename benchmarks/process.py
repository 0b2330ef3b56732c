"""Case 1, whole process: Python start + imports + data + L-BFGS fit to MSE <= 1e-4.

Each measurement is a fresh `python -m benchmarks._worker` process, timed from the parent
(`subprocess.run`, `sys.executable`). Three ways:

- eqx_ffn, cold: a fresh, empty persistent compilation cache folder (so it compiles, and writes
  the cache);
- eqx_ffn, warm: a second process on the same folder (loads the compiled program);
- scikit-learn `MLPRegressor(solver="lbfgs")`.

Every process loads the same saved data and initial parameters, and runs the fewest L-BFGS
iterations that reach MSE <= 1e-4 with its own library (found in this process first: from
`History.loss` for eqx_ffn, by refitting for scikit-learn), so the process does what it takes to
reach the target and no more. The MSE each process reached is reported.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import _sklearn
from ._common import Mode, lecture_data, median_runs, optional, python_process
from .lecture import lbfgs_steps_to

TARGET = 1e-4


def run(mode: Mode) -> dict[str, Any]:
    x, y, params, _ = lecture_data()
    eqx_steps, eqx_mse_in_process = lbfgs_steps_to(TARGET)
    result: dict[str, Any] = {
        "title": "Whole process to MSE <= 1e-4 with L-BFGS (python start + import + data + fit)",
        "target_mse": TARGET,
        "eqx_ffn_steps": eqx_steps,
    }
    pn = {k: np.asarray(v, np.float32) for k, v in params.items()}
    xn, yn = np.asarray(x, np.float32), np.asarray(y, np.float32)
    sk_iters = None
    if optional("sklearn") is not None:
        sk_iters, _ = _sklearn.lbfgs_iterations_to(
            {k: v.astype(np.float64) for k, v in pn.items()},
            xn.astype(np.float64),
            yn.astype(np.float64),
            TARGET,
            cap=8192,
            refine=True,
        )
    result["sklearn_iterations"] = sk_iters
    with tempfile.TemporaryDirectory(prefix="eqx_ffn_bench_") as tmp:
        data = Path(tmp) / "lecture.npz"
        np.savez(data, x=xn, y=yn, **pn)
        result["python_start_s"] = statistics.median(
            python_process(["-c", "pass"])[0] for _ in range(3)
        )
        result["import_jax_process_s"] = python_process(["-c", "import jax; jax.devices()"])[0]
        cold, warm = [], []
        if eqx_steps is None:
            result["eqx_ffn_cold"] = {"skipped": f"fit never reached MSE <= {TARGET:g}"}
        else:
            for r in range(mode.slow_repeats):
                cache = Path(tmp) / f"cache{r}"
                args = [
                    "-m",
                    "benchmarks._worker",
                    "eqx",
                    "--data",
                    str(data),
                    "--steps",
                    str(eqx_steps),
                    "--cache",
                    str(cache),
                ]
                cold.append(python_process(args))
                warm.append(python_process(args))
            result["eqx_ffn_cold"] = median_runs(cold)
            result["eqx_ffn_warm"] = median_runs(warm)
        if sk_iters is None:
            reason = "not installed" if optional("sklearn") is None else "never reached the target"
            result["sklearn"] = {"skipped": f"scikit-learn {reason}"}
        else:
            args = [
                "-m",
                "benchmarks._worker",
                "sklearn",
                "--data",
                str(data),
                "--steps",
                str(sk_iters),
            ]
            result["sklearn"] = median_runs(
                [python_process(args) for _ in range(mode.slow_repeats)]
            )
    cold_s = result.get("eqx_ffn_cold", {}).get("process_s")
    warm_s = result.get("eqx_ffn_warm", {}).get("process_s")
    sk_s = result.get("sklearn", {}).get("process_s")
    result["ratios"] = {
        "cold_over_warm": None if not (cold_s and warm_s) else cold_s / warm_s,
        "eqx_cold_over_sklearn": None if not (cold_s and sk_s) else cold_s / sk_s,
        "eqx_warm_over_sklearn": None if not (warm_s and sk_s) else warm_s / sk_s,
    }
    result["eqx_ffn_in_process_mse_at_steps"] = eqx_mse_in_process
    return result
