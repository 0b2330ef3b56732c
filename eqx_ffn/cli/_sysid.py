"""`eqx-ffn sysid fit` and `eqx-ffn sysid simulate`: dynamical models from CSV records.

`fit` reads a training record (and optionally a test record) from CSV files, fits a
`sysid.NeuralStateSpace` by whole-record (`simulation`) or truncated simulation, and writes
`model.eqx`, `metrics.json` (RMSE, NRMSE, fit % per output, train and test, the initialisation
window named), `simulation.png` and `loss.png`. `simulate` reads a saved model and a record's
inputs and writes the free-run simulated outputs. Records are used in time order, never
shuffled. A time column (`t`, `time`, `Time`, `time_s`, or `--time-col`) must increase; it or a
sampling-period column (`Ts`, `ts`, `dt`, first row) sets the sampling time. This module needs
no JAX to build its parser (`add_parser`); the commands import what they use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._common import (
    CHECKPOINT_OPTIONS,
    Staging,
    UsageError,
    check_file,
    check_out,
    checkpoint_settings,
    interrupted,
    one_line,
)

TIME_COLUMNS = ("t", "time", "Time", "time_s")
PERIOD_COLUMNS = ("Ts", "ts", "dt")
CRITERIA = ("simulation", "truncated")
SYSID_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lbfgs", "lm", "gauss_newton")


def _names(text: str) -> list[str]:
    out = [p.strip() for p in text.split(",")]
    if not all(out):
        raise argparse.ArgumentTypeError(f"empty column name in {text!r}")
    return out


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {value}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(_count(p) for p in text.split(","))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None


def add_parser(sub: Any) -> None:
    """Register `sysid fit` and `sysid simulate` on the `eqx-ffn` subparsers `sub`."""
    cmd = sub.add_parser(
        "sysid",
        help="fit and simulate dynamical models (neural state space) from CSV records",
        description="Dynamical systems: fit a neural state-space model to a measured record "
        "(columns of inputs u and outputs y over time) by its simulation error, and simulate "
        "a saved one on new inputs.",
    )
    inner = cmd.add_subparsers(dest="sysid_command", metavar="SUBCOMMAND", parser_class=type(cmd))
    fit = inner.add_parser("fit", help="fit a model to a training record (CSV)")
    fit.add_argument("train", help="training record: CSV with a header row")
    fit.add_argument("--u-cols", type=_names, required=True, help="input columns, comma separated")
    fit.add_argument("--y-cols", type=_names, required=True, help="output columns, comma separated")
    fit.add_argument("--test", default=None, help="test record (CSV with the same columns)")
    fit.add_argument("--time-col", default=None, help="the time column (default: recognised)")
    fit.add_argument("--nx", type=_count, default=2, help="state size (default 2)")
    fit.add_argument("--hidden", type=_sizes, default=(16,), help="hidden widths (default 16)")
    fit.add_argument(
        "--linear",
        action="store_true",
        help="add a linear bypass A [x; u] to the state update (NeuralStateSpace(linear=True))",
    )
    fit.add_argument(
        "--criterion",
        choices=CRITERIA,
        default="simulation",
        help="simulation: whole records (default); truncated: windows",
    )
    fit.add_argument("--window", type=_count, default=None, help="truncated: window length")
    fit.add_argument("--batch-size", type=_count, default=64, help="truncated: windows a step")
    fit.add_argument(
        "--n-init",
        type=_count,
        default=50,
        help="initialisation window: the encoder's and the test record's (default 50)",
    )
    fit.add_argument(
        "--optimizer",
        choices=SYSID_OPTIMIZERS,
        default=None,
        help="default lm (simulation) or adam (truncated)",
    )
    fit.add_argument("--steps", type=_count, default=None, help="default 100 (lm) or 2000")
    fit.add_argument("--lr", type=_float, default=None, help="learning rate (default 1e-3)")
    fit.add_argument("--l2", type=_float, default=0.0, help="L2 penalty (default 0)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--out", default="sysid_out", help="output folder (default sysid_out)")
    for flags, kwargs in CHECKPOINT_OPTIONS:
        fit.add_argument(*flags, **kwargs)
    sim = inner.add_parser("simulate", help="simulate a saved model on a record's inputs")
    sim.add_argument("model", help="model file written by `eqx-ffn sysid fit`")
    sim.add_argument("data", help="CSV with the model's input columns (and outputs for --n-init)")
    sim.add_argument(
        "--n-init",
        type=int,
        default=0,
        help="estimate the initial state from "
        "the first K measured samples (needs the output columns; default 0: the "
        "saved initial state)",
    )
    sim.add_argument("--out", default=None, help="CSV to write (default: standard output)")


# -- reading records -----------------------------------------------------------------------------


def _read_record(
    path: str, u_cols, y_cols, time_col, what: str, need_y: bool = True
) -> tuple[Any, Any]:
    """`(Experiment, (time column, times) or None)` from a CSV (without the outputs,
    `((u, None, ts), ...)`); errors name the argument (one line)."""
    from ..sysid._experiment import Experiment
    from ..sysid.datasets import read_columns

    check_file(path, what)
    header = read_columns(path, what, ())
    columns = header["__header__"]
    missing = [c for c in u_cols if c not in columns]
    if missing:
        raise UsageError(f"{what} {path} lacks the input column(s) {missing} (--u-cols)")
    y_missing = [c for c in y_cols if c not in columns]
    if need_y and y_missing:
        raise UsageError(f"{what} {path} lacks the output column(s) {y_missing} (--y-cols)")
    tcol = time_col or next((c for c in TIME_COLUMNS if c in columns), None)
    if time_col is not None and time_col not in columns:
        raise UsageError(f"{what} {path} has no time column {time_col!r} (--time-col)")
    pcol = next((c for c in PERIOD_COLUMNS if c in columns), None)
    names = [*u_cols, *([] if y_missing else y_cols), *([tcol] if tcol else [])]
    names += [pcol] if pcol else []
    cols = read_columns(path, what, tuple(names))
    ts, times = None, None
    if tcol:
        times = cols[tcol]
        if len(times) < 2 or not (times[1:] > times[:-1]).all():
            raise UsageError(f"{what} {path}: the time column {tcol!r} must increase")
        ts = float((times[-1] - times[0]) / (len(times) - 1))
    elif pcol and len(cols[pcol]):
        ts = float(cols[pcol][0])
    import numpy as np

    u = np.stack([cols[c] for c in u_cols], axis=1)
    y = np.stack([cols[c] for c in y_cols], axis=1) if not y_missing else np.zeros((len(u), 0))
    stamps = None if times is None else (tcol, times)
    if y.shape[1] == 0:
        return (u, None, ts), stamps
    try:
        return Experiment(u, y, ts, Path(path).stem), stamps
    except ValueError as e:
        raise UsageError(f"{what} {path}: {one_line(e)}") from None


def _check_fit_args(args, train) -> None:
    if args.criterion == "truncated":
        if args.window is None:
            raise UsageError("--criterion truncated needs --window (the windows' length)")
        if args.n_init >= args.window:
            raise UsageError(f"--n-init {args.n_init} must be smaller than --window {args.window}")
        if args.window + args.n_init > train.T:
            raise UsageError(
                f"--window {args.window} plus --n-init {args.n_init} is longer than the training "
                f"record ({train.T} samples)"
            )
        if args.optimizer in ("lm", "gauss_newton", "lbfgs"):
            raise UsageError(f"--optimizer {args.optimizer} needs --criterion simulation")
    elif args.window is not None:
        raise UsageError("--window applies to --criterion truncated")


# -- fit -----------------------------------------------------------------------------------------


def fit_settings(args) -> dict[str, Any]:
    """`sysid.fit`'s keywords from the command line (the test builds the same call)."""
    optimizer = args.optimizer or ("lm" if args.criterion == "simulation" else "adam")
    steps = args.steps or (100 if optimizer in ("lm", "gauss_newton") else 2000)
    kw: dict[str, Any] = dict(
        criterion=args.criterion, optimizer=optimizer, steps=steps, l2=args.l2
    )
    if optimizer not in ("lm", "gauss_newton", "lbfgs"):
        kw["learning_rate"] = 1e-3 if args.lr is None else args.lr
    elif args.lr is not None:
        raise UsageError(f"--lr does not apply to --optimizer {optimizer}")
    if args.criterion == "truncated":
        kw.update(window=args.window, batch_size=args.batch_size, encoder={"n_init": args.n_init})
    return kw


