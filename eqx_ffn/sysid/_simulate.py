"""Simulation, initial-state estimation and k-step-ahead prediction.

The `*_n` functions work in standardised units and are pure JAX (they run inside the fitting
programs); the public ones check their arguments and work in physical units.
"""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int
from ._experiment import Experiment, as_signal
from ._models import NARX, NeuralStateSpace, check_model, check_vector

X0_ITERATIONS = 30
"""Levenberg-Marquardt iterations of an initial-state estimate."""


def simulate_n(model, u_n, x0, return_states: bool = False) -> Any:
    """Free-run simulation in standardised units: `y(k)` before the update, as the lecture."""

    def step(x, u):
        x_next, y = model.step(x, u)
        return x_next, ((y, x) if return_states else y)

    _, out = jax.lax.scan(step, x0, u_n)
    return out


def fit_x0_n(model, u_n, y_n, x_start, iterations: int = X0_ITERATIONS, anchor=None):
    """The initial state minimising the simulation error on `(u_n, y_n)`: damped Gauss-Newton.

    Starts at `x_start`; a step is kept only when it lowers the error; the damping halves on
    success and grows 4-fold on failure. With `anchor` (the encoder's state at the sample after
    the window), the distance of the simulated state there to it, weighted by the window's
    length, joins the residuals. Returns the best state found.
    """

    def residuals(x0):
        if anchor is None:
            return (simulate_n(model, u_n, x0) - y_n).reshape(-1)
        x_end = jax.lax.scan(lambda x, u: (model.step(x, u)[0], None), x0, u_n)[0]
        r = (simulate_n(model, u_n, x0) - y_n).reshape(-1)
        w = jnp.sqrt(jnp.asarray(u_n.shape[0], x0.dtype))
        return jnp.concatenate([r, w * (x_end - anchor)])

    def cost(r):
        return jnp.sum(r**2)

    def body(_, carry):
        x, c, lam = carry
        r, jvp = jax.linearize(residuals, x)
        jac = jax.vmap(jvp, out_axes=1)(jnp.eye(x.shape[0], dtype=x.dtype))
        h = jac.T @ jac
        d = jnp.diag(h)
        step = jnp.linalg.solve(h + lam * jnp.diag(d + 1e-6 * (1 + jnp.max(d))), -jac.T @ r)
        x_new = x + step
        c_new = cost(residuals(x_new))
        ok = jnp.isfinite(c_new) & (c_new < c)
        return (
            jnp.where(ok, x_new, x),
            jnp.where(ok, c_new, c),
            jnp.where(ok, lam * 0.5, lam * 4.0),
        )

    c0 = cost(residuals(x_start))
    init = (x_start, c0, jnp.asarray(1e-3, x_start.dtype))
    x, _, _ = jax.lax.fori_loop(0, iterations, body, init)
    return x


def _physical(model, u: Any, argument: str = "u") -> jax.Array:
    u_arr = as_signal(u, argument)
    if u_arr.shape[1] != model.n_u:
        raise ValueError(
            f"{argument} must have {model.n_u} column(s), the model's n_u; got shape {u_arr.shape}."
        )
    return model.scaler.u_in(jnp.asarray(u_arr))


@functools.partial(eqx.filter_jit, donate="none")
def _simulate_program(model, u_n, x0, return_states):
    out = simulate_n(model, u_n, x0, return_states)
    if return_states:
        y, x = out
        return model.scaler.y_out(y), x
    return model.scaler.y_out(out)


def simulate(model, u: Any, x0: Any, *, return_states: bool = False):
    """Free-run simulation of `model` driven by the measured input `u`, from the state `x0`.

    **Arguments:**

    - `model`: a `NeuralStateSpace` or `NARX`.
    - `u`: inputs in physical units, shape `(T, n_u)` (1-D: one channel).
    - `x0`: the initial state `(n_x,)` in the model's (standardised) units, as `sysid.fit` and
      `sysid.estimate_initial_state` return it.
    - `return_states`: also return the states `x(0..T-1)`.

    **Returns:** `y` of shape `(T, n_y)` in physical units, `y(k)` computed from `x(k)` before
    the update (so `y(0)` comes from `x0`); with `return_states`, `(y, x)`.
    """
    model = check_model(model)
    u_n = _physical(model, u)
    x0 = check_vector(jnp.asarray(x0), model.state_size, "x0", "simulate")
    return _simulate_program(model, u_n, x0.astype(u_n.dtype), bool(return_states))


