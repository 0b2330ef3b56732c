"""scikit-learn estimators around `FFN` and `fit`: `FFNRegressor`, `FFNClassifier`.

The public face is `eqx_ffn.sklearn`; this module needs scikit-learn.

How scikit-learn's `MLPRegressor` / `MLPClassifier` parameters map onto `eqx_ffn.fit`:

- `max_iter` counts epochs for the stochastic solvers: `steps = max_iter * ceil(N / batch_size)`;
  for `solver="lbfgs"` (full batch) it counts iterations.
- Loss units: scikit-learn minimises `0.5 * mean((y - pred)**2)` for regression and the log-loss
  for classification, plus `0.5 * alpha * sum(W**2) / S` per batch, `S` the batch's sample-weight
  sum (its size without weights). `fit` minimises `mse + l2 * sum(W**2)` (regression) or
  `cross_entropy + l2 * sum(W**2)`, so `l2 = alpha / S` for regression and `alpha / (2 S)` for
  classification: the same minimiser, and losses reported in scikit-learn's units
  (`loss_curve_`, `tol`) are `0.5 *` ours for regression. With `standardize=True` the regressor's
  network is trained on standardised targets, so these are the losses of the standardised
  problem (as for an `MLPRegressor` inside `TransformedTargetRegressor(StandardScaler())`).
- `tol` / `n_iter_no_change`: scikit-learn's rules. On the training loss (no early stopping)
  `fit` applies them itself inside the compiled loop (`fit(tol=..., n_iter_no_change=...)`) and
  returns that epoch's network in one pass; for L-BFGS `tol` is SciPy's `gtol` (with SciPy's
  default `ftol`), also tested in the loop (`_SciPyLBFGS`). With `early_stopping`, the rule on
  validation scores (`_score_stop`) is applied to the scores `fit` records, and the fit is
  replayed with the same key up to the best epoch when the engine's patience picked another.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ..io._model_file import load as _load_model
from ..io._model_file import read_header as _read_header
from ..io._model_file import save as _save_model
from ..model._ffn import FFN
from ..model._init import INITS
from ..model._standardize import Standardized, Standardizer
from ..solvers._solver import Solver
from ..training._data import float_dtype
from ..training._fit import fit as _engine_fit
from ..training._history import History

__all__ = ["FFNClassifier", "FFNRegressor", "load", "save"]

# scikit-learn's activation names, and ours, to the name `FFN` takes
ACTIVATION_NAMES: dict[str, str] = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "gelu": "gelu",
    "softplus": "softplus",
    "silu": "silu",
    "elu": "elu",
}
SOLVER_NAMES: tuple[str, ...] = ("adam", "sgd", "lbfgs", "adamw", "rmsprop")
SCIPY_FTOL = 2.220446049250313e-09
"""SciPy's default `ftol` for L-BFGS-B (`factr=1e7` times float64 epsilon), which
scikit-learn's `solver="lbfgs"` uses."""


# -- scikit-learn's stopping rules, on the losses `fit` records ---------------------------------


def _score_stop(
    scores: Iterable[float], tol: float, n_iter_no_change: float
) -> tuple[int | None, int]:
    """scikit-learn's early-stopping rule on validation scores (higher is better):
    `(stop_epoch or None, best_epoch)`, both 1-based. The score must beat `best + tol` to reset
    the count; the best model is the one of the highest score so far."""
    best, best_epoch, count = -math.inf, 0, 0
    for i, score in enumerate(scores):
        count = count + 1 if score < best + tol else 0
        if score > best:
            best, best_epoch = score, i + 1
        if count > n_iter_no_change:
            return i + 1, best_epoch
    return None, best_epoch


