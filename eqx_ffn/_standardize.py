"""Standardising data: `Standardizer` and the `Standardized` model wrapper."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Standardizer(eqx.Module):
    """Per-column affine scaling `z = (x - mean) / scale`, fitted on training data.

    Works on one sample `(d,)` or a batch `(N, d)` alike. Columns with zero spread get
    `scale = 1`, so a constant column maps to zero instead of NaN.

    ```python
    xs = Standardizer.fit(x_train)        # x_train: (N, d)
    z = xs.transform(x_train)             # zero mean, unit variance per column
    x_back = xs.inverse_transform(z)
    ```
    """

    mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    def __init__(self, mean: Any, scale: Any):
        mean = jnp.asarray(mean)
        scale = jnp.asarray(scale)
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(
                f"Standardizer needs mean and scale of the same shape (d,); got {mean.shape} "
                f"and {scale.shape}."
            )
        self.mean = mean
        self.scale = scale

    @classmethod
    def fit(cls, x: Any) -> Standardizer:
        """Fit on data of shape `(N, d)` (or `(N,)`, taken as one column)."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(
                f"Standardizer.fit expects data of shape (N, d) with N >= 1; got {x.shape}."
            )
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(jnp.zeros(()).dtype)
        if not np.all(np.isfinite(x)):
            raise ValueError("Standardizer.fit: the data contain NaN or inf.")
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0).astype(x.dtype)
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
        """Wrap `model` with scalers fitted on `x` (and on `y` when given)."""
        return cls(model, Standardizer.fit(x), None if y is None else Standardizer.fit(y))

    def __init__(
        self,
        model: eqx.Module,
        x_scaler: Standardizer | None = None,
        y_scaler: Standardizer | None = None,
    ):
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
        z = x if self.x_scaler is None else self.x_scaler.transform(x)
        out = self.model(z)  # pyright: ignore[reportCallIssue]  (the inner model checks x)
        return out if self.y_scaler is None else self.y_scaler.inverse_transform(out)
