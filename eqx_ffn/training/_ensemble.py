"""Ensembles: K networks trained in ONE compiled program (`eqx.filter_vmap` over members)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from ._driver import run
from ._fit import Model, as_master, as_model_dtypes, split_model, with_frozen
from ._history import History
from ._options import FitOptions
from ._predict import predict_rows
from ._prepare import Prepared, initial_state

PyTree = Any
M = TypeVar("M")


def _member_values(value: Any, k: int, argument: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    if arr.shape != (k,):
        raise ValueError(
            f"{argument} must be a number or an array of shape ({k},); got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{argument} must be finite and >= 0.")
    return arr


def split_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """How `fit_ensemble` uses a member's key: `(model_key, fit_key) = jax.random.split(key)`."""
    model_key, fit_key = jr.split(key)
    return model_key, fit_key


def fit_ensemble(
    make_model: Callable[[jax.Array], Model],
    x: Any,
    y: Any,
    *,
    keys: jax.Array,
    **options: Any,
) -> tuple[Model, list[History]]:
    """Train K models at once, in one compiled program; returns `(stacked_model, histories)`.

    Member `i` is what `fit` gives for `make_model(model_key_i)` trained with `key=fit_key_i`,
    where `model_key_i, fit_key_i = jax.random.split(keys[i])` (up to floating-point rounding of
    the batched arithmetic). Every `fit` behaviour holds per member: validation, early stopping
    (a member that stops is frozen at its best model while the others go on), convergence, the
    non-finite guard, the progress bar.

    **Arguments:**

    - `make_model`: `key -> model`, e.g. `lambda k: eqx_ffn.FFN(1, 1, (16,), key=k)`.
    - `keys`: K keys, e.g. `jax.random.split(jax.random.key(0), 8)`.
    - `learning_rate`: a number, or an array of shape `(K,)` of per-member learning rates (for an
      optimizer given by name, except `"lbfgs"`).
    - `l1`, `l2`: numbers or arrays of shape `(K,)` (per-member weight penalties).
    - `mesh`: a 1-D `jax.sharding.Mesh` or a list of D devices: the members are split over
      them (each device trains K / D members on a full copy of the data; K must be a multiple
      of D); the result is the unsharded ensemble's up to floating-point rounding. None (the
      default): one device.
    - every other keyword of `fit` (`FitOptions`) except `key` (the members' keys come from
      `keys`), with the same meaning and default.

    **Returns:** the members stacked along a leading axis of every array (use
    `ensemble_member(models, i)` for one, `ensemble_predict(models, x)` for mean and spread), and
    one `History` per member.
    """
    t_start = time.perf_counter()
    if "key" in options:
        raise TypeError("fit_ensemble() got an unexpected keyword argument 'key'")
    mesh = options.pop("mesh", None)
    if isinstance(make_model, eqx.Module) or not callable(make_model):
        raise TypeError(
            "fit_ensemble: make_model must be a function that builds one model from a key, e.g. "
            "lambda k: eqx_ffn.FFN(2, 1, (16,), key=k) (each member gets its own "
            f"initialisation); got {type(make_model).__name__}."
        )
    k, keys = _check_keys(keys)
    model_keys, fit_keys = jax.vmap(split_keys)(keys)
    models = eqx.filter_vmap(make_model)(model_keys)
    template = eqx.filter_eval_shape(ensemble_member, models, 0)  # shapes only: no slicing
    learning_rate = options.pop("learning_rate", None)
    lrs = None
    if learning_rate is not None and np.ndim(learning_rate) > 0:
        optimizer = options.get("optimizer", "adam")
        if not isinstance(optimizer, str) or optimizer not in ("adam", "adamw", "sgd", "rmsprop"):
            raise ValueError(
                "Per-member learning rates need an optimizer given by name ('adam', 'adamw', "
                "'sgd', 'rmsprop')."
            )
        lrs = _member_values(learning_rate, k, "learning_rate")
        if np.any(lrs <= 0):
            raise ValueError("learning_rate must be > 0.")
        learning_rate = None
    l1s = _member_values(options.pop("l1", 0.0), k, "l1")
    l2s = _member_values(options.pop("l2", 0.0), k, "l2")
    opts = FitOptions(learning_rate=learning_rate, l1=l1s, l2=l2s, **options)
    prep = Prepared(template, x, y, opts, ensemble=k, member_mesh=mesh)
    params, frozen, static = split_model(models)
    master = as_master(params, prep.master_dtype)
    if lrs is not None:
        lr = lrs
    elif opts.rate is not None:
        lr = np.full(k, opts.rate)
    else:
        lr = None
    state = initial_state(prep, master, frozen, fit_keys, l1s, l2s, lr)
    cfg = prep.config(static)
    result, histories = run(
        prep, cfg, state, desc=f"fit_ensemble[{k}]", t_start=t_start, stacklevel=2
    )
    if prep.master_dtype is not None:
        result = as_model_dtypes(result, params)
    return with_frozen(result, state.frozen, static), histories


