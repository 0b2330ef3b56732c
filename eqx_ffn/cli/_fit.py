"""`eqx-ffn fit`: read a table, choose the task, train, score, and write the model, figures and
metrics.json into --out (all of them, or nothing)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from ._common import Staging, UsageError, check_out, defer, float_dtype
from ._parser import FULL_BATCH_OPTIMIZERS
from ._task import decide_task, split_rows
from ._train import check_size, score, train


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .._version import version as _version

    out = {"eqx_ffn": _version(), "python": platform.python_version()}
    for package in ("jax", "jaxlib", "equinox", "optax", "numpy", "pandas", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _read(args: argparse.Namespace) -> Any:
    """The table, checked: at least one input and one output column."""
    from ..io._read_table import read_table

    if args.optimizer in FULL_BATCH_OPTIMIZERS and args.batch_size is not None:
        raise UsageError(
            f"--optimizer {args.optimizer} works on the full batch; leave out --batch-size"
        )
    table = read_table(
        args.data,
        args.x_cols,
        args.y_cols,
        delimiter=args.delimiter,
        drop_missing=args.drop_missing,
        labels=args.task != "regress" and (args.y_cols is None or len(args.y_cols) == 1),
        dtype=float_dtype(),
    )
    if table.n_dropped:
        defer(
            args,
            f"note: dropped {table.n_dropped} of {table.n_rows + table.n_dropped} rows with "
            "missing values (--drop-missing)",
        )
    if table.x.shape[1] == 0:
        raise UsageError("--x-cols names no column; a network needs at least one input")
    if table.y.shape[1] == 0:
        raise UsageError("--y-cols names no column; a network needs at least one output")
    return table


def _settings(args: argparse.Namespace, table: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's "settings": every choice that made this fit."""
    import numpy as np

    lr = facts["learning_rate"]
    return {
        "data": str(args.data),
        "delimiter": table.delimiter,
        "drop_missing": args.drop_missing,
        "rows_dropped": table.n_dropped,
        "task": args.task,
        "task_option": args.task_option,
        "x_cols": list(table.x_names),
        "y_cols": list(table.y_names),
        "hidden": list(args.hidden),
        "activation": args.activation,
        "init": args.init,
        "optimizer": args.optimizer,
        "learning_rate": lr if lr is not None else "line search",
        "steps": args.steps,
        "tol": "the optimizer's default" if args.tol is None else args.tol,
        "batch_size": args.batch_size,
        "loss": "softmax_cross_entropy" if args.task == "classify" else "mse",
        "l2": args.l2,
        "standardize": args.standardize,
        "test_fraction": args.test_fraction,
        "validation_fraction": args.validation_fraction,
        "early_stopping": facts["early_stopping"],
        "patience": args.patience if facts["early_stopping"] else None,
        "eval_every": args.eval_every if facts["validation"] else None,
        "seed": args.seed,
        "checkpoint": args.checkpoint,
        "resumed_from": args.resume,
        "tensorboard": args.tensorboard,
        "dtype": np.dtype(float_dtype()).name,
    }


def _loss_names(args: argparse.Namespace) -> tuple[str, str]:
    """`(data loss, what the fit minimised)`, e.g. `("MSE", "MSE + L2 penalty")`."""
    data = "cross-entropy" if args.task == "classify" else "MSE"
    return data, f"{data} + L2 penalty" if args.l2 > 0 else data


def _loss_definitions(args: argparse.Namespace) -> dict[str, str]:
    """metrics.json's "loss_definitions": which loss includes the L2 penalty."""
    data, minimised = _loss_names(args)
    units = " in standardised units" if args.standardize and args.task != "classify" else ""
    return {
        "initial_training_loss": f"{minimised} of the initial model on the training rows{units} "
        "(step 0 of loss.png's training curve)",
        "returned_training_loss": f"{data} of the returned model on the training rows{units}, "
        "without the L2 penalty",
        "returned_training_penalty": "the returned model's L2 penalty, l2 * sum of its squared "
        "weights (not biases)",
        "history.final_training_loss": f"{minimised} of the returned model on the training "
        f"rows{units}: returned_training_loss + returned_training_penalty, what the fit "
        "minimised (loss.png's training curve)",
        "validation curve": f"{data} without the penalty (loss.png's validation curve)",
        "history.csv": f"per step: loss = {minimised} of the step's batch before its update "
        f"(what the optimizer minimised), data_loss = the same {data} without the penalty, "
        f"val_loss = validation {data} after the step (empty where none was measured){units}",
    }


def _tensorboard(args: argparse.Namespace) -> Any:
    """`--tensorboard DIR`: the logger the fit calls back (`args.callbacks`), or None."""
    args.callbacks = ()
    if args.tensorboard is None:
        return None
    from ..training._tensorboard import TensorBoardLogger

    try:
        logger = TensorBoardLogger(args.tensorboard)
    except ImportError as e:
        raise UsageError(f"--tensorboard: {e}") from None
    args.callbacks = (logger,)
    return logger


