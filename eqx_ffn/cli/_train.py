"""`eqx-ffn fit`'s training and scoring: build, standardise, fit, then score every split from one
prediction over all rows."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ._common import (
    MAX_INT32,
    Diverged,
    UsageError,
    checkpoint_settings,
    float_dtype,
    flush_notes,
    interrupted,
    note,
    one_line,
    predict_proba,
)
from ._parser import DEFAULT_LR, FULL_BATCH_OPTIMIZERS


def check_size(n_in: int, hidden: Sequence[int], n_out: int) -> None:
    """Refuse a network too large to train in the memory available (one line)."""
    from itertools import pairwise

    from ..io._read_table import _available_memory

    params = sum((a + 1) * b for a, b in pairwise([n_in, *hidden, n_out]))
    need = params * 4 * 6  # parameters, gradients, two optimiser moments, best and last good
    avail = _available_memory()
    if params > MAX_INT32 or (avail is not None and need > avail):
        have = f"; {avail / 1e9:.1f} GB of memory are available" if avail else ""
        raise UsageError(
            f"--hidden {','.join(map(str, hidden))} gives a network of {params:,} parameters "
            f"(about {need / 1e9:.3g} GB to train){have}; choose smaller widths"
        )


_BUILD: Any = None


def _new_network(n_in: int, n_out: int, args: argparse.Namespace, key: Any) -> Any:
    """The untrained `FFN`, built in one compiled call (eagerly, each random draw compiles)."""
    global _BUILD
    if _BUILD is None:
        import equinox as eqx

        from ..model._ffn import FFN

        def build(n_in, n_out, hidden, activation, init, key):
            return FFN(n_in, n_out, hidden, activation=activation, init=init, key=key)

        _BUILD = eqx.filter_jit(build)  # one program per set of sizes, reused by later fits
    return _BUILD(n_in, n_out, tuple(args.hidden), args.activation, args.init, key)


def _affine(scaler: Any) -> Callable[[Any], Any]:
    """A `Standardizer`'s `transform` in NumPy (the same float operations, nothing to compile)."""
    import numpy as np

    if scaler is None:
        return lambda a: a
    mean, scale = np.asarray(scaler.mean), np.asarray(scaler.scale)
    return lambda a: (a.astype(mean.dtype) - mean) / scale


def _check_stop(args: argparse.Namespace, hist: Any, lr: Any) -> None:
    """An interrupted or diverged fit stops the command; nothing is written (but the
    checkpoint, which an interrupted fit keeps)."""
    if hist.stop_reason == "interrupted":
        raise interrupted(args, hist.steps)
    if hist.stop_reason in ("non_finite_loss", "diverged"):
        what = (
            "the training loss became NaN or inf"
            if hist.stop_reason == "non_finite_loss"
            else "the fit diverged: the training loss rose 10,000-fold"
        )
        raise Diverged(
            f"{what} ({one_line(hist.message)}); nothing written. "
            f"Lower --lr (now {lr}){'' if args.standardize else ' or drop --no-standardize'}"
        )


