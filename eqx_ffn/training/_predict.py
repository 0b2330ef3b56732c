"""Batched prediction with input checks: one compiled program per model structure and size
bucket of N (the rows are padded to the bucket and the padding cut off again)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._data import check_features, float_dtype, model_sizes, pad_rows
from ._engine import bucket, precision_context
from ._fit import _check_precision


@eqx.filter_jit
def _apply(model, x, precision):
    with precision_context(precision):
        return jax.vmap(model)(x)


def _batched(model: Any, x: Any, precision: str | None, argument: str = "x") -> Array:
    in_size, _ = model_sizes(model)
    dtype = jnp.promote_types(float_dtype(model), jnp.float32)
    arr = check_features(x, in_size, argument, dtype=float_dtype(model))
    n = int(arr.shape[0])
    out = _apply(model, jnp.asarray(pad_rows(arr, bucket(n))), _check_precision(precision))
    return out[:n].astype(jnp.promote_types(out.dtype, dtype))


def predict(model: Any, x: Any, *, precision: str | None = None) -> Float[Array, "N out_size"]:
    """`jax.vmap(model)(x)` after checking `x`, compiled once per model structure and size
    bucket of N.

    **Arguments:**

    - `model`: an `FFN`, `Standardized`, or any module with `in_size`/`out_size`.
    - `x`: shape `(N, in_size)`, finite (a JAX or NumPy array, a DataFrame, nested lists).
    - `precision`: matmul precision, `"default"`, `"high"` or `"highest"` (`None`: JAX's default).

    **Returns:** predictions of shape `(N, out_size)` (logits for a classifier), float32 or wider.

    ```python
    y_hat = eqx_ffn.predict(model, x_test)
    ```
    """
    return _batched(model, x, precision)


def predict_proba(
    model: Any, x: Any, *, precision: str | None = None
) -> Float[Array, "N n_classes"]:
    """Class probabilities of a classifier trained with `loss="softmax_cross_entropy"`: the
    softmax of `predict(model, x)` over its `out_size` outputs.

    **Returns:** shape `(N, n_classes)`, each row summing to 1.

    ```python
    proba = eqx_ffn.predict_proba(model, x_test)
    labels = proba.argmax(axis=1)
    ```
    """
    return jax.nn.softmax(_batched(model, x, precision), axis=-1)