def _check_keys(keys: Any) -> tuple[int, jax.Array]:
    """`(K, keys)` from a 1-D array of K >= 1 typed (or raw uint32) `jax.random` keys."""
    if isinstance(keys, jax.Array) and not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        if keys.ndim == 2 and keys.dtype == jnp.uint32:  # raw keys from jax.random.PRNGKey
            keys = jr.wrap_key_data(keys)
    if (
        not isinstance(keys, jax.Array)
        or not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
        or keys.ndim != 1
        or keys.shape[0] < 1
    ):
        raise ValueError(
            "keys must be a 1-D array of K >= 1 jax.random keys, e.g. "
            f"jax.random.split(jax.random.key(0), 8); got {getattr(keys, 'shape', keys)!r}."
        )
    return int(keys.shape[0]), keys


def ensemble_size(models: PyTree) -> int:
    """K, the number of stacked members (checked: an unstacked model is refused)."""
    from ..model._ffn import Dense

    leaves = jax.tree.leaves(eqx.filter(models, eqx.is_array))
    if not leaves:
        raise ValueError("models holds no arrays.")
    layers = [
        node
        for node in jax.tree.leaves(models, is_leaf=lambda n: isinstance(n, Dense))
        if isinstance(node, Dense)
    ]
    if any(layer.weight.ndim != 3 for layer in layers):
        raise ValueError(
            f"models must be a stacked ensemble as fit_ensemble returns it (every weight with a "
            f"leading member axis); got an unstacked {type(models).__name__}. For one model use "
            "eqx_ffn.predict(model, x)."
        )
    sizes = {int(leaf.shape[0]) if leaf.ndim else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            "models must be a stacked ensemble: every array needs the same leading member axis; "
            f"got leading sizes {sorted(sizes)}."
        )
    return sizes.pop()


def ensemble_member(models: M, i: int) -> M:
    """Member `i` of a stacked ensemble, as an ordinary model."""
    k = ensemble_size(models)
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(
            f"ensemble_member: i must be an integer index, 0 <= i < {k} (or -{k} <= i < 0 from "
            f"the end); got {i!r}. Use int(i) for a number held as another type."
        )
    if not -k <= i < k:
        raise IndexError(f"member {i!r} out of range for an ensemble of {k}.")
    arrays, static = eqx.partition(models, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda a: a[i], arrays), static)


@eqx.filter_jit
def _predict_all(models, x):
    return eqx.filter_vmap(lambda m: jax.vmap(m.__call__)(x))(models)


def ensemble_predict(
    models: PyTree, x: Any
) -> tuple[Float[Array, "N out_size"], Float[Array, "N out_size"]]:
    """Mean and standard deviation across members of the predictions for a batch `x`.

    **Arguments:** `models` stacked as `fit_ensemble` returns them; `x` of shape `(N, in_size)`,
    finite (checked as `predict` checks it).

    **Returns:** `(mean, std)`, each of shape `(N, out_size)`; `std` is a cheap uncertainty
    estimate (it grows away from the training data).

    ```python
    mean, std = eqx_ffn.ensemble_predict(models, x_new)
    ```
    """
    ensemble_size(models)
    template = eqx.filter_eval_shape(ensemble_member, models, 0)
    preds = predict_rows(template, x, lambda rows: _predict_all(models, rows), row_axis=1)
    return jnp.mean(preds, axis=0), jnp.std(preds, axis=0)