def _epoch_means(step_losses: np.ndarray, n: int, batch_size: int) -> np.ndarray:
    """Per epoch, the mean of the batch losses weighted by batch length (scikit-learn's
    `loss_`): an epoch is `ceil(n / batch_size)` steps, the last batch the remainder."""
    spe = -(-n // batch_size)
    lens = np.full(spe, batch_size, dtype=np.float64)
    lens[-1] = n - (spe - 1) * batch_size
    epochs = len(step_losses) // spe
    per_step = np.asarray(step_losses[: epochs * spe], np.float64).reshape(epochs, spe)
    return per_step @ lens / n


# -- solvers -----------------------------------------------------------------------------------


class _SciPyLBFGS(Solver):
    """`optax.lbfgs()` stopping as SciPy's L-BFGS-B (which scikit-learn's `solver="lbfgs"` runs)
    does: before an update, when the largest gradient entry is at most `tol` (SciPy's `gtol`), or
    the last iteration decreased the loss by at most `SCIPY_FTOL * max(|f_old|, |f|, 1)`; the
    step then reports `converged` and applies no update, and the engine stops inside the
    compiled loop. Iterations run = steps - 1 when it converged."""

    tx: optax.GradientTransformationExtraArgs = eqx.field(static=True)

    @property
    def full_batch_only(self) -> bool:
        return True

    @property
    def convergence_test(self) -> bool:
        return True

    @property
    def flat_params(self) -> bool:
        return True

    def init(self, params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return self.tx.init(params), jnp.asarray(jnp.inf, dtype)

    def step(self, objective, params, state, batch):
        opt_state, previous = state

        def value_fn(p):
            return objective(p, batch)

        loss, grads = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
        gmax = optax.tree.max(jax.tree.map(jnp.abs, grads))
        scale = jnp.maximum(jnp.maximum(jnp.abs(previous), jnp.abs(loss)), 1.0)
        stalled = jnp.isfinite(previous) & ((previous - loss) <= SCIPY_FTOL * scale)
        done = (gmax <= objective.tol) | stalled
        updates, opt_state = self.tx.update(
            grads, opt_state, params, value=loss, grad=grads, value_fn=value_fn
        )
        new_params = jax.tree.map(
            lambda p, u: jnp.where(done, p, p + jnp.asarray(u).astype(p.dtype)), params, updates
        )
        return new_params, (opt_state, jnp.asarray(loss).astype(previous.dtype)), loss, done


_SCIPY_LBFGS = _SciPyLBFGS(optax.lbfgs())


@functools.lru_cache(maxsize=32)
def _nesterov_sgd(learning_rate: float) -> optax.GradientTransformation:
    # scikit-learn's solver="sgd" defaults: momentum 0.9, Nesterov, constant learning rate.
    return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
        learning_rate=learning_rate, momentum=0.9, nesterov=True
    )


# -- the network ---------------------------------------------------------------------------------


PREDICT_ROWS = 1024
"""Rows per compiled prediction call (the last block is padded)."""


@eqx.filter_jit
def _predict_block(model, x):
    return jax.vmap(model)(x)


def _predict_rows(model: Any, x: np.ndarray) -> np.ndarray:
    """`jax.vmap(model)(x)` as float64, `x` (N, d), in blocks of `PREDICT_ROWS` rows: one compiled
    program per network, and each row's prediction bit for bit the same whatever the other rows
    are (a matmul's rounding can depend on how many rows it has)."""
    dtype = float_dtype(model)
    block = np.zeros((PREDICT_ROWS, x.shape[1]), dtype)
    out = []
    for start in range(0, x.shape[0], PREDICT_ROWS):
        part = x[start : start + PREDICT_ROWS]
        block[: len(part)] = part
        block[len(part) :] = 0
        out.append(np.asarray(_predict_block(model, block))[: len(part)])
    return np.concatenate(out).astype(np.float64)


def _scaler(a: np.ndarray, weight: np.ndarray | None, dtype) -> Standardizer:
    """A `Standardizer` with the (sample-weighted) mean and standard deviation of `a`."""
    mean = np.average(a, axis=0, weights=weight)
    std = np.sqrt(np.average((a - mean) ** 2, axis=0, weights=weight))
    std = np.where(std > 0, std, 1.0)
    return Standardizer(np.asarray(mean, dtype), np.asarray(std, dtype))


def _portable(model: Standardized) -> dict[str, Any]:
    """A picklable description of a `Standardized(FFN)` (jax.nn.relu and friends are
    `custom_jvp` objects that pickle cannot find by name)."""
    ffn = model.model
    assert isinstance(ffn, FFN)

    def scaler(s):
        return None if s is None else (np.asarray(s.mean), np.asarray(s.scale))

    return {
        "params": {k: np.asarray(v) for k, v in ffn.to_params().items()},
        "activation": ffn.activation_name,
        "final_activation": ffn.final_activation_name,
        "x_scaler": scaler(model.x_scaler),
        "y_scaler": scaler(model.y_scaler),
    }


def _from_portable(state: dict[str, Any]) -> Standardized:
    ffn = FFN.from_params(
        state["params"],
        activation=state["activation"],
        final_activation=state["final_activation"],
    )

    def scaler(s):
        return None if s is None else Standardizer(s[0], s[1])

    return Standardized(ffn, scaler(state["x_scaler"]), scaler(state["y_scaler"]))


# -- the estimators ------------------------------------------------------------------------------


def _validated(estimator: Any, X: Any, y: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """`validate_data` for `fit`: float64 or float32 `X`, and `y`; sets `n_features_in_` and
    `feature_names_in_`."""
    x, y = validate_data(estimator, X, y, dtype=(np.float64, np.float32), **kwargs)
    return np.asarray(x), np.asarray(y)


class _FFNEstimator(BaseEstimator):
    """What `FFNRegressor` and `FFNClassifier` share; see their docstrings."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATION_NAMES))],
        "solver": [StrOptions(set(SOLVER_NAMES)), HasMethods(["init", "update"])],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Options(numbers.Real, {np.inf}),
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "init": [StrOptions(set(INITS))],
        "standardize": ["boolean"],
        "compute_dtype": [None, str, type, np.dtype],
    }

    _classifier: bool = False
    # fitted attributes (set by `fit`)
    model_: Standardized
    history_: History
    n_iter_: int
    n_features_in_: int
    n_outputs_: int
    loss_curve_: list[float]
    loss_: float
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        random_state=None,
        verbose=False,
        init="glorot_uniform",
        standardize=True,
        compute_dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.init = init
        self.standardize = standardize
        self.compute_dtype = compute_dtype

    # -- pieces the subclasses define

    @property
    def _loss_scale(self) -> float:
        """scikit-learn's loss over ours: 0.5 for the squared error, 1 for the log-loss."""
        return 1.0 if self._classifier else 0.5

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- fitting

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        sizes = tuple(np.ravel(np.asarray(sizes, dtype=object)).tolist())
        for i, h in enumerate(sizes):
            if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1:
                raise ValueError(
                    f"hidden_layer_sizes must hold integers >= 1; got {h!r} at position {i} of "
                    f"{self.hidden_layer_sizes!r}."
                )
        return tuple(int(h) for h in sizes)

    def _compute_dtype(self) -> Any:
        if self.compute_dtype is None:
            return None
        try:
            dtype = jnp.dtype(self.compute_dtype)
        except TypeError:
            raise ValueError(
                f"compute_dtype must be None or a floating-point dtype such as 'bfloat16'; "
                f"got {self.compute_dtype!r}."
            ) from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"compute_dtype must be a floating-point dtype; got {dtype}.")
        return dtype

    def _seed(self) -> int:
        """`random_state` as one integer: an int is used as is; None draws from NumPy's global
        generator and a `RandomState` from itself, as scikit-learn does."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit(self, x: np.ndarray, y: np.ndarray, sample_weight: Any, out_size: int):
        """Train on validated `x` (N, d) and encoded targets `y` ((N, k) floats or (N,) class
        indices); sets the fitted attributes."""
        hidden = self._hidden_sizes()
        compute_dtype = self._compute_dtype()
        d = x.shape[1]
        dtype = jnp.zeros(()).dtype  # the network's: float32, float64 under jax_enable_x64
        seed = self._seed()
        k_init, k_fit = jr.split(jr.key(seed))
        weight = None
        if sample_weight is not None:
            weight = _check_sample_weight(sample_weight, x, dtype=np.float64)
            if np.any(weight < 0):
                raise ValueError("sample_weight must be >= 0.")
            if not np.any(weight > 0):
                raise ValueError("sample_weight is zero everywhere: nothing to fit.")

        # The network is trained on standardised targets (as inside scikit-learn's
        # TransformedTargetRegressor with a StandardScaler): losses, `tol` and `alpha` do not
        # depend on the targets' units. The y scaler is put around the trained network.
        x_scaler = y_scaler = None
        if self.standardize:
            x_scaler = _scaler(x, weight, dtype)
            if not self._classifier:
                y_scaler = _scaler(y, weight, dtype)
                mean, std = (np.asarray(a, np.float64) for a in (y_scaler.mean, y_scaler.scale))
                y = (y - mean) / std

        x_tr, y_tr, w_tr, validation = x, y, weight, None
        lbfgs = isinstance(self.solver, str) and self.solver == "lbfgs"
        stochastic = not lbfgs
        if self.early_stopping and stochastic:
            stratify = y if self._classifier else None
            parts = train_test_split(
                *(a for a in (x, y, weight) if a is not None),
                test_size=self.validation_fraction,
                random_state=seed,
                stratify=stratify,
            )
            x_tr, x_val, y_tr, y_val = (np.asarray(a) for a in parts[:4])
            w_tr = np.asarray(parts[4]) if weight is not None else None
            if x_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small: increase validation_fraction or the "
                    f"data set ({x_val.shape[0]} validation sample(s))."
                )
            validation = (x_val, y_val)
        n_tr = x_tr.shape[0]

        if lbfgs:
            batch = n_tr
        elif self.batch_size == "auto":
            batch = min(200, n_tr)
        else:
            batch = int(self.batch_size)
            if batch > n_tr:
                warnings.warn(
                    f"batch_size={batch} is larger than the {n_tr} training samples; it is "
                    f"clipped to {n_tr}.",
                    UserWarning,
                    stacklevel=3,
                )
                batch = n_tr
        spe = -(-n_tr // batch)
        steps = self.max_iter * spe

        # scikit-learn's penalty 0.5 * alpha * |W|^2 / S per batch, S the batch's weight sum
        scale = self._loss_scale
        mean_w = 1.0 if w_tr is None else float(np.mean(w_tr))
        l2 = 0.5 * self.alpha / (scale * batch * mean_w)
        if w_tr is not None and np.all(w_tr == w_tr[0]):
            w_tr = None  # constant weights: the same weighted mean, and no weighting pass

        activation = ACTIVATION_NAMES[self.activation]
        ffn = FFN(d, out_size, hidden, activation=activation, init=self.init, key=k_init)
        model0 = Standardized(ffn, x_scaler, None)

        learning_rate = None
        if lbfgs:
            optimizer: Any = _SCIPY_LBFGS
        elif isinstance(self.solver, str) and self.solver == "sgd":
            # the same step on our loss as scikit-learn's on its (scale times ours)
            optimizer = _nesterov_sgd(float(self.learning_rate_init) * scale)
        elif isinstance(self.solver, str):
            optimizer, learning_rate = self.solver, float(self.learning_rate_init)
        else:
            optimizer = self.solver
        kwargs: dict[str, Any] = {
            "optimizer": optimizer,
            "learning_rate": learning_rate,
            "batch_size": None if batch == n_tr else batch,
            "loss": "softmax_cross_entropy" if self._classifier else "mse",
            "key": k_fit,
            "l2": l2,
            "sample_weight": w_tr,
            "progress": bool(self.verbose),
        }
        if compute_dtype is not None:
            kwargs["compute_dtype"] = compute_dtype
        # Without early stopping, scikit-learn's rules run inside the compiled loop: SciPy's
        # gtol/ftol for L-BFGS, the training-loss plateau (tol, n_iter_no_change) otherwise; the
        # fit stops at that iteration/epoch and returns its network, in one pass.
        if validation is None:
            kwargs.update(tol=float(self.tol) / scale, n_iter_no_change=int(self.n_iter_no_change))
        else:
            kwargs.update(tol=0.0)
        # Early stopping: the engine's patience stops no earlier than scikit-learn's rule on
        # validation scores (which also needs `tol` of improvement); that rule is applied below.
        patience = None
        if validation is not None and self.tol > 0:
            patience = int(self.n_iter_no_change) + 1
        first_kwargs = dict(kwargs)
        if validation is not None:
            first_kwargs.update(validation=validation, eval_every=spe, patience=patience)

        model, history = _engine_fit(model0, x_tr, y_tr, steps=steps, **first_kwargs)

        def replay(epochs: int) -> tuple[Any, History]:
            # Same initial network, same key: the same trajectory, cut after `epochs` epochs.
            return _engine_fit(model0, x_tr, y_tr, steps=epochs * spe, **kwargs)

        losses = np.asarray(history.loss)
        converged = history.stop_reason == "converged"
        val_scores = None
        if history.stop_reason in ("non_finite_loss", "diverged", "interrupted"):
            n_iter = -(-history.steps // spe)
        elif lbfgs:
            n_iter = history.steps - (1 if converged else 0)  # the converging step: no update
        elif validation is not None:
            val_scores = self._validation_scores(np.asarray(history.val_loss), validation[1])
            stop, best = _score_stop(val_scores, self.tol, self.n_iter_no_change)
            n_iter = stop if stop is not None else len(val_scores)
            converged = stop is not None
            if history.best_step is not None:
                returned = history.best_step // spe
            else:
                returned = history.steps // spe
            if best != returned:
                model, history = replay(best)
            val_scores = val_scores[:n_iter]
        else:
            n_iter = -(-history.steps // spe)

        if lbfgs:
            curve = losses[:n_iter] * scale
        else:
            curve = _epoch_means(losses[: n_iter * spe], n_tr, batch) * scale
        if not converged and history.stop_reason == "completed":
            what = "lbfgs" if lbfgs else "Stochastic Optimizer"
            warnings.warn(
                f"{what}: Maximum iterations ({self.max_iter}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.model_ = Standardized(model.model, x_scaler, y_scaler)
        self.history_ = history
        self.n_iter_ = int(n_iter)
        self.loss_curve_ = [float(v) for v in curve]
        if lbfgs and np.isfinite(history.final_loss):
            self.loss_ = float(history.final_loss) * scale
        else:
            self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")
        self.best_loss_ = None if (validation is not None or not curve.size) else float(curve.min())
        if val_scores is not None:
            self.validation_scores_ = [float(v) for v in val_scores]
            self.best_validation_score_ = max(self.validation_scores_)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        return self

    def _raw_predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        x = np.asarray(validate_data(self, X, reset=False, dtype=(np.float64, np.float32)))
        return _predict_rows(self.model_, x)

    def __eqx_ffn_save__(self) -> tuple[Standardized, dict[str, Any]]:
        """`(network, metadata)` for a model file: what `eqx_ffn.sklearn.save` writes (and
        `eqx_ffn.save(path, estimator)` could, by calling this)."""
        return self.model_, {"eqx_ffn.sklearn": _record(self)}

    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state.get("model_"), Standardized):
            state = dict(state, model_=_portable(state["model_"]))
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), dict):
            state = dict(state, model_=_from_portable(state["model_"]))
        super().__setstate__(state)


_PARAMETERS_DOC = """
    **Arguments** (stored as given; checked by `fit`). Named and meant as scikit-learn's
    `MLPRegressor` / `MLPClassifier` ones:

    - `hidden_layer_sizes`: widths of the hidden layers, default `(100,)`; an int is one layer.
    - `activation`: `"relu"` (default), `"tanh"`, `"logistic"`, `"identity"`, or our
      `"sigmoid"` (= logistic), `"gelu"`, `"softplus"`, `"silu"`, `"elu"`.
    - `solver`: `"adam"` (default), `"sgd"` (momentum 0.9, Nesterov, constant learning rate, as
      scikit-learn's defaults), `"lbfgs"` (optax's L-BFGS with a zoom line search, full
      batch), our `"adamw"` / `"rmsprop"`, or any `optax.GradientTransformation` (trained
      like `"adam"`, with its own learning rate).
    - `alpha`: L2 penalty, default `1e-4`, scaled as scikit-learn scales it: per batch
      `0.5 * alpha * sum(W**2) / S`, `S` the batch's sample-weight sum (here the batch size
      times the mean weight; the last, smaller batch of an epoch gets the same penalty as the
      others). It penalises the weights of the network as trained, i.e. on standardised
      inputs (and targets, for regression) when `standardize=True`; biases are not penalised.
    - `batch_size`: `"auto"` (default) is `min(200, N)`; a larger int is clipped to N with a
      warning. Not used by `"lbfgs"`.
    - `learning_rate_init`: default `1e-3`; used by the named stochastic solvers.
    - `max_iter`: epochs (each sample once per epoch, a fresh permutation each epoch) for the
      stochastic solvers; iterations for `"lbfgs"`. Default 200.
    - `tol`, `n_iter_no_change`: without early stopping, training stops once the epoch's mean
      training loss (scikit-learn's units: `0.5 * MSE` of the targets the network is trained
      on, or the log-loss, plus the penalty) has not improved by `tol` for more than
      `n_iter_no_change` consecutive epochs (defaults `1e-4` and 10); the network of that epoch
      is returned. With `"lbfgs"`, `tol` is SciPy's `gtol`: it stops once the largest
      gradient entry of that loss is at most `tol`, or the loss stalls (SciPy's `ftol`).
      A run that ends at `max_iter` without stopping warns (`ConvergenceWarning`).
    - `early_stopping`: hold out `validation_fraction` (default 0.1; stratified for the
      classifier) and stop once the validation score has not improved by `tol` for more than
      `n_iter_no_change` epochs; the best network is returned. Stochastic solvers only, as in
      scikit-learn. The validation loss is not sample-weighted (`eqx_ffn.fit` validates
      without weights); scikit-learn weights its validation score.
    - `random_state`: an int gives the same network bit for bit on every fit (it seeds
      `jax.random.key` for the initial weights and the batch order, and the validation split);
      `None` (default) draws a seed from NumPy's global generator and a `RandomState` from
      itself, as scikit-learn does.
    - `verbose`: show `fit`'s progress bar (tqdm, with the loss) instead of printing.

    Ours:

    - `init`: weight initialisation, `"glorot_uniform"` (default; scikit-learn's scheme, with zero
      biases) or any of `eqx_ffn.INITS`.
    - `standardize`: train the network on standardised inputs and, for regression,
      standardised targets (so losses, `tol` and `alpha` do not depend on the data's units);
      the scalers (sample-weighted means and standard deviations of the data given to `fit`)
      are part of `model_`, which predicts in the data's units. Default `True`.
    - `compute_dtype`: run the forward and backward passes in this dtype (e.g. `"bfloat16"`);
      needs an `eqx_ffn.fit` that takes `compute_dtype`.
"""

_ATTRIBUTES_DOC = """
    **Attributes after `fit`:** `model_` (the trained `eqx_ffn.Standardized` wrapping an
    `eqx_ffn.FFN`; `eqx_ffn.predict(model_, x)` gives {what}), `history_` (the `eqx_ffn.History`
    of the fit that produced it), `n_iter_` (epochs, or L-BFGS iterations), `loss_curve_` (the
    training loss per epoch, or per L-BFGS iteration, in scikit-learn's units), `loss_`,
    `best_loss_`, `validation_scores_` and `best_validation_score_` (with early stopping, else
    `None`; {scores}), `n_features_in_`, `feature_names_in_` (for DataFrames){extra}.
"""


class FFNRegressor(RegressorMixin, _FFNEstimator):
    """A feedforward network regressor with scikit-learn's estimator interface.

    Trains an `eqx_ffn.FFN` with `eqx_ffn.fit` (one compiled loop) on the mean squared error;
    works in `Pipeline`, `GridSearchCV`, `cross_val_score`. `y` may be 1-D or 2-D (several
    outputs); `predict` returns the same number of dimensions.
    """

    __doc__ = (
        (__doc__ or "")
        + _PARAMETERS_DOC
        + _ATTRIBUTES_DOC.format(
            what="predictions in the data's units",
            scores="the validation R² per epoch (of the targets the network is trained on; "
            "with several outputs, 1 - SSE / SST with both summed over outputs)",
            extra="",
        )
        + """
    ```python
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from eqx_ffn.sklearn import FFNRegressor

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    reg = FFNRegressor(early_stopping=True, random_state=0).fit(x_train, y_train)
    print(reg.score(x_test, y_test), reg.predict(x_test[:3]).shape)   # R² ~0.4, (3,)
    ```
    """
    )

    _classifier = False
    _y_ndim: int  # of the y given to fit: predict returns as many dimensions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FFNRegressor:
        """Train on `X` (N, n_features) and `y` (N,) or (N, n_outputs).

        **Arguments:** `X`, `y` (array-likes or DataFrames), `sample_weight` (N,) >= 0 or None.

        **Returns:** `self`, fitted.
        """
        self._validate_params()
        x, y_arr = _validated(self, X, y, multi_output=True, y_numeric=True)
        y_arr = y_arr.astype(np.float64)
        self._y_ndim = y_arr.ndim
        y2 = y_arr[:, None] if y_arr.ndim == 1 else y_arr
        self.n_outputs_ = y2.shape[1]
        return self._fit(x, y2, sample_weight, y2.shape[1])

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        # The engine's validation loss is the MSE over samples and outputs of the (standardised)
        # targets: R² = 1 - SSE / SST, both summed over outputs (for one output, R² itself).
        sst = float(np.mean(np.var(y_val, axis=0)))
        if sst == 0.0:  # a constant validation target: r2_score's force_finite convention
            return np.where(val_loss == 0, 1.0, 0.0)
        return 1.0 - np.asarray(val_loss, np.float64) / sst

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for `X` (N, n_features): shape (N,) when `y` was 1-D, else
        (N, n_outputs); float64 (computed in the network's dtype, float32 by default)."""
        out = self._raw_predict(X)
        return out[:, 0] if self._y_ndim == 1 else out


class FFNClassifier(ClassifierMixin, _FFNEstimator):
    """A feedforward network classifier with scikit-learn's estimator interface.

    Trains an `eqx_ffn.FFN` with one output per class on the softmax cross-entropy with
    `eqx_ffn.fit`; labels may be any values scikit-learn accepts (strings, integers, ...), two
    classes or more. `predict_proba` is the softmax of the network's outputs (two columns for
    two classes).
    """

    __doc__ = (
        (__doc__ or "")
        + _PARAMETERS_DOC
        + _ATTRIBUTES_DOC.format(
            what="the logits",
            scores="the negative validation log-loss per epoch, which early stopping watches "
            "(scikit-learn's MLPClassifier watches accuracy)",
            extra=", `classes_`, `n_outputs_`",
        )
        + """
    ```python
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from eqx_ffn.sklearn import FFNClassifier

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0, stratify=y)
    clf = FFNClassifier(random_state=0).fit(x_train, y_train)
    print(clf.score(x_test, y_test), clf.predict_proba(x_test[:2]).sum(axis=1))   # 1.0 [1. 1.]
    ```
    """
    )

    _classifier = True
    classes_: np.ndarray

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FFNClassifier:
        """Train on `X` (N, n_features) and labels `y` (N,).

        **Arguments:** `X` (array-like or DataFrame), `y` (N,) labels of any type scikit-learn
        accepts, `sample_weight` (N,) >= 0 or None.

        **Returns:** `self`, fitted.
        """
        self._validate_params()
        x, y_arr = _validated(self, X, y)
        y_arr = np.asarray(column_or_1d(y_arr, warn=True))
        check_classification_targets(y_arr)
        encoder = LabelEncoder().fit(y_arr)
        self.classes_ = np.asarray(encoder.classes_)
        if len(self.classes_) < 2:
            raise ValueError(
                f"FFNClassifier needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r})."
            )
        self.n_outputs_ = 1
        codes = encoder.transform(y_arr).astype(np.int32)
        return self._fit(x, codes, sample_weight, len(self.classes_))

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        return -np.asarray(val_loss, np.float64)  # scikit-learn's "neg_log_loss"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities for `X` (N, n_features): shape (N, n_classes), columns in the
        order of `classes_`, rows summing to 1 (float64)."""
        return softmax(self._raw_predict(X), axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of `predict_proba`, computed stably: shape (N, n_classes)."""
        logits = self._raw_predict(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class for each row of `X`: shape (N,), values from `classes_`."""
        logits = self._raw_predict(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(logits, axis=1)]


# -- one model file ----------------------------------------------------------------------------

_ESTIMATORS = {"FFNRegressor": FFNRegressor, "FFNClassifier": FFNClassifier}


def _json_param(value: Any) -> tuple[bool, Any]:
    """`(storable, JSON value)` for an estimator parameter."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, numbers.Integral):
        return True, int(value)
    if isinstance(value, numbers.Real):
        return math.isfinite(value), float(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value):
        return True, [int(v) for v in value]
    if isinstance(value, (np.dtype, type)):
        try:
            return True, jnp.dtype(value).name
        except TypeError:
            return False, None
    return False, None


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _record(estimator: _FFNEstimator) -> dict[str, Any]:
    """What a model file keeps of a fitted estimator besides its network (JSON values)."""
    check_is_fitted(estimator)
    params, left_out = {}, []
    for name, value in estimator.get_params(deep=False).items():
        ok, stored = _json_param(value)
        if ok:
            params[name] = stored
        else:
            left_out.append(name)
    scores = estimator.validation_scores_
    record: dict[str, Any] = {
        "estimator": "FFNClassifier" if isinstance(estimator, FFNClassifier) else "FFNRegressor",
        "params": params,
        "left_out": left_out,
        "n_features_in": int(estimator.n_features_in_),
        "n_iter": int(estimator.n_iter_),
        "loss_curve": [_finite_or_none(v) for v in estimator.loss_curve_],
        "loss": _finite_or_none(estimator.loss_),
        "best_loss": _finite_or_none(estimator.best_loss_),
        "validation_scores": None if scores is None else [_finite_or_none(v) for v in scores],
        "best_validation_score": _finite_or_none(estimator.best_validation_score_),
    }
    names = getattr(estimator, "feature_names_in_", None)
    record["feature_names_in"] = None if names is None else [str(v) for v in names]
    if isinstance(estimator, FFNClassifier):
        classes = estimator.classes_
        record["classes"] = classes.tolist()
        record["classes_dtype"] = classes.dtype.str if classes.dtype != object else "object"
    elif isinstance(estimator, FFNRegressor):
        record["y_ndim"] = int(estimator._y_ndim)
    return record


def save(path: str | os.PathLike, estimator: FFNRegressor | FFNClassifier) -> Path:
    """Save a fitted estimator to one `eqx_ffn` model file.

    The file is the one `eqx_ffn.save(path, estimator.model_)` writes (so `eqx_ffn.load` reads
    the network), with the estimator's parameters, classes, feature names and training record
    in its metadata (under `"eqx_ffn.sklearn"`). A parameter that JSON cannot hold (an optax
    solver, a `RandomState`) is left out; `load` then gives it its default and says so.

    **Arguments:** `path`; `estimator`, a fitted `FFNRegressor` or `FFNClassifier`.

    **Returns:** the path written.

    ```python
    eqx_ffn.sklearn.save("clf.eqx", clf)
    same = eqx_ffn.sklearn.load("clf.eqx")    # predicts as clf does
    ```
    """
    if not isinstance(estimator, (FFNRegressor, FFNClassifier)):
        raise TypeError(
            f"save expects a fitted FFNRegressor or FFNClassifier; got {type(estimator).__name__}."
        )
    model, metadata = estimator.__eqx_ffn_save__()
    return _save_model(path, model, metadata=metadata)


def load(path: str | os.PathLike) -> FFNRegressor | FFNClassifier:
    """Load an estimator written by `eqx_ffn.sklearn.save`: fitted, ready to predict.

    **Raises:** `ValueError` if the file holds a network without an estimator's record (load it
    with `eqx_ffn.load`); `eqx_ffn.ModelFileError` as `eqx_ffn.load` does.
    """
    record = _read_header(path).get("metadata", {}).get("eqx_ffn.sklearn")
    if not isinstance(record, dict) or record.get("estimator") not in _ESTIMATORS:
        raise ValueError(
            f"{path} holds a network but no scikit-learn estimator: load it with eqx_ffn.load."
        )
    cls = _ESTIMATORS[record["estimator"]]
    params = dict(record["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if record["left_out"]:
        warnings.warn(
            f"{path}: the parameter(s) {', '.join(record['left_out'])} could not be stored and "
            "have their default values; the network itself is the saved one.",
            UserWarning,
            stacklevel=2,
        )
    est = cls(**params)
    model = _load_model(path)
    assert isinstance(model, Standardized)
    est.model_ = model
    est.n_features_in_ = record["n_features_in"]
    if record["feature_names_in"] is not None:
        est.feature_names_in_ = np.asarray(record["feature_names_in"], dtype=object)
    est.n_iter_ = record["n_iter"]
    nan = float("nan")
    est.loss_curve_ = [nan if v is None else v for v in record["loss_curve"]]
    est.loss_ = nan if record["loss"] is None else record["loss"]
    est.best_loss_ = record["best_loss"]
    scores = record["validation_scores"]
    est.validation_scores_ = None if scores is None else [nan if v is None else v for v in scores]
    est.best_validation_score_ = record["best_validation_score"]
    if isinstance(est, FFNClassifier):
        est.classes_ = np.asarray(record["classes"], dtype=np.dtype(record["classes_dtype"]))
        est.n_outputs_ = 1
    else:
        est._y_ndim = record["y_ndim"]
        est.n_outputs_ = int(model.out_size)
    return est
