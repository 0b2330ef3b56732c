"""One whole process, for the whole-process benchmarks: `python -m benchmarks._worker WHICH`.

- `eqx`: import eqx_ffn (and so JAX), optionally turn on the persistent compilation cache, load
  the lecture's data and initial parameters, `fit(optimizer=..., steps=...)`, report. `sklearn`:
  the same with `MLPRegressor`. Their JSON: the seconds spent importing, loading the data,
  fitting (and compiling), and the final training MSE.
- `first_eqx` / `first_sklearn` (the time-to-first-result case): a saved train/test split of a
  scikit-learn table; standardised inputs, one hidden layer of 64 ReLU units, Adam with early
  stopping on the last 10% of the training rows, then predict the test rows. Their JSON: the
  seconds of each stage and the test quality (R^2 or accuracy).
- `ffn`: import eqx_ffn and JAX, then `FFN(1, 1, (16,), key=jax.random.key(0))`.

Each prints one JSON line; the parent times the whole process. Imports nothing it does not need,
so each library pays only its own import.
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

    from .peers import sklearn_lecture, sklearn_train

    t_import = time.perf_counter()
    data = np.load(args.data)
    params = {k: data[k] for k in ("W1", "b1", "W2", "b2")}
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    est = sklearn_lecture("lbfgs", params, x, y, args.steps)
    t_data = time.perf_counter()
    seconds, mse, iters, _ = sklearn_train(est, x, y)
    t_fit = time.perf_counter()
    return {
        "import_s": t_import - T0,
        "data_s": t_data - t_import,  # loading, and building the estimator at the lecture init
        "fit_s": t_fit - t_data,
        "run_s": seconds,
        "steps": iters,
        "mse": mse,
    }


# -- time to first result (benchmarks.first_result) -------------------------------------------

HIDDEN = 64  # one hidden layer, as MLPRegressor/MLPClassifier(hidden_layer_sizes=(64,))
# scikit-learn's MLP defaults, which the eqx_ffn process mirrors: Adam at 1e-3, mini-batches of
# min(200, N), at most 200 epochs, validation_fraction=0.1, n_iter_no_change=10 (epochs)
LEARNING_RATE = 1e-3
BATCH = 200
MAX_EPOCHS = 200
VALIDATION_FRACTION = 0.1
PATIENCE = 10
SEED = 0


def _quality(task: str, y_true, y_pred) -> float:
    """Test R^2 (regression) or accuracy (classification), the same NumPy formula for both."""
    import numpy as np

    y_true = np.asarray(y_true)
    if task == "classification":
        return float(np.mean(np.asarray(y_pred).ravel() == y_true))
    y_pred = np.asarray(y_pred, np.float64).ravel()
    ss_res = np.sum((y_true - y_pred) ** 2)
    return float(1.0 - ss_res / np.sum((y_true - y_true.mean()) ** 2))


def _xla_counter():
    """`() -> (compiles, seconds, what)` of every XLA compile from now on (JAX's monitoring
    events); `what` names the slowest ones, e.g. `"jit(draw) 0.41 s, jit(stage) 0.01 s"`."""
    import jax

    seen: list[tuple[float, str]] = []

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append((duration, str(kw.get("fun_name", "?"))))

    register = getattr(jax.monitoring, "register_event_duration_secs_listener", None)
    if register is None:
        return lambda: (None, None, None)
    register(listen)

    def report():
        top = sorted(seen, reverse=True)[:6]
        what = ", ".join(f"{name} {s:.2f} s" for s, name in top)
        return len(seen), sum(s for s, _ in seen), what

    return report


def _first_eqx(args: argparse.Namespace) -> dict:
    import jax
    import jax.random as jr
    import numpy as np

    import eqx_ffn

    if args.cache:
        eqx_ffn.enable_compilation_cache(args.cache)
    # the lazy namespace loads a module on first use: touch what this process uses
    fit, predict, ffn, around = (
        eqx_ffn.fit,
        eqx_ffn.predict,
        eqx_ffn.FFN,
        eqx_ffn.Standardized.around,
    )
    xla = _xla_counter()
    t_import = time.perf_counter()
    data = np.load(args.data)
    task = str(data["task"])
    x, y, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    classification = task == "classification"
    x = x.astype(np.float32)
    y = y.astype(np.int32) if classification else y.astype(np.float32)
    n_val = max(1, round(VALIDATION_FRACTION * x.shape[0]))
    x_fit, y_fit, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    t_data = time.perf_counter()
    out_size = int(data["n_classes"]) if classification else 1
    net = ffn(
        x.shape[1], out_size, (HIDDEN,), activation="relu", init="glorot_uniform", key=jr.key(SEED)
    )
    model = around(net, x_fit, None if classification else y_fit)
    jax.block_until_ready(model)
    t_model = time.perf_counter()
    batch = min(BATCH, x_fit.shape[0])
    per_epoch = -(-x_fit.shape[0] // batch)
    model, hist = fit(
        model,
        x_fit,
        y_fit,
        optimizer="adam",
        learning_rate=LEARNING_RATE,
        steps=MAX_EPOCHS * per_epoch,
        batch_size=batch,
        loss="softmax_cross_entropy" if classification else "mse",
        validation=(x_val, y_val),
        eval_every=per_epoch,
        patience=PATIENCE,
        key=jr.key(SEED),
        progress=False,
    )
    jax.block_until_ready(model)
    t_fit = time.perf_counter()
    pred = np.asarray(predict(model, x_test.astype(np.float32)))
    pred = pred.argmax(axis=1) if classification else pred[:, 0]
    t_predict = time.perf_counter()
    compiles, compile_s, what = xla()
    return {
        "import_s": t_import - T0,
        "data_s": t_data - t_import,
        "model_s": t_model - t_data,
        "fit_s": t_fit - t_model,
        "compile_s": hist.compile_time,
        "predict_s": t_predict - t_fit,
        "xla_compiles": compiles,
        "xla_compile_s": compile_s,
        "slowest_compiles": what,
        "steps": hist.steps,
        "epochs": hist.steps / per_epoch,
        "stop_reason": hist.stop_reason,
        "quality": _quality(task, y_test, pred),
    }


def _first_sklearn(args: argparse.Namespace) -> dict:
    import warnings

    import numpy as np
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t_import = time.perf_counter()
    data = np.load(args.data)
    task = str(data["task"])
    x, y, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    t_data = time.perf_counter()
    kw = {"hidden_layer_sizes": (HIDDEN,), "early_stopping": True, "random_state": SEED}
    if task == "classification":
        est = make_pipeline(StandardScaler(), MLPClassifier(**kw))
    else:  # targets standardised too, as eqx_ffn's Standardized.around(net, x, y) does
        est = make_pipeline(
            StandardScaler(),
            TransformedTargetRegressor(MLPRegressor(**kw), transformer=StandardScaler()),
        )
    t_model = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y)
    t_fit = time.perf_counter()
    pred = est.predict(x_test)
    t_predict = time.perf_counter()
    last = est[-1]
    mlp = getattr(last, "regressor_", last)
    return {
        "import_s": t_import - T0,
        "data_s": t_data - t_import,
        "model_s": t_model - t_data,
        "fit_s": t_fit - t_model,
        "predict_s": t_predict - t_fit,
        "epochs": int(mlp.n_iter_),
        "quality": _quality(task, y_test, pred),
    }


def _ffn(args: argparse.Namespace) -> dict:
    import jax
    import jax.random as jr

    import eqx_ffn

    if args.cache:
        eqx_ffn.enable_compilation_cache(args.cache)
    ffn = eqx_ffn.FFN  # the lazy namespace loads eqx_ffn.model._ffn (and equinox) here
    xla = _xla_counter()
    t_import = time.perf_counter()
    model = ffn(1, 1, (16,), key=jr.key(0))
    jax.block_until_ready(model)
    t_model = time.perf_counter()
    compiles, compile_s, what = xla()
    second = ffn(1, 1, (16,), key=jr.key(1))
    jax.block_until_ready(second)
    t_second = time.perf_counter()
    return {
        "import_s": t_import - T0,
        "model_s": t_model - t_import,
        "xla_compiles": compiles,
        "xla_compile_s": compile_s,
        "compiled": what,
        "second_model_s": t_second - t_model,
        "platform": jax.devices()[0].platform,
    }


WORKERS = {
    "eqx": _eqx,
    "sklearn": _sklearn,
    "first_eqx": _first_eqx,
    "first_sklearn": _first_sklearn,
    "ffn": _ffn,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=tuple(WORKERS))
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    out = WORKERS[args.which](args)
    out["inside_s"] = time.perf_counter() - T0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
