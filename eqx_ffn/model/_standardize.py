"""Standardising data: `Standardizer` and the `Standardized` model wrapper."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validation import as_jax_array, default_float


def check_scaler_values(mean: Any, scale: Any, where: str, prefix: str = "") -> None:
    """Refuse a non-finite `mean` entry, or a `scale` entry that is not finite and > 0.

    Messages read `"{where}: {prefix}scale must be ..."` (without `where` when it is empty).
    Arrays being traced (inside `jax.jit`, `eqx.filter_eval_shape`, ...) have no values yet and
    pass.
    """
    try:
        m = np.asarray(mean).astype(np.float64)
        s = np.asarray(scale).astype(np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return  # traced: no values yet
    lead = f"{where}: {prefix}" if where else prefix
    bad = ~np.isfinite(m)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{lead}mean must be finite in every column; got {prefix}mean[{i}] = {m[i]}. Fit "
            "the scaler on finite data (Standardizer.fit) or pass finite means."
        )
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{lead}scale must be finite and > 0 in every column; got {prefix}scale[{i}] = "
            f"{s[i]}. (A zero scale divides by zero; a constant column takes scale 1, as "
            "Standardizer.fit gives it.)"
        )


def _does_not_fit(given: tuple[Any, Any], held: tuple[Array, Array], dtype: Any) -> None:
    """Raise for the first value that was valid as given but not in `dtype` (inf, or scale 0)."""
    for name, raw, new in zip(("mean", "scale"), given, held, strict=True):
        raw, new = np.asarray(raw).astype(np.float64), np.asarray(new).astype(np.float64)
        bad = ~np.isfinite(new) if name == "mean" else ~(np.isfinite(new) & (new > 0))
        if bad.any():
            i = int(np.argmax(bad))
            hint = (
                ", or enable float64 first: jax.config.update('jax_enable_x64', True)"
                if not jax.config.read("jax_enable_x64")
                else ""
            )
            raise ValueError(
                f"Standardizer: mean and scale must fit in {np.dtype(dtype).name}, the dtype they "
                f"are held in; got {name}[{i}] = {raw[i]:.4g}, which becomes {new[i]}. Rescale "
                f"the data{hint}."
            )


def _fit_columns(x: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Column means and spreads of `x` `(N, d)` or `(N,)`, in the dtype JAX will hold them in."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where} expects data of shape (N, d) with N, d >= 1; got {x.shape}.")
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or np.issubdtype(x.dtype, np.integer)
        or x.dtype == np.bool_
    ):
        raise TypeError(
            f"{where} expects real numbers; got an array of dtype {x.dtype}. Convert the data "
            "first, e.g. np.asarray(x, dtype=float)."
        )
    working = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else default_float()
    working = np.dtype(jax.dtypes.canonicalize_dtype(working))  # float64 -> float32 without x64
    a = x.astype(np.float64)
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        row, col = (int(i) for i in bad[0])
        raise ValueError(
            f"{where}: the data contain NaN or inf (first at row {row}, column {col}); "
            "remove or impute those values first."
        )
    biggest = np.abs(a).max(axis=0)
    limit = float(jnp.finfo(working).max)
    if (biggest > limit).any():
        col = int(np.argmax(biggest > limit))
        hint = (
            ", or enable float64 first: jax.config.update('jax_enable_x64', True)"
            if working.itemsize < 8 and not jax.config.read("jax_enable_x64")
            else ""
        )
        raise ValueError(
            f"{where}: column {col} holds {biggest[col]:.4g}, beyond the largest {working.name} "
            f"({limit:.4g}), the dtype the scaler works in; it would become inf. Rescale the data "
            f"(e.g. other units){hint}."
        )
    # Divide by each column's largest magnitude first: neither the sum nor the squares can
    # overflow, and a constant column gives exactly mean = its value, spread = 0.
    unit = np.where(biggest > 0, biggest, 1.0)
    u = a / unit
    mean = (u.mean(axis=0) * unit).astype(working)
    scale = (u.std(axis=0) * unit).astype(working)
    scale = np.where(scale > 0, scale, 1).astype(working)  # constant column: scale 1
    return mean, scale


class Standardizer(eqx.Module):
    """Per-column affine scaling `z = (x - mean) / scale`, fitted on training data.

    Works on one sample `(d,)` or a batch `(N, d)` alike. Columns with zero spread get
    `scale = 1`, so a constant column maps to zero instead of NaN.

    **Arguments:**

    - `mean`: column means, shape `(d,)`, finite.
    - `scale`: column spreads, shape `(d,)`, finite and > 0 (a zero would divide by zero).

    Both are stored in one floating dtype (their common one; integers become the default
    float). Most code builds one with `Standardizer.fit(x_train)`.

    **Raises:** `ValueError` for shapes that differ or are not `(d,)` with `d >= 1`, a
    non-finite `mean`, a `scale` that is zero, negative or non-finite, or a value that becomes
    one of those in the dtype it is held in (1e39 in float32); the message names the column.
    `TypeError` for complex values. (Inside `jax.jit` the values are not checked.)

    ```python
    xs = Standardizer.fit(x_train)        # x_train: (N, d)
    z = xs.transform(x_train)             # zero mean, unit variance per column
    x_back = xs.inverse_transform(z)
    ```
    """

    mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    def __init__(self, mean: Any, scale: Any):
        given = (mean, scale)
        with warnings.catch_warnings():  # an overflow in the cast to float32 is reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = as_jax_array(mean)
            scale = as_jax_array(scale)
        if mean.ndim != 1 or mean.shape != scale.shape or mean.shape[0] == 0:
            raise ValueError(
                f"Standardizer needs mean and scale of the same shape (d,) with d >= 1; got "
                f"{mean.shape} and {scale.shape}."
            )
        dtype = jnp.result_type(mean, scale)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(f"Standardizer needs real mean and scale; got dtype {dtype}.")
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = default_float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, scale = mean.astype(dtype), scale.astype(dtype)
        try:
            check_scaler_values(mean, scale, "Standardizer")
        except ValueError:
            check_scaler_values(*given, "Standardizer")  # bad as given: say so
            _does_not_fit(given, (mean, scale), dtype)  # fine as given, broken by the cast
            raise
        self.mean = mean
        self.scale = scale

    @classmethod
    def fit(cls, x: Any) -> Standardizer:
        """Fit on data of shape `(N, d)` (or `(N,)`, taken as one column).

        `mean` and `scale` are the column means and standard deviations, computed in float64
        and held in the data's dtype as JAX holds it (float32 unless `jax_enable_x64` is on);
        a column with zero spread gets `scale = 1`.

        **Raises:** `ValueError` for NaN or inf in the data, or for a value beyond the range
        of that dtype (e.g. 1e39 in float64 data while JAX works in float32), which would
        otherwise become inf; `TypeError` for data that are not real numbers.
        """
        mean, scale = _fit_columns(x, "Standardizer.fit")
        return cls(mean, scale)

    @property
    def size(self) -> int:
        """Number of columns `d`."""
        return int(self.mean.shape[0])

    def _check(self, x: Any, argument: str) -> Array:
        x = jnp.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.size:
            raise ValueError(
                f"Standardizer.{argument} expects shape ({self.size},) or (N, {self.size}); "
                f"got {x.shape}."
            )
        return x

    def transform(self, x: Any) -> Array:
        """`(x - mean) / scale`, for `(d,)` or `(N, d)`."""
        x = self._check(x, "transform")
        mean, scale = jax.lax.stop_gradient((self.mean, self.scale))
        return (x - mean) / scale

    def inverse_transform(self, z: Any) -> Array:
        """`z * scale + mean`, for `(d,)` or `(N, d)`."""
        z = self._check(z, "inverse_transform")
        mean, scale = jax.lax.stop_gradient((self.mean, self.scale))
        return z * scale + mean


class Standardized(eqx.Module):
    """A model that works in physical units around one trained on standardised data.

    `__call__(x)` on ONE sample computes `y_scaler.inverse_transform(model(x_scaler.transform(x)))`.
    Either scaler may be `None`. `eqx_ffn.fit` trains only `model`; the scalers stay fixed, and
    `eqx_ffn.save` stores them with the network, so a loaded model predicts in physical units.

    ```python
    net = Standardized.around(FFN(2, 1, key=key), x_train, y_train)
    net, hist = eqx_ffn.fit(net, x_train, y_train)
    ```
    """

    model: eqx.Module
    x_scaler: Standardizer | None
    y_scaler: Standardizer | None

    @classmethod
    def around(cls, model: eqx.Module, x: Any, y: Any | None = None) -> Standardized:
        """Wrap `model` with scalers fitted on `x` (and on `y` when given).

        **Raises:** as `Standardizer.fit`, naming `x` or `y`.
        """
        x_scaler = Standardizer(*_fit_columns(x, "Standardized.around: x"))
        y_scaler = None if y is None else Standardizer(*_fit_columns(y, "Standardized.around: y"))
        return cls(model, x_scaler, y_scaler)

    def __init__(
        self,
        model: eqx.Module,
        x_scaler: Standardizer | None = None,
        y_scaler: Standardizer | None = None,
    ):
        for name, scaler in (("x_scaler", x_scaler), ("y_scaler", y_scaler)):
            if scaler is None:
                continue
            if not isinstance(scaler, Standardizer):
                raise TypeError(
                    f"Standardized: {name} must be an eqx_ffn.Standardizer or None; got "
                    f"{type(scaler).__name__}. Build one with Standardizer.fit(data) or "
                    "Standardizer(mean, scale)."
                )
            # A Standardizer edited after it was built (eqx.tree_at, ...) is checked again here.
            check_scaler_values(scaler.mean, scaler.scale, "Standardized", f"{name}.")
        in_size = getattr(model, "in_size", None)
        out_size = getattr(model, "out_size", None)
        if x_scaler is not None and in_size is not None and x_scaler.size != in_size:
            raise ValueError(
                f"x_scaler has {x_scaler.size} columns but the model takes {in_size} inputs."
            )
        if y_scaler is not None and out_size is not None and y_scaler.size != out_size:
            raise ValueError(
                f"y_scaler has {y_scaler.size} columns but the model gives {out_size} outputs."
            )
        self.model = model
        self.x_scaler = x_scaler
        self.y_scaler = y_scaler

    @property
    def in_size(self) -> int:
        return self.model.in_size  # type: ignore[attr-defined]

    @property
    def out_size(self) -> int:
        return self.model.out_size  # type: ignore[attr-defined]

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        return self._around(self.model, x)

    def _around(self, inner: Any, x: Array) -> Array:
        """`inner` between the scalers: `y_scaler.inverse_transform(inner(x_scaler.transform(x)))`,
        for one sample (`__call__`) or for rows (the training programs' `apply_rows`)."""
        z = x if self.x_scaler is None else self.x_scaler.transform(x)
        out = inner(z)  # (the inner model checks x)
        return out if self.y_scaler is None else self.y_scaler.inverse_transform(out)