def initial_state_n(model, u_n, y_n, starts, iterations: int = X0_ITERATIONS):
    """The best of the Gauss-Newton estimates from `starts` (standardised units); a model with
    an encoder whose window fits in the record's anchors them on the encoder's state."""
    anchor = None
    n_enc = getattr(model, "encoder_n_init", 0)
    if n_enc and u_n.shape[0] >= n_enc:
        anchor = model.encode(u_n[-n_enc:], y_n[-n_enc:])
    xs = jax.vmap(lambda x: fit_x0_n(model, u_n, y_n, x, iterations, anchor))(starts)
    cost = jax.vmap(lambda x: jnp.sum((simulate_n(model, u_n, x) - y_n) ** 2))(xs)
    cost = jnp.where(jnp.isfinite(cost), cost, jnp.inf)
    return xs[jnp.argmin(cost)]


@functools.partial(eqx.filter_jit, donate="none")
def _x0_program(model, u_n, y_n, starts, iterations):
    return initial_state_n(model, u_n, y_n, starts, iterations)


def estimate_initial_state(
    model,
    experiment: Experiment,
    n_init: int | None = None,
    *,
    x0_guess: Any = None,
    iterations: int = X0_ITERATIONS,
) -> jax.Array:
    """The initial state that best explains the first `n_init` measured samples of a record.

    **Arguments:**

    - `model`: a `NeuralStateSpace` or `NARX` (with its scaler, as `sysid.fit` returns it).
    - `experiment`: the record (`Experiment`).
    - `n_init`: the window's length (default `experiment.n_init`, the benchmark's window);
      at least 1 and at most `T`.
    - `x0_guess`: starting state(s), `(n_x,)` or `(K, n_x)` (the best result is kept); default
      zeros and, for a NARX, the memory filled with the first measured samples.
    - `iterations`: damped Gauss-Newton iterations from each start.

    A model fitted with `criterion="truncated"` carries an encoder: when `n_init` is at least
    its window, the encoder's state at sample `n_init` (from the window's last samples) anchors
    the estimate (the simulated state there is pulled to it).

    **Returns:** `x0` of shape `(n_x,)` in the model's units: then
    `simulate(model, experiment.u, x0)` simulates the whole record.
    """
    model = check_model(model)
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a sysid.Experiment; got {type(experiment).__name__}.")
    check_sizes(model, experiment, "experiment")
    n_init = experiment.n_init if n_init is None else n_init
    n_init = check_int(n_init, "n_init", 1, experiment.T)
    iterations = check_int(iterations, "iterations", 0)
    u_n = model.scaler.u_in(jnp.asarray(experiment.u[:n_init]))
    y_n = model.scaler.y_in(jnp.asarray(experiment.y[:n_init]))
    starts = _starts(model, y_n, x0_guess)
    return _x0_program(model, u_n, y_n, starts.astype(u_n.dtype), iterations)


def _starts(model, y_n, x0_guess) -> jax.Array:
    n = model.state_size
    if x0_guess is not None:
        g = jnp.asarray(x0_guess)
        if g.ndim == 1:
            g = g[None]
        if g.ndim != 2 or g.shape[1] != n:
            raise ValueError(f"x0_guess must have shape ({n},) or (K, {n}); got {g.shape}.")
        return g
    starts = [jnp.zeros(n, y_n.dtype)]
    if isinstance(model, NARX):
        mem = jnp.concatenate(
            [jnp.tile(y_n[0], model.na), jnp.zeros(n - model.na * model.n_y, y_n.dtype)]
        )
        starts.append(mem)
    return jnp.stack(starts)


