"""Measured records: `Experiment`, and the `Scaler` that standardises them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validation import ArgumentTypeError, check_int, check_number, default_float

MIN_SAMPLES = 2
"""The fewest samples a record may hold."""


def as_signal(value: Any, argument: str) -> np.ndarray:
    """A finite 2-D float array `(T, channels)` (1-D is one channel), in JAX's default float."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ArgumentTypeError(
            f"{argument} must be an array of shape (T, channels); got {value!r}."
        )
    try:
        arr = np.asarray(value)
    except Exception as e:
        raise ArgumentTypeError(
            f"{argument} must be an array of shape (T, channels); got {type(value).__name__}."
        ) from e
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ArgumentTypeError(
            f"{argument} must hold real numbers; got an array of dtype {arr.dtype}."
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(
            f"{argument} must have shape (T,) or (T, channels) with channels >= 1; got shape "
            f"{arr.shape}."
        )
    arr = arr.astype(default_float())
    bad = ~np.isfinite(arr)
    if bad.any():
        t, c = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{argument} must be finite (no NaN or inf); {argument}[{t}, {c}] = {arr[t, c]}."
        )
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """One measured record of a system: inputs `u` and outputs `y` over the same instants.

    **Arguments:**

    - `u`: inputs, shape `(T, n_u)` (a 1-D array is one channel).
    - `y`: outputs, shape `(T, n_y)` (a 1-D array is one channel).
    - `ts`: the sampling time (seconds), or `None`.
    - `name`: a label for plots and messages, or `None`.
    - `n_init`: the record's state-initialisation window (keyword-only, default 0): its first
      `n_init` samples may be used, with the measured `y`, to estimate the unknown initial state
      and are left out of the benchmark's score.

    The arrays are checked once (finite, real, the same `T >= 2`) and stored as NumPy arrays of
    JAX's default float dtype. Records are never shuffled: `split` cuts them chronologically.
    """

    u: np.ndarray
    y: np.ndarray
    ts: float | None = None
    name: str | None = None
    n_init: int = 0

    def __init__(
        self,
        u: Any,
        y: Any,
        ts: float | None = None,
        name: str | None = None,
        *,
        n_init: int = 0,
    ):
        u_arr = as_signal(u, "u")
        y_arr = as_signal(y, "y")
        if u_arr.shape[0] != y_arr.shape[0]:
            raise ValueError(
                f"u and y must have the same number of samples T; got u with {u_arr.shape[0]} "
                f"and y with {y_arr.shape[0]}."
            )
        if u_arr.shape[0] < MIN_SAMPLES:
            raise ValueError(
                f"u and y must hold at least {MIN_SAMPLES} samples; got {u_arr.shape[0]}."
            )
        if ts is not None:
            ts = check_number(ts, "ts", 0.0)
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"name must be a string or None; got {name!r}.")
        n_init = check_int(n_init, "n_init", 0, u_arr.shape[0] - 1)
        u_arr.flags.writeable = False
        y_arr.flags.writeable = False
        setattr_ = object.__setattr__
        for field, value in zip(
            ("u", "y", "ts", "name", "n_init"), (u_arr, y_arr, ts, name, n_init), strict=True
        ):
            setattr_(self, field, value)

    @property
    def T(self) -> int:
        """Number of samples."""
        return int(self.u.shape[0])

    @property
    def n_u(self) -> int:
        """Number of input channels."""
        return int(self.u.shape[1])

    @property
    def n_y(self) -> int:
        """Number of output channels."""
        return int(self.y.shape[1])

    def slice(self, start: int, stop: int, *, n_init: int = 0, name: str | None = None):
        """The samples `[start, stop)` as a new `Experiment` (chronological)."""
        start = check_int(start, "start", 0, self.T - MIN_SAMPLES)
        stop = check_int(stop, "stop", start + MIN_SAMPLES, self.T)
        return Experiment(
            self.u[start:stop], self.y[start:stop], self.ts, name or self.name, n_init=n_init
        )

    def split(self, fraction: float) -> tuple[Experiment, Experiment]:
        """`(first, rest)`: the first `fraction` of the samples and the rest, in time order."""
        fraction = check_number(fraction, "fraction", 0.0, 1.0)
        cut = round(fraction * self.T)
        if cut < MIN_SAMPLES or self.T - cut < MIN_SAMPLES:
            raise ValueError(
                f"fraction={fraction} leaves fewer than {MIN_SAMPLES} samples on one side of "
                f"a record of {self.T}."
            )
        return self.slice(0, cut), self.slice(cut, self.T)

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Experiment({label}T={self.T}, n_u={self.n_u}, n_y={self.n_y}, ts={self.ts}, "
            f"n_init={self.n_init})"
        )


