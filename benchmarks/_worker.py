"""One whole training process, for the whole-process benchmark: `python -m benchmarks._worker`.

`eqx`: import eqx_ffn (and so JAX), optionally turn on the persistent compilation cache, load the
lecture's data and initial parameters, `fit(optimizer=..., steps=...)`, report. `sklearn`: the
same with `MLPRegressor`. Prints one JSON line: the seconds spent importing, loading the data,
fitting (and compiling), and the final training MSE. The parent times the whole process.
Imports nothing it does not need, so each library pays only its own import.
"""

from __future__ import annotations

import argparse
import json
import time

T0 = time.perf_counter()


def _eqx(args: argparse.Namespace) -> dict:
    import eqx_ffn

    if args.cache:
        eqx_ffn.enable_compilation_cache(args.cache)
    t_import = time.perf_counter()
    import numpy as np

    data = np.load(args.data)
    params = {k: data[k] for k in ("W1", "b1", "W2", "b2")}
    x, y = data["x"], data["y"]
    model = eqx_ffn.FFN.from_params(params)
    t_data = time.perf_counter()
    kwargs = {"optimizer": args.optimizer, "steps": args.steps, "progress": False}
    if args.optimizer != "lbfgs":
        kwargs["learning_rate"] = 1e-2
    _, hist = eqx_ffn.fit(model, x, y, **kwargs)
    t_fit = time.perf_counter()
    return {
        "import_s": t_import - T0,
        "data_s": t_data - t_import,
        "fit_s": t_fit - t_data,
        "compile_s": hist.compile_time,
        "run_s": hist.run_time,
        "steps": hist.steps,
        "mse": float(hist.final_loss),
    }


def _sklearn(args: argparse.Namespace) -> dict:
    import numpy as np
    import sklearn.neural_network  # noqa: F401  (timed as the import)

    from . import _sklearn

    t_import = time.perf_counter()
    data = np.load(args.data)
    params = {k: data[k] for k in ("W1", "b1", "W2", "b2")}
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    est = _sklearn.make("lbfgs", params, x, y, args.steps)
    t_data = time.perf_counter()
    seconds, mse, iters, _ = _sklearn.train(est, x, y)
    t_fit = time.perf_counter()
    return {
        "import_s": t_import - T0,
        "data_s": t_data - t_import,  # loading, and building the estimator at the lecture init
        "fit_s": t_fit - t_data,
        "run_s": seconds,
        "steps": iters,
        "mse": mse,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=("eqx", "sklearn"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    out = _eqx(args) if args.which == "eqx" else _sklearn(args)
    out["inside_s"] = time.perf_counter() - T0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
