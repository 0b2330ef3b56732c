"""Truncated simulation: mini-batches of short windows, each started from an encoded state.

The records are cut into overlapping windows of `window` samples; each step draws `batch_size`
window starts uniformly from all records (inside the program, from a key carried in its
state), estimates each window's initial state from the `n_init` measured samples before it (a
`NeuralStateSpace`'s encoder, trained jointly; a `NARX`'s memory of measured outputs and
inputs), simulates the windows in parallel and scores their mean squared error (deepSI's
SUBNET, torchid's truncated simulation). The number of windows is a run-time input: the set of
valid starts is an array, so longer or shorter records only change its length.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._validation import ArgumentTypeError, check_int
from ._models import NARX, with_encoder
from ._programs import CHUNK, NON_FINITE, RUNNING, join_static, sq_norm
from ._simulate import simulate_n

ENCODER_DEFAULTS = {"n_init": 50, "hidden_sizes": (64,)}
"""`encoder=` settings of `criterion="truncated"` and their defaults."""


def check_truncated(model, records, window, batch_size, encoder, kind) -> tuple[int, int, dict]:
    """Validate the truncated criterion's options; returns `(window, batch_size, encoder)`."""
    if kind in ("lm", "lbfgs"):
        raise ValueError(
            "criterion='truncated' draws random mini-batches of windows: use a first-order "
            "optimizer ('adam', 'adamw', 'sgd', 'rmsprop' or an optax object), not "
            f"{kind!r}."
        )
    if window is None:
        raise ValueError("criterion='truncated' needs window= (the windows' length, samples).")
    window = check_int(window, "window", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if encoder is not None and not isinstance(encoder, Mapping):
        raise ArgumentTypeError(
            f"encoder must be a dict of settings {sorted(ENCODER_DEFAULTS)} or None; got "
            f"{type(encoder).__name__}."
        )
    settings = dict(ENCODER_DEFAULTS)
    if getattr(model, "encoder", None) is not None:
        settings["n_init"] = model.encoder_n_init
    if isinstance(model, NARX):
        settings["n_init"] = model.lag
    unknown = set(encoder or {}) - set(ENCODER_DEFAULTS)
    if unknown:
        raise ValueError(
            f"encoder has unknown settings {sorted(unknown)}; known: {sorted(ENCODER_DEFAULTS)}."
        )
    settings.update(encoder or {})
    n_init = check_int(settings["n_init"], "encoder n_init", 1)
    if isinstance(model, NARX) and n_init != model.lag:
        raise ValueError(
            f"encoder n_init must equal a NARX's lag ({model.lag}: its memory is the measured "
            f"past); got {n_init}."
        )
    if n_init >= window:
        raise ValueError(
            f"encoder n_init ({n_init}) must be smaller than window ({window}): a window's "
            "initial state is estimated from fewer samples than it simulates."
        )
    for i, e in enumerate(records):
        if e.T < n_init + window:
            raise ValueError(
                f"window={window} (plus the encoder's n_init={n_init}) is longer than "
                f"experiments[{i}] ({e.T} samples); lower window."
            )
    settings["n_init"] = n_init
    return window, batch_size, settings


def attach_encoder(model, settings: dict, key):
    """The model with an encoder of `settings` (kept when it already has one of that window)."""
    if isinstance(model, NARX):
        return model
    if model.encoder is not None and model.encoder_n_init == settings["n_init"]:
        return model
    return with_encoder(model, settings["n_init"], settings["hidden_sizes"], key=key)


def _bucket(n: int) -> int:
    """The padded length of `n` samples: the next power of two (at least 256)."""
    return max(256, 1 << (n - 1).bit_length())


def window_data(records, scaler, n_init: int, window: int):
    """`(U, Y, starts, n_starts, eval_starts, eval_weights)`: the standardised records end to
    end, zero-padded to a power of two; every valid window start (global index, padded), their
    number; the non-overlapping starts that score the final loss and their weights (0 for
    padding). Records of lengths within one power of two share one program."""
    u = np.concatenate([np.asarray(scaler.u_in(jnp.asarray(e.u))) for e in records])
    y = np.concatenate([np.asarray(scaler.y_in(jnp.asarray(e.y))) for e in records])
    size = _bucket(u.shape[0])
    starts_list, offset = [], 0
    for e in records:
        starts_list.append(np.arange(offset + n_init, offset + e.T - window + 1))
        offset += e.T
    starts = np.concatenate(starts_list)
    evals = np.concatenate([s[::window] for s in starts_list])
    n_eval = size // window + 1
    weights = np.zeros(n_eval, u.dtype)
    weights[: len(evals)] = 1.0 / len(evals)

    def pad(a, n):
        return np.concatenate([a, np.full((n - len(a), *a.shape[1:]), a[0])])

    return (
        jnp.asarray(np.concatenate([u, np.zeros((size - len(u), u.shape[1]), u.dtype)])),
        jnp.asarray(np.concatenate([y, np.zeros((size - len(y), y.shape[1]), y.dtype)])),
        jnp.asarray(pad(starts, size), jnp.int32),
        jnp.asarray(len(starts), jnp.int32),
        jnp.asarray(pad(evals, n_eval), jnp.int32),
        jnp.asarray(weights),
    )


def _window_mse(model, u_all, y_all, s, n_init: int, window: int):
    if isinstance(model, NARX):
        x = model.state_at(u_all, y_all, s)
    else:
        u_past = jax.lax.dynamic_slice_in_dim(u_all, s - n_init, n_init)
        y_past = jax.lax.dynamic_slice_in_dim(y_all, s - n_init, n_init)
        x = model.encode(u_past, y_past)
    u_w = jax.lax.dynamic_slice_in_dim(u_all, s, window)
    y_w = jax.lax.dynamic_slice_in_dim(y_all, s, window)
    return jnp.mean((y_w - simulate_n(model, u_w, x)) ** 2)


def windows_loss(model, data, starts, n_init: int, window: int, params, l2, weights=None):
    """Mean (or `weights`-weighted sum) of the squared simulation error of the windows at
    `starts`, plus `l2 * ||params||²`."""
    u_all, y_all = data[0], data[1]
    errs = jax.vmap(lambda s: _window_mse(model, u_all, y_all, s, n_init, window))(starts)
    mse = jnp.mean(errs) if weights is None else jnp.sum(weights * errs)
    return mse + l2 * sq_norm(params)


def truncated_chunk(static, dyn):
    """Run up to `n` optimizer steps on random mini-batches of windows (`n <= CHUNK`).

    Returns `(vars, (opt_state, key), losses[CHUNK], steps_run, code)`, as `optax_chunk`.
    """
    rest_static, opt, n_init, window, batch = static
    vars_, (opt_state, key), rest_arrays, data, l2, n = dyn
    rest = join_static(rest_arrays, rest_static)
    valid, n_valid = data[2], data[3]

    def f(v, starts):
        model = eqx.combine(v[0], rest)
        return windows_loss(model, data, starts, n_init, window, v[0], l2)

    def cond(c):
        return (c[0] < n) & (c[1] == RUNNING)

    def body(c):
        i, _, v, s, k, buf = c
        k, sub = jr.split(k)
        starts = valid[jr.randint(sub, (batch,), 0, n_valid)]
        value, grads = jax.value_and_grad(f)(v, starts)
        updates, s_new = opt.update(grads, s, v)
        ok = jnp.isfinite(value)
        v_new = optax.apply_updates(v, updates)
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)  # noqa: E731
        return (
            jnp.where(ok, i + 1, i),
            jnp.where(ok, RUNNING, NON_FINITE),
            pick(v_new, v),
            pick(s_new, s),
            k,
            buf.at[i].set(value),
        )

    buf = jnp.full((CHUNK,), jnp.nan, jnp.result_type(float))
    init = (jnp.zeros((), jnp.int32), jnp.asarray(RUNNING), vars_, opt_state, key, buf)
    i, code, v, s, key, buf = jax.lax.while_loop(cond, body, init)
    return v, (s, key), buf, i, code


def truncated_loss(static, dyn):
    """The loss (with the penalty) over the non-overlapping windows (the final loss)."""
    rest_static, n_init, window = static
    (params, _), rest_arrays, data, l2 = dyn
    model = eqx.combine(params, join_static(rest_arrays, rest_static))
    return windows_loss(model, data, data[4], n_init, window, params, l2, data[5])