def scores(model, record, x0, skip: int) -> tuple[dict[str, Any], Any]:
    """RMSE, NRMSE and fit % per output of the free-run simulation from `x0`."""
    from ..sysid import _metrics as m
    from ..sysid._simulate import simulate

    y = simulate(model, record.u, x0)
    return {
        "rmse": m.rmse(record.y, y, skip).tolist(),
        "nrmse": m.nrmse(record.y, y, skip).tolist(),
        "fit_percent": m.fit_percent(record.y, y, skip).tolist(),
        "samples_scored": record.T - skip,
    }, y


def sysid_fit(args) -> int:
    """Run `eqx-ffn sysid fit`."""
    import jax.random as jr

    from ..plot._plot import plot_loss
    from ..sysid._files import save
    from ..sysid._fit import fit
    from ..sysid._models import NeuralStateSpace
    from ..sysid._plot import plot_simulation
    from ..sysid._simulate import estimate_initial_state

    t0 = time.perf_counter()
    check_out(args.out)
    train, _ = _read_record(args.train, args.u_cols, args.y_cols, args.time_col, "training file")
    test = None
    if args.test is not None:
        test, _ = _read_record(args.test, args.u_cols, args.y_cols, args.time_col, "--test file")
    _check_fit_args(args, train)
    kw = fit_settings(args)
    model = NeuralStateSpace(
        train.n_u, args.nx, train.n_y, args.hidden, key=jr.key(args.seed), linear=args.linear
    )
    saving = checkpoint_settings(args) if args.checkpoint or args.resume else {}
    model, x0, history = fit(model, train, **kw, **saving)
    if history.stop_reason == "interrupted" and saving:
        raise interrupted(args, history.steps)
    train_init = (
        "the initial state learned with the model"
        if args.criterion == "simulation"
        else f"estimated from the first {min(args.n_init, train.T)} samples (the encoder's)"
    )
    metrics: dict[str, Any] = {
        "settings": {
            **kw,
            "nx": args.nx,
            "hidden": list(args.hidden),
            "linear": args.linear,
            "seed": args.seed,
        },
        "columns": {"u": args.u_cols, "y": args.y_cols},
        "history": {
            "steps": history.steps,
            "stop_reason": history.stop_reason,
            "final_loss": history.final_loss,
        },
    }
    metrics["train"], y_train = scores(model, train, x0, 0)
    metrics["train"]["initialisation"] = train_init + "; every sample scored"
    shown, y_shown = train, y_train
    if test is not None:
        n = min(args.n_init, test.T - 1)
        x_test = estimate_initial_state(model, test, n)
        metrics["test"], y_shown = scores(model, test, x_test, n)
        metrics["test"]["initialisation"] = (
            f"estimated from the first {n} measured samples (not scored)"
        )
        shown = test
    stage = Staging(args.out)
    try:
        save(stage.path("model.eqx"), model, x0, metadata={"u": args.u_cols, "y": args.y_cols})
        stage.path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        skip = metrics["test"]["samples_scored"] if test is not None else 0
        plot_simulation(
            shown, y_shown, skip=shown.T - skip if test else 0, path=stage.path("simulation.png")
        )
        plot_loss(history, path=stage.path("loss.png"))
        written = stage.commit()
    except BaseException:
        stage.abort()
        raise
    for part in ("train", "test"):
        if part in metrics:
            print(f"{part}: RMSE {metrics[part]['rmse']}, fit % {metrics[part]['fit_percent']}")
    print("wrote " + ", ".join(str(p) for p in written))
    print(f"sysid fit took {time.perf_counter() - t0:.1f} s")
    return 0


