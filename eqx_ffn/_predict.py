"""Batched prediction with input checks."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._data import check_features, float_dtype, model_sizes


@eqx.filter_jit
def _apply(model, x):
    return jax.vmap(model)(x)


def predict(model: Any, x: Any) -> Float[Array, "N out_size"]:
    """`jax.vmap(model)(x)`, compiled once per shape, after checking `x`.

    **Arguments:** `model` (an `FFN`, `Standardized`, ...), `x` of shape `(N, in_size)`, finite.

    **Returns:** predictions of shape `(N, out_size)` (logits for a classifier).
    """
    in_size, _ = model_sizes(model)
    arr = check_features(x, in_size, "x")
    return _apply(model, jnp.asarray(arr, float_dtype(model)))
