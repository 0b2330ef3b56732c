"""The parameter and attribute documentation `FFNRegressor` and `FFNClassifier` share."""

from __future__ import annotations

__all__ = ["ATTRIBUTES_DOC", "PARAMETERS_DOC", "PARTIAL_FIT_DOC"]

PARAMETERS_DOC = """
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
    - `verbose`: show `fit`'s progress bar (tqdm, with the loss) instead of printing;
      `partial_fit` prints its epoch's loss, as scikit-learn does.
    - `warm_start`: `True` makes each `fit` after the first start from the fitted network
      (and keep its standardisation) instead of a new one; the optimizer starts afresh, as in
      scikit-learn. The data must have the same features, outputs (classes) and the same
      `hidden_layer_sizes` and `activation`. Default `False`.

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

ATTRIBUTES_DOC = """
    **Attributes after `fit`:** `model_` (the trained `eqx_ffn.Standardized` wrapping an
    `eqx_ffn.FFN`; `eqx_ffn.predict(model_, x)` gives {what}), `history_` (the `eqx_ffn.History`
    of the fit or `partial_fit` call that produced it), `n_iter_` (epochs, or L-BFGS
    iterations; 1 after `partial_fit`), `t_` (training samples seen by the stochastic solvers,
    over `partial_fit` calls too), `loss_curve_` (the training loss per epoch, or per L-BFGS
    iteration, in scikit-learn's units; `partial_fit` appends its epoch's), `loss_`,
    `best_loss_`, `validation_scores_` and `best_validation_score_` (with early stopping, else
    `None`; {scores}), `n_features_in_`, `feature_names_in_` (for DataFrames){extra}.
"""

PARTIAL_FIT_DOC = """
    **`partial_fit`** (scikit-learn's meaning; stochastic solvers only: `hasattr(estimator,
    "partial_fit")` is False for `solver="lbfgs"`): each call trains one epoch over the data it
    is given, from the current network, and keeps the optimizer's state (Adam's moments and
    step count) for the next call; no early stopping (`early_stopping=True` raises) and no
    stopping rule. The first call on an unfitted estimator initialises it from its data as
    `fit` would (`n_features_in_`, the scalers of `standardize`, the network; the classifier's
    `classes` argument fixes `classes_`); later calls need the same features. Call k draws its
    batches as epoch k of the estimator's key, so K calls on the same data give the network
    `fit` gives with `max_iter=K`, bit for bit, when its stopping rule does not end that fit
    sooner. Calls with data of one size reuse one compiled program. `fit` afterwards starts a
    new network (with `warm_start`, from the current one, with a fresh optimizer);
    `partial_fit` after `fit` continues the fitted network with a fresh optimizer state (`fit`
    does not keep its own).
"""
