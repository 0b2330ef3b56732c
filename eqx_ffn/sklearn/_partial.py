"""`partial_fit`'s common part, with scikit-learn's `MLPRegressor` / `MLPClassifier` meaning.

Each call runs one epoch over the data it is given with the stochastic solver, from the
current network and the optimizer's state, which is kept between calls (Adam's moments and step
count, as scikit-learn keeps its optimizer object). The first call on an unfitted estimator
initialises it from its data as `fit` would: `n_features_in_`, the scalers (`standardize`),
the network. No early stopping, no stopping rule: every call runs its epoch.

The batches of call k are epoch k of the estimator's key (a fresh permutation each call), so
K calls on the same data give the network that `fit` with `max_iter=K` gives, bit for bit when
its stopping rule does not stop it (`_epoch.run_epoch`).
"""

from __future__ import annotations

import functools
import types
from typing import Any, NamedTuple, cast

import jax.random as jr
import numpy as np

from ..model._standardize import Standardized
from ._epoch import run_epoch
from ._inputs import sample_weight as _sample_weight
from ._rules import _epoch_means

__all__ = ["Continuation", "PartialFitMixin", "stochastic_only"]


class Continuation(NamedTuple):
    """What the next `partial_fit` continues from (kept on the estimator as `_continuation`)."""

    seed: int  # the estimator's key: its batches are drawn from it
    epochs: int  # epochs trained since the network was made (the next call draws this epoch)
    opt: Any  # the optimizer's state after the last `partial_fit`; None: a fresh one


class stochastic_only:
    """A method that exists only for the stochastic solvers (scikit-learn's `available_if`, with
    the reason in the `AttributeError`): `hasattr(estimator, "partial_fit")` is False for
    `solver="lbfgs"`."""

    def __init__(self, fn: Any):
        self.fn = fn
        functools.update_wrapper(cast(Any, self), fn)  # its name and docstring

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self.fn
        if isinstance(obj.solver, str) and obj.solver == "lbfgs":
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers; solver={obj.solver!r} "
                "is not stochastic (it works on the full batch). Use solver='adam' or 'sgd', or "
                "fit."
            )
        return types.MethodType(self.fn, obj)


class PartialFitMixin:
    """`_partial_fit`, for `_FFNEstimator` (which defines the methods it calls)."""

    _continuation: Continuation

    def _partial_fit(self, x: np.ndarray, y: np.ndarray, sample_weight: Any, out_size: int):
        """One epoch on validated `x` (N, d) and encoded targets `y`; the first call on an
        unfitted estimator initialises it. Sets the fitted attributes.

        **Returns:** `self`.
        """
        est: Any = self
        if est.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True (each call trains one epoch "
                "on the data it is given, nothing is held out); set early_stopping=False."
            )
        hidden = est._hidden_sizes()
        compute_dtype = est._compute_dtype()
        weight = _sample_weight(sample_weight, x)
        if not hasattr(est, "model_"):
            cont = Continuation(est._seed(), 0, None)
            model = est._new_network(x, y, weight, out_size, hidden, cont.seed)
            curve, t_before, best = [], 0, np.inf
        else:
            what, way_out = "partial_fit continues the fitted network", "Call fit to start anew"
            ffn = est._same_network(x.shape[1], out_size, hidden, what, way_out)
            model = Standardized(ffn, est.model_.x_scaler, est.model_.y_scaler)
            cont = getattr(est, "_continuation", None)
            if cont is None:  # loaded from a model file: a new key, a fresh optimizer
                cont = Continuation(est._seed(), int(getattr(est, "n_iter_", 0)), None)
            curve, t_before = list(est.loss_curve_), int(getattr(est, "t_", 0))
            best = np.inf if est.best_loss_ is None else est.best_loss_
        y_scaler = model.y_scaler
        if y_scaler is not None:
            y = (y - np.asarray(y_scaler.mean, np.float64)) / np.asarray(y_scaler.scale, np.float64)
        data = est._training_data(x, y, weight, cont.seed)
        k_fit = jr.split(jr.key(cont.seed))[1]
        kwargs = est._engine_kwargs(data, k_fit, compute_dtype)
        kwargs.update(tol=0.0, progress=False)  # no stopping rule; one epoch
        out = run_epoch(
            Standardized(model.model, model.x_scaler, None),
            data.x,
            data.y,
            kwargs,
            epoch=cont.epochs,
            steps_per_epoch=data.steps_per_epoch,
            opt=cont.opt,
            stacklevel=4,  # partial_fit's caller
        )
        epoch = _epoch_means(np.asarray(out.history.loss), data.x.shape[0], data.batch)
        loss = float(epoch[0]) * est._loss_scale if epoch.size else float("nan")
        best = min(best, loss) if np.isfinite(loss) else best
        est.model_ = Standardized(out.model.model, model.x_scaler, model.y_scaler)
        est.history_ = out.history
        est.n_iter_ = 1  # scikit-learn's: the epochs of this call
        est.t_ = t_before + data.x.shape[0]
        est.loss_ = loss
        est.loss_curve_ = [*curve, loss]
        est.best_loss_ = float(best) if np.isfinite(best) else None
        if not hasattr(est, "validation_scores_"):
            est.validation_scores_ = est.best_validation_score_ = None
        est._continuation = Continuation(cont.seed, cont.epochs + 1, out.opt)
        if est.verbose:  # scikit-learn's line (fit shows a progress bar instead)
            print(f"Iteration {len(est.loss_curve_)}, loss = {loss:.8f}")
        return self
