"""Checking training data before anything is compiled."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _as_numpy(value: Any, argument: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, (np.ndarray, jax.Array)):
        raise TypeError(f"{argument} must be a JAX or NumPy array; got {type(value).__name__}.")
    return np.asarray(value)


def _check_real_finite(arr: np.ndarray, argument: str) -> np.ndarray:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{argument} must hold real numbers; got dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{argument} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
            "remove or impute those samples."
        )
    return arr


def check_features(
    x: Any, in_size: int, argument: str = "x", *, allow_empty: bool = False
) -> np.ndarray:
    """`x` must be `(N, in_size)`, real, finite, N > 0."""
    arr = _as_numpy(x, argument)
    if arr.ndim != 2 or arr.shape[1] != in_size:
        hint = ""
        if arr.ndim == 1 and in_size == 1:
            hint = f" Reshape it with {argument}[:, None]."
        elif arr.ndim == 1 and arr.shape[0] == in_size:
            hint = f" For one sample call the model directly, or use {argument}[None, :]."
        raise ValueError(
            f"{argument} must have shape (N, in_size) = (N, {in_size}); got {arr.shape}.{hint}"
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{argument} is empty (shape {arr.shape}): need at least one sample.")
    return _check_real_finite(arr, argument)


def check_targets(
    y: Any, n: int, out_size: int, classification: bool, argument: str = "y"
) -> np.ndarray:
    """`y` must be `(N, out_size)` floats, or `(N,)` integer labels in `[0, out_size)`."""
    arr = _as_numpy(y, argument)
    if classification:
        if arr.shape != (n,):
            raise ValueError(
                f"{argument} must hold one integer class label per sample, shape ({n},); got "
                f"{arr.shape}."
            )
        if not np.issubdtype(arr.dtype, np.integer):
            if (
                np.issubdtype(arr.dtype, np.floating)
                and np.all(np.isfinite(arr))
                and np.all(arr == np.round(arr))
            ):
                arr = arr.astype(np.int32)
            else:
                raise TypeError(
                    f"{argument} must hold integer class labels for softmax_cross_entropy; got "
                    f"dtype {arr.dtype}."
                )
        if arr.size and (arr.min() < 0 or arr.max() >= out_size):
            raise ValueError(
                f"{argument} labels must lie in [0, {out_size}) for a model with out_size="
                f"{out_size}; got labels from {arr.min()} to {arr.max()}."
            )
        return arr.astype(np.int32)
    if arr.shape != (n, out_size):
        hint = ""
        if arr.shape == (n,) and out_size == 1:
            hint = f" Reshape it with {argument}[:, None]."
        elif arr.ndim == 2 and arr.shape[0] != n:
            hint = " x and y must have the same number of rows."
        raise ValueError(
            f"{argument} must have shape (N, out_size) = ({n}, {out_size}); got {arr.shape}.{hint}"
        )
    return _check_real_finite(arr, argument)


def check_sample_weight(w: Any, n: int) -> np.ndarray:
    arr = _as_numpy(w, "sample_weight")
    if arr.shape != (n,):
        raise ValueError(f"sample_weight must have shape (N,) = ({n},); got {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("sample_weight must be finite and >= 0.")
    if not np.any(arr > 0):
        raise ValueError("sample_weight is zero everywhere: nothing to fit.")
    return arr


def model_sizes(model: Any) -> tuple[int, int]:
    try:
        return int(model.in_size), int(model.out_size)
    except AttributeError:
        raise TypeError(
            f"model must have in_size and out_size (an eqx_ffn.FFN, or a Standardized wrapping "
            f"one); got {type(model).__name__}."
        ) from None


def float_dtype(model: Any) -> jnp.dtype:
    """The dtype of the model's first floating-point array (the data are cast to it)."""
    for leaf in jax.tree.leaves(model):
        is_array = isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct))
        if is_array and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.zeros(()).dtype