# -- simulate ------------------------------------------------------------------------------------


def sysid_simulate(args) -> int:
    """Run `eqx-ffn sysid simulate`."""
    import numpy as np

    from ..sysid._experiment import Experiment
    from ..sysid._files import SysidFileError, load, read_header
    from ..sysid._simulate import estimate_initial_state, simulate

    check_file(args.model, "model file")
    try:
        header, _ = read_header(args.model)
        model, x0 = load(args.model)
    except SysidFileError as e:
        raise UsageError(one_line(e)) from None
    names = header.get("metadata") or {}
    u_cols = names.get("u") or [f"u{i + 1}" for i in range(model.n_u)]
    y_cols = names.get("y") or [f"y{i + 1}" for i in range(model.n_y)]
    if args.n_init < 0:
        raise UsageError(f"--n-init must be >= 0; got {args.n_init}")
    record, times = _read_record(args.data, u_cols, y_cols, None, "data file", need_y=False)
    if args.n_init > 0:
        if not isinstance(record, Experiment):
            raise UsageError(f"--n-init {args.n_init} needs the output columns {y_cols}")
        if args.n_init > record.T:
            raise UsageError(f"--n-init {args.n_init} exceeds the record ({record.T} samples)")
        x = estimate_initial_state(model, record, args.n_init)
        u = record.u
    else:
        u = record.u if isinstance(record, Experiment) else record[0]
        x = np.zeros(model.state_size) if x0 is None else (x0 if x0.ndim == 1 else x0[0])
    y = np.asarray(simulate(model, u, x))
    head = ([times[0]] if times is not None else []) + y_cols
    cols = ([times[1]] if times is not None else []) + [y[:, j] for j in range(y.shape[1])]
    lines = [",".join(head)] + [
        ",".join(repr(float(v)) for v in row) for row in zip(*cols, strict=True)
    ]
    text = "\n".join(lines) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