def _history(hist: Any) -> dict[str, Any]:
    """metrics.json's "history": how the fit ended."""
    return {
        "stop_reason": hist.stop_reason,
        "steps": hist.steps,
        "best_step": hist.best_step,
        "message": hist.message,
        "final_training_loss": None if math.isnan(hist.final_loss) else hist.final_loss,
        "compile_time_s": hist.compile_time,
        "fit_wall_time_s": hist.wall_time,
    }


def fit(args: argparse.Namespace) -> int:
    """Run `eqx-ffn fit`."""
    t_start = time.perf_counter()
    out = check_out(args.out)
    table = _read(args)
    args.task_option = args.task
    args.task, y_all, classes = decide_task(args, table)
    classify = args.task == "classify"
    rows = split_rows(table.n_rows, args.test_fraction, args.validation_fraction, args.seed)
    if args.batch_size is not None and args.batch_size > rows[0].size:
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the {rows[0].size} training rows"
        )
    n_out = len(classes) if classify else table.y.shape[1]
    check_size(table.x.shape[1], args.hidden, n_out)

    logger = _tensorboard(args)
    try:
        model, hist, facts = train(args, table, y_all, n_out, rows)
    finally:
        if logger is not None:
            logger.close()
    scores = score(model, hist, table, y_all, classes, rows, facts)
    test_pred = scores.pop("test_predictions", None)
    metrics: dict[str, Any] = {
        "task": args.task,
        "n_train": int(rows[0].size),
        "n_validation": int(rows[1].size),
        "n_test": int(rows[2].size),
        "x_cols": list(table.x_names),
        "y_cols": list(table.y_names),
        **scores,
        "returned_training_penalty": facts["penalty"],
        "loss_definitions": _loss_definitions(args),
        "settings": _settings(args, table, facts),
        "history": _history(hist),
        "versions": _versions(),
    }
    written = _write(args, out, model, hist, table, classes, rows, test_pred, metrics, t_start)
    print(
        f"fit: {hist.steps} steps ({hist.stop_reason}), compile {hist.compile_time:.2f} s, "
        f"fit {hist.wall_time:.2f} s"
    )
    if classify:
        print(
            f"accuracy: train {metrics['train_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}"
            f" ({len(classes)} classes)"
        )
    else:
        print(
            f"train MSE {metrics['train_mse']:.4g} (R^2 {metrics['train_r2']:.4f}), "
            f"test MSE {metrics['test_mse']:.4g} (R^2 {metrics['test_r2']:.4f})"
        )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _write(
    args: argparse.Namespace,
    out: Path,
    model: Any,
    hist: Any,
    table: Any,
    classes: list[Any],
    rows: Any,
    test_pred: Any,
    metrics: dict[str, Any],
    t_start: float,
) -> list[Path]:
    """The model, figures and metrics.json, moved into --out only when all are written."""
    import json

    from ..io._model_file import save
    from ..plot._plot import plot_confusion, plot_loss, plot_parity, plot_residuals

    classify = bool(classes)
    stage = Staging(out)
    try:
        meta: dict[str, Any] = {
            "x_cols": list(table.x_names),
            "y_cols": list(table.y_names),
            "task": args.task,
        }
        if classify:
            meta["classes"] = classes
        if table.delimiter is None:  # an .npz: predict reads the same arrays
            meta["x_arrays"] = [str(c) for c in (args.x_cols or ["x"])]
        save(stage.path("model.eqx"), model, metadata=meta)
        data, minimised = _loss_names(args)
        units = " (standardised units)" if args.standardize and not classify else ""
        curves = "training and validation" if rows[1].size else "training"
        plot_loss(
            hist,
            title=f"Loss of {', '.join(table.y_names)}: {curves}",
            ylabel=f"loss{units}",
            labels=(f"training: {minimised}", f"validation: {data}"),
            path=stage.path("loss.png"),
        )
        if classify:
            plot_confusion(
                metrics["test_confusion_matrix"],
                [str(c) for c in classes],
                title=f"{table.y_names[0]}, test set",
                path=stage.path("confusion.png"),
            )
        else:
            y_te = table.y[rows[2]]
            for plot, name in ((plot_parity, "parity.png"), (plot_residuals, "residuals.png")):
                plot(None, None, y_te, pred=test_pred, names=table.y_names, path=stage.path(name))
        hist.to_csv(stage.path("history.csv"))
        metrics["total_wall_time_s"] = time.perf_counter() - t_start
        stage.path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return stage.commit()
    except BaseException:
        stage.abort()
        raise