def check_sizes(model, experiment: Experiment, argument: str) -> None:
    """Refuse a record whose channel counts differ from the model's."""
    if (experiment.n_u, experiment.n_y) != (model.n_u, model.n_y):
        raise ValueError(
            f"{argument} has n_u={experiment.n_u}, n_y={experiment.n_y}; the model has "
            f"n_u={model.n_u}, n_y={model.n_y}."
        )


@functools.partial(eqx.filter_jit, donate="none")
def _narx_k_step(model: NARX, u_n, y_n, k: int):
    starts = jnp.arange(model.lag, u_n.shape[0] - k + 1)

    def one(s):
        x = model.state_at(u_n, y_n, s)
        y = simulate_n(model, jax.lax.dynamic_slice_in_dim(u_n, s, k), x)
        return y[-1]

    return starts + k - 1, jax.vmap(one)(starts)


@functools.partial(eqx.filter_jit, donate="none")
def _nss_k_step(model: NeuralStateSpace, u_n, y_n, k: int, n_init: int, iterations: int):
    starts = jnp.arange(n_init, u_n.shape[0] - k + 1)

    def one(s):
        u_w = jax.lax.dynamic_slice_in_dim(u_n, s - n_init, n_init + k)
        y_w = jax.lax.dynamic_slice_in_dim(y_n, s - n_init, n_init)
        x = fit_x0_n(model, u_w[:n_init], y_w, jnp.zeros(model.n_x, u_n.dtype), iterations)
        return simulate_n(model, u_w, x)[-1]

    return starts + k - 1, jax.vmap(one)(starts)


def predict(
    model,
    experiment: Experiment,
    k: int = 1,
    *,
    n_init: int | None = None,
    iterations: int = X0_ITERATIONS,
) -> np.ndarray:
    """k-step-ahead prediction: each `y(t)` predicted from the measured data up to `t - k`.

    **Arguments:**

    - `model`: a `NARX` (its memory at `t-k+1` filled with measured outputs and inputs, then
      `k` steps simulated; `k=1` is the one-step prediction) or a `NeuralStateSpace` (its state
      at `t-k+1` estimated from the `n_init` measured samples before it, then `k` steps
      simulated).
    - `experiment`: the measured record.
    - `k`: the horizon, `>= 1`.
    - `n_init`: a `NeuralStateSpace`'s estimation window (default `experiment.n_init`, or 50
      when that is 0).
    - `iterations`: Gauss-Newton iterations of each window's state estimate.

    **Returns:** `(T, n_y)` predictions in physical units; the first samples, which have no
    predictor (`lag + k - 1` for a NARX, `n_init + k - 1` for a state-space model), are NaN.
    """
    model = check_model(model)
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a sysid.Experiment; got {type(experiment).__name__}.")
    check_sizes(model, experiment, "experiment")
    k = check_int(k, "k", 1)
    u_n = model.scaler.u_in(jnp.asarray(experiment.u))
    y_n = model.scaler.y_in(jnp.asarray(experiment.y))
    if isinstance(model, NARX):
        first = model.lag
        if experiment.T < first + k:
            raise ValueError(
                f"experiment has {experiment.T} samples, fewer than the lags plus k "
                f"(lag={model.lag}, k={k})."
            )
        idx, y = _narx_k_step(model, u_n, y_n, k)
    else:
        n_init = n_init if n_init is not None else (experiment.n_init or 50)
        n_init = check_int(n_init, "n_init", 1)
        if experiment.T < n_init + k:
            raise ValueError(
                f"experiment has {experiment.T} samples, fewer than n_init + k ({n_init} + {k})."
            )
        idx, y = _nss_k_step(model, u_n, y_n, k, n_init, check_int(iterations, "iterations", 0))
    out = np.full((experiment.T, model.n_y), np.nan, dtype=np.asarray(y).dtype)
    out[np.asarray(idx)] = np.asarray(model.scaler.y_out(y))
    return out