def train(
    args: argparse.Namespace, table: Any, y_all: Any, n_out: int, rows: tuple[Any, Any, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """Build, standardise and fit the network: `(model, history, facts)`."""
    import jax.random as jr

    from ..model._standardize import Standardized, Standardizer
    from ..training._fit import fit
    from ..training._history import NonFiniteLossWarning
    from ..training._losses import weight_penalty

    train_rows, val, _ = rows
    classify = args.task == "classify"
    use_val = val.size > 0
    x_tr, y_tr = table.x[train_rows], y_all[train_rows]
    x_scaler = Standardizer.fit(x_tr) if args.standardize else None
    y_scaler = Standardizer.fit(y_tr) if args.standardize and not classify else None
    scale_x, scale_y = _affine(x_scaler), _affine(y_scaler)
    dtype = float_dtype()
    key_model, key_fit = jr.split(jr.key(args.seed))
    net = _new_network(table.x.shape[1], n_out, args, key_model)
    lr = args.lr if args.lr is not None or args.optimizer in FULL_BATCH_OPTIMIZERS else DEFAULT_LR
    early = args.early_stopping and use_val

    def target(y: Any) -> Any:
        return y if classify else scale_y(y.astype(dtype))

    flush_notes(args)
    note(
        args,
        f"training: {train_rows.size} rows, {table.x.shape[1]} inputs -> {n_out} "
        f"{'classes' if classify else 'output' if n_out == 1 else 'outputs'}, "
        f"{args.optimizer}, up to {args.steps} steps (Ctrl-C stops; "
        + (
            "the checkpoint is kept then)"
            if args.checkpoint or args.resume
            else "nothing is written then)"
        ),
    )
    validation = (scale_x(table.x[val].astype(dtype)), target(y_all[val])) if use_val else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inner, hist = fit(
            net,
            scale_x(x_tr.astype(dtype)),
            target(y_tr),
            optimizer=args.optimizer,
            learning_rate=lr,
            steps=args.steps,
            tol=args.tol,
            batch_size=args.batch_size,
            loss="softmax_cross_entropy" if classify else "mse",
            key=key_fit,
            validation=validation,
            eval_every=args.eval_every if use_val else None,
            patience=args.patience if early else None,
            l2=args.l2,
            progress=args.progress,
            **checkpoint_settings(args),
            callbacks=getattr(args, "callbacks", ()),
        )
    for w in caught:
        if not issubclass(w.category, NonFiniteLossWarning):
            note(args, f"warning: {one_line(w.message)}")
    _check_stop(args, hist, lr)
    model = (
        inner if x_scaler is None and y_scaler is None else Standardized(inner, x_scaler, y_scaler)
    )
    facts = {
        "learning_rate": lr,
        "early_stopping": early,
        "validation": use_val,
        "penalty": float(weight_penalty(inner, 0.0, args.l2)),
        "fitted_loss": (lambda out, y: _fitted_loss(out, y, classify, scale_y, dtype)),
    }
    return model, hist, facts


def _fitted_loss(out: Any, y: Any, classify: bool, scale_y: Any, dtype: Any) -> float:
    """The loss `fit` minimised (without penalty), from the model's outputs (probabilities for
    a classifier), in fitting units."""
    import numpy as np

    if classify:
        picked = out[np.arange(len(y)), y].astype(np.float64)
        return float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float64).tiny))))
    diff = scale_y(out.astype(dtype)).astype(np.float64) - scale_y(y.astype(dtype))
    return float(np.mean(diff**2))


def score(
    model: Any, hist: Any, table: Any, y_all: Any, classes: list[Any], rows: Any, facts: Any
) -> dict[str, Any]:
    """Train/validation/test scores, from ONE prediction over every row."""
    import numpy as np

    from .._metrics import accuracy, confusion_matrix, mse, r2_per_output, r2_score
    from ..training._predict import predict

    classify = bool(classes)
    x = table.x.astype(float_dtype())
    out = predict_proba(model, x) if classify else np.asarray(predict(model, x))
    if not np.all(np.isfinite(out)):
        raise Diverged("the trained model's predictions are not finite; nothing written")
    train_rows, val, test = rows
    start, end = float(hist.loss[0]), facts["fitted_loss"](out[train_rows], y_all[train_rows])
    # like with like: `end` has no penalty, so neither has the initial loss it is compared with
    data = getattr(hist, "data_loss", None)
    start_data = start if data is None or not len(data) else float(data[0])
    if not end <= start_data:  # also NaN
        raise Diverged(
            f"the fit diverged: the training loss rose from {start_data:.4g} (initial model) to "
            f"{end:.4g} (returned model); nothing written. Lower --lr (now "
            f"{facts['learning_rate']})"
        )
    scores: dict[str, Any] = {"initial_training_loss": start, "returned_training_loss": end}
    parts = {"train": train_rows, "test": test, **({"validation": val} if val.size else {})}
    for part, idx in parts.items():
        if classify:
            scores[f"{part}_accuracy"] = accuracy(y_all[idx], out[idx].argmax(axis=1))
        else:
            scores[f"{part}_mse"] = mse(y_all[idx], out[idx])
            scores[f"{part}_r2"] = r2_score(y_all[idx], out[idx])
            per = map(float, r2_per_output(y_all[idx], out[idx]))
            scores[f"{part}_r2_per_output"] = dict(zip(table.y_names, per, strict=True))
    if classify:
        counts = confusion_matrix(y_all[test], out[test].argmax(axis=1), len(classes))
        scores["classes"] = classes
        scores["test_confusion_matrix"] = counts.tolist()
    else:
        scores["test_predictions"] = out[test]
    return scores