def sysid(args) -> int:
    """Run `eqx-ffn sysid` (dispatch to fit or simulate)."""
    if getattr(args, "sysid_command", None) is None:
        raise UsageError("choose a subcommand: eqx-ffn sysid fit ... or eqx-ffn sysid simulate ...")
    return sysid_fit(args) if args.sysid_command == "fit" else sysid_simulate(args)


def tanks_demo(args, stage) -> tuple[None, list[str]]:
    """`eqx-ffn demo --example tanks`: the course's next lecture through `eqx_ffn.sysid`.

    The lecture's model (`NeuralStateSpace(1, 2, 1, (16,))`, its initialisation from key 17),
    Adam 1e-3 on the whole training record's simulation error (2000 steps, or `--steps`), the
    test record simulated from the learned initial state (the lecture's score) and from one
    estimated on its first 50 samples (the benchmark's); writes `model.eqx`, `loss.png`,
    `simulation.png`. Returns `(None, summary lines)` (the model is saved here).
    """
    import jax
    import jax.numpy as jnp

    from ..plot._plot import plot_loss
    from ..sysid import datasets
    from ..sysid._files import save
    from ..sysid._fit import fit
    from ..sysid._metrics import rmse
    from ..sysid._models import NeuralStateSpace
    from ..sysid._plot import plot_simulation
    from ..sysid._simulate import estimate_initial_state, simulate

    train, test = datasets.cascaded_tanks()
    keys = jax.random.split(jax.random.key(17), 5)
    shapes = {"W1": (16, 3), "b1": (16,), "W2": (2, 16), "b2": (2,), "C": (1, 2)}
    scale = {"W2": 1e-3, "b2": 1e-3}
    params = {
        n: jax.random.normal(k, s, jnp.float32) * scale.get(n, 1.0)
        for k, (n, s) in zip(keys, shapes.items(), strict=True)
    }
    steps = args.steps or 2000
    model, x0, history = fit(
        NeuralStateSpace.from_params(params), train, learning_rate=1e-3, steps=steps
    )
    lecture = float(rmse(test.y, simulate(model, test.u, x0))[0])
    x_test = estimate_initial_state(model, test, 50)
    y_test = simulate(model, test.u, x_test)
    bench = float(rmse(test.y, y_test, skip=50)[0])
    save(stage.path("model.eqx"), model, x0)
    plot_loss(history, path=stage.path("loss.png"))
    plot_simulation(test, y_test, unit="V", path=stage.path("simulation.png"))
    return None, [
        f"Cascaded Tanks, the lecture's model: {history.steps} Adam steps, final training MSE "
        f"{history.final_loss:.4g} (standardised), {history.wall_time:.1f} s",
        f"test RMSE from the learned x0 (the lecture's score): {lecture:.4f} V",
        f"test RMSE with x0 from the first 50 test samples, samples 50-1023 (the benchmark's): "
        f"{bench:.4f} V",
    ]
