"""What `FFNRegressor` and `FFNClassifier` share: parameters, their constraints, and `fit`.

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
  default `ftol`), also tested in the loop (`_scipy_lbfgs`). With `early_stopping`, the rule on
  validation scores (`_rules._score_stop`) is applied to the scores `fit` records, and the fit is
  replayed with the same key up to the best epoch when the engine's patience picked another.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import default_float
from ..model._ffn import FFN
from ..model._init import INITS
from ..model._standardize import Standardized, Standardizer
from ..training._fit import fit as _engine_fit
from ..training._history import History
from ._inputs import sample_weight as _sample_weight
from ._inputs import validated_x
from ._network import from_portable, portable, predict_rows, scaler
from ._partial import Continuation, PartialFitMixin
from ._record import record as _record
from ._rules import _epoch_means, _score_stop
from ._scipy_lbfgs import SCIPY_LBFGS

__all__ = ["ACTIVATION_NAMES", "SOLVER_NAMES", "_FFNEstimator"]

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


@functools.lru_cache(maxsize=32)
def _nesterov_sgd(learning_rate: float) -> optax.GradientTransformation:
    # scikit-learn's solver="sgd" defaults: momentum 0.9, Nesterov, constant learning rate.
    return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
        learning_rate=learning_rate, momentum=0.9, nesterov=True
    )


class _Data(NamedTuple):
    """The rows one fit trains on, and how it walks through them."""

    x: np.ndarray  # training inputs (N_train, d)
    y: np.ndarray  # encoded targets, standardised for regression with standardize=True
    weight: np.ndarray | None  # training sample weights
    validation: tuple[np.ndarray, np.ndarray] | None  # held out for early stopping
    batch: int  # rows a step
    steps_per_epoch: int
    lbfgs: bool  # solver="lbfgs": full batch, SciPy's stopping tests, max_iter iterations


class _Outcome(NamedTuple):
    """What a fit returned, read with scikit-learn's rules."""

    model: Any
    history: History
    n_iter: int  # epochs, or L-BFGS iterations
    converged: bool  # stopped by a rule before max_iter
    val_scores: np.ndarray | None  # per epoch, with early stopping