def as_experiments(experiments: Any, argument: str = "experiments") -> list[Experiment]:
    """One `Experiment` or a non-empty sequence of them, as a list of the same channel counts."""
    if isinstance(experiments, Experiment):
        return [experiments]
    if not isinstance(experiments, Sequence) or isinstance(experiments, (str, bytes)):
        raise ArgumentTypeError(
            f"{argument} must be an Experiment or a list of Experiments; got "
            f"{type(experiments).__name__}."
        )
    out = list(experiments)
    if not out:
        raise ValueError(f"{argument} must hold at least one Experiment; got an empty list.")
    for i, e in enumerate(out):
        if not isinstance(e, Experiment):
            raise ArgumentTypeError(
                f"{argument}[{i}] must be an Experiment; got {type(e).__name__}."
            )
        if (e.n_u, e.n_y) != (out[0].n_u, out[0].n_y):
            raise ValueError(
                f"{argument}[{i}] has n_u={e.n_u}, n_y={e.n_y}; {argument}[0] has "
                f"n_u={out[0].n_u}, n_y={out[0].n_y}: records of one system share channels."
            )
    return out


class Scaler(eqx.Module):
    """Per-channel standardisation of inputs and outputs: `u_n = (u - u_mean) / u_std`.

    `Scaler.fit` takes the mean and population standard deviation (`jnp.std`) of the training
    records, a constant channel getting std 1; `Scaler.identity` changes nothing.
    """

    u_mean: Float[Array, " n_u"]
    u_std: Float[Array, " n_u"]
    y_mean: Float[Array, " n_y"]
    y_std: Float[Array, " n_y"]

    @classmethod
    def identity(cls, n_u: int, n_y: int, dtype: Any = None) -> Scaler:
        """The scaler that leaves data unchanged."""
        dtype = dtype or default_float()
        return cls(
            jnp.zeros(n_u, dtype), jnp.ones(n_u, dtype), jnp.zeros(n_y, dtype), jnp.ones(n_y, dtype)
        )

    @classmethod
    def fit(cls, experiments: Sequence[Experiment]) -> Scaler:
        """Means and population standard deviations over all samples of `experiments`."""
        u = jnp.asarray(np.concatenate([e.u for e in experiments]))
        y = jnp.asarray(np.concatenate([e.y for e in experiments]))
        u_std, y_std = jnp.std(u, axis=0), jnp.std(y, axis=0)
        return cls(
            jnp.mean(u, axis=0),
            jnp.where(u_std > 0, u_std, 1.0),
            jnp.mean(y, axis=0),
            jnp.where(y_std > 0, y_std, 1.0),
        )

    def u_in(self, u: Array) -> Array:
        """Physical inputs to standardised ones."""
        return (u - self.u_mean) / self.u_std

    def y_in(self, y: Array) -> Array:
        """Physical outputs to standardised ones."""
        return (y - self.y_mean) / self.y_std

    def y_out(self, y: Array) -> Array:
        """Standardised outputs back to physical units."""
        return y * self.y_std + self.y_mean