class _FFNEstimator(PartialFitMixin, BaseEstimator):
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
        "warm_start": ["boolean"],
    }

    _classifier: bool = False
    _record_name: ClassVar[str]  # the estimator's name in a model file's record
    _record_keys: ClassVar[tuple[str, ...]]  # the record's fields only this kind has
    # fitted attributes (set by `fit`)
    model_: Standardized
    history_: History
    n_iter_: int
    t_: int
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
        warm_start=False,
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
        self.warm_start = warm_start

    # -- pieces the subclasses define

    @property
    def _loss_scale(self) -> float:
        """scikit-learn's loss over ours: 0.5 for the squared error, 1 for the log-loss."""
        return 1.0 if self._classifier else 0.5

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _record_fields(self) -> dict[str, Any]:
        """The fields of a model file's estimator record that only this kind has."""
        raise NotImplementedError

    # -- parameters, as fit uses them

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

    def _network_activation(self) -> str:
        """The name `FFN` takes for `activation`."""
        return ACTIVATION_NAMES[self.activation]

    def _lbfgs(self) -> bool:
        return isinstance(self.solver, str) and self.solver == "lbfgs"

    # -- fitting

    def _fit(self, x: np.ndarray, y: np.ndarray, sample_weight: Any, out_size: int):
        """Train on validated `x` (N, d) and encoded targets `y` ((N, k) floats or (N,) class
        indices); sets the fitted attributes.

        **Returns:** `self`.
        """
        hidden = self._hidden_sizes()
        compute_dtype = self._compute_dtype()
        seed = self._seed()
        k_fit = jr.split(jr.key(seed))[1]
        weight = _sample_weight(sample_weight, x)

        # The network is trained on standardised targets (as inside scikit-learn's
        # TransformedTargetRegressor with a StandardScaler): losses, `tol` and `alpha` do not
        # depend on the targets' units. The y scaler is put around the trained network.
        warm = self._warm_network(x.shape[1], out_size, hidden)
        if warm is not None:
            # scikit-learn's warm_start: the previous network is the initial one; its scalers
            # stay, so that its weights keep their meaning (the optimizer starts afresh)
            net = Standardized(warm, self.model_.x_scaler, self.model_.y_scaler)
        else:
            net = self._new_network(x, y, weight, out_size, hidden, seed)
        x_scaler, y_scaler, ffn = net.x_scaler, net.y_scaler, net.model
        if y_scaler is not None:
            mean, std = (np.asarray(a, np.float64) for a in (y_scaler.mean, y_scaler.scale))
            y = (y - mean) / std

        data = self._training_data(x, y, weight, seed)
        model0 = Standardized(ffn, x_scaler, None)
        kwargs = self._engine_kwargs(data, k_fit, compute_dtype)
        outcome = self._run(model0, data, kwargs)
        self._set_fitted(outcome, data, x_scaler, y_scaler)
        self._continuation = Continuation(seed, self.n_iter_, None)  # for a later partial_fit
        return self

    def _new_network(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weight: Any,
        out_size: int,
        hidden: tuple[int, ...],
        seed: int,
    ) -> Standardized:
        """The network a fit starts from when it starts afresh (`fit`, the first
        `partial_fit`): the scalers of these data (`standardize`; no y scaler for a
        classifier) around an `FFN` initialised from the first key of `seed`."""
        dtype = default_float()  # the network's: float32, float64 under jax_enable_x64
        k_init = jr.split(jr.key(seed))[0]
        x_scaler = y_scaler = None
        if self.standardize:
            x_scaler = scaler(x, weight, dtype)
            if not self._classifier:
                y_scaler = scaler(y, weight, dtype)
        activation = self._network_activation()
        ffn = FFN(x.shape[1], out_size, hidden, activation=activation, init=self.init, key=k_init)
        return Standardized(ffn, x_scaler, y_scaler)

    def _warm_network(self, n_features: int, out_size: int, hidden: tuple[int, ...]) -> Any:
        """With `warm_start` and a fitted network: that network (checked to fit these data and
        parameters), else None."""
        if not self.warm_start or not hasattr(self, "model_"):
            return None
        what = "warm_start=True continues the fitted network"
        way_out = "Set warm_start=False to train a new network"
        return self._same_network(n_features, out_size, hidden, what, way_out)

    def _same_network(
        self, n_features: int, out_size: int, hidden: tuple[int, ...], what: str, way_out: str
    ) -> Any:
        """The fitted network, checked to have the shape these data and parameters need.

        **Raises:** `ValueError`: `what`, both shapes, and `way_out` (a sentence).
        """
        ffn: Any = self.model_.model
        shape = (n_features, out_size, hidden, self._network_activation())
        was = (ffn.in_size, ffn.out_size, tuple(ffn.hidden_sizes), ffn.activation_name)
        if shape != was:
            raise ValueError(
                f"{what}, which has (inputs, outputs, hidden_layer_sizes, activation) = {was}; "
                f"these data and parameters need {shape}. {way_out}."
            )
        return ffn

    def _training_data(
        self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, seed: int
    ) -> _Data:
        """The training rows (less the validation part with early stopping) and the batch."""
        x_tr, y_tr, w_tr, validation = x, y, weight, None
        lbfgs = self._lbfgs()
        if self.early_stopping and not lbfgs:
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
                    stacklevel=4,  # fit's caller
                )
                batch = n_tr
        return _Data(x_tr, y_tr, w_tr, validation, batch, -(-n_tr // batch), lbfgs)

    def _engine_kwargs(self, data: _Data, key: Any, compute_dtype: Any) -> dict[str, Any]:
        """`eqx_ffn.fit`'s keywords for this estimator's parameters (validation excluded)."""
        # scikit-learn's penalty 0.5 * alpha * |W|^2 / S per batch, S the batch's weight sum
        scale = self._loss_scale
        w_tr = data.weight
        mean_w = 1.0 if w_tr is None else float(np.mean(w_tr))
        l2 = 0.5 * self.alpha / (scale * data.batch * mean_w)
        if w_tr is not None and np.all(w_tr == w_tr[0]):
            w_tr = None  # constant weights: the same weighted mean, and no weighting pass

        learning_rate = None
        if data.lbfgs:
            optimizer: Any = SCIPY_LBFGS
        elif isinstance(self.solver, str) and self.solver == "sgd":
            # the same step on our loss as scikit-learn's on its (scale times ours)
            optimizer = _nesterov_sgd(float(self.learning_rate_init) * scale)
        elif isinstance(self.solver, str):
            optimizer, learning_rate = self.solver, float(self.learning_rate_init)
        else:
            optimizer = self.solver
        n_tr = data.x.shape[0]
        kwargs: dict[str, Any] = {
            "optimizer": optimizer,
            "learning_rate": learning_rate,
            "batch_size": None if data.batch == n_tr else data.batch,
            "loss": "softmax_cross_entropy" if self._classifier else "mse",
            "key": key,
            "l2": l2,
            "sample_weight": w_tr,
            "progress": bool(self.verbose),
        }
        if compute_dtype is not None:
            kwargs["compute_dtype"] = compute_dtype
        # Without early stopping, scikit-learn's rules run inside the compiled loop: SciPy's
        # gtol/ftol for L-BFGS, the training-loss plateau (tol, n_iter_no_change) otherwise; the
        # fit stops at that iteration/epoch and returns its network, in one pass.
        if data.validation is None:
            kwargs.update(tol=float(self.tol) / scale, n_iter_no_change=int(self.n_iter_no_change))
        else:
            kwargs.update(tol=0.0)
        return kwargs

    def _run(self, model0: Standardized, data: _Data, kwargs: dict[str, Any]) -> _Outcome:
        """Run `eqx_ffn.fit` and read its History with scikit-learn's rules (replaying the fit
        up to the best epoch when early stopping's rule picks another than the engine's)."""
        spe = data.steps_per_epoch
        first_kwargs = dict(kwargs)
        if data.validation is not None:
            # The engine's patience stops no earlier than scikit-learn's rule on validation
            # scores (which also needs `tol` of improvement); that rule is applied below.
            patience = int(self.n_iter_no_change) + 1 if self.tol > 0 else None
            first_kwargs.update(validation=data.validation, eval_every=spe, patience=patience)
        steps = self.max_iter * spe
        model, history = _engine_fit(model0, data.x, data.y, steps=steps, **first_kwargs)

        converged = history.stop_reason == "converged"
        val_scores = None
        if history.stop_reason in ("non_finite_loss", "diverged", "interrupted"):
            n_iter = -(-history.steps // spe)
        elif data.lbfgs:
            n_iter = history.steps - (1 if converged else 0)  # the converging step: no update
        elif data.validation is not None:
            val_scores = self._validation_scores(np.asarray(history.val_loss), data.validation[1])
            stop, best = _score_stop(val_scores, self.tol, self.n_iter_no_change)
            n_iter = stop if stop is not None else len(val_scores)
            converged = stop is not None
            if history.best_step is not None:
                returned = history.best_step // spe
            else:
                returned = history.steps // spe
            if best != returned:
                # Same initial network, same key: the same trajectory, cut after `best` epochs.
                model, history = _engine_fit(model0, data.x, data.y, steps=best * spe, **kwargs)
            val_scores = val_scores[:n_iter]
        else:
            n_iter = -(-history.steps // spe)
        return _Outcome(model, history, int(n_iter), converged, val_scores)

    def _set_fitted(
        self,
        outcome: _Outcome,
        data: _Data,
        x_scaler: Standardizer | None,
        y_scaler: Standardizer | None,
    ) -> None:
        """Set the fitted attributes from a fit's outcome (and warn if it did not converge)."""
        history, n_iter, scale = outcome.history, outcome.n_iter, self._loss_scale
        losses = np.asarray(history.loss)
        if data.lbfgs:
            curve = losses[:n_iter] * scale
        else:
            n_tr = data.x.shape[0]
            curve = _epoch_means(losses[: n_iter * data.steps_per_epoch], n_tr, data.batch) * scale
        if not outcome.converged and history.stop_reason == "completed":
            what = "lbfgs" if data.lbfgs else "Stochastic Optimizer"
            warnings.warn(
                f"{what}: Maximum iterations ({self.max_iter}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,  # fit's caller
            )
        self.model_ = Standardized(outcome.model.model, x_scaler, y_scaler)
        self.history_ = history
        self.n_iter_ = n_iter
        self.t_ = 0 if data.lbfgs else n_iter * data.x.shape[0]  # samples seen (scikit-learn's)
        self.loss_curve_ = [float(v) for v in curve]
        if data.lbfgs and np.isfinite(history.final_loss):
            self.loss_ = float(history.final_loss) * scale
        else:
            self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        validation = data.validation is not None
        self.best_loss_ = None if (validation or not curve.size) else float(curve.min())
        if outcome.val_scores is not None:
            self.validation_scores_ = [float(v) for v in outcome.val_scores]
            self.best_validation_score_ = max(self.validation_scores_)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # -- predicting, saving, pickling

    def _raw_predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return predict_rows(self.model_, validated_x(self, X))

    def __eqx_ffn_save__(self) -> tuple[Standardized, dict[str, Any]]:
        """`(network, metadata)` for a model file: what `eqx_ffn.sklearn.save` writes (and
        `eqx_ffn.save(path, estimator)` could, by calling this).

        **Raises:** scikit-learn's `NotFittedError` for an estimator that is not fitted.
        """
        check_is_fitted(self)
        return self.model_, {"eqx_ffn.sklearn": _record(self)}

    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state.get("model_"), Standardized):
            state = dict(state, model_=portable(state["model_"]))
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), dict):
            state = dict(state, model_=from_portable(state["model_"]))
        super().__setstate__(state)
