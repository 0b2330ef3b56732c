"""The compiled programs of `sysid.fit`: criteria, one optax chunk, one Levenberg-Marquardt chunk.

Each program is compiled once per structure (the model's static layout, the records' shapes,
the optimizer, the criterion) and kept in `_PROGRAMS`; steps, learning rate, `l2` and the data
values are run-time inputs, so a second fit of the same structure compiles nothing.
`TRACES` counts the programs traced (the tests' compile counter).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from ..training._compile_options import FAST_COMPILE_OPTIONS, compile_with_options
from ._models import NARX
from ._simulate import initial_state_n, simulate_n

CHUNK = 100
"""Steps per program call at most (between two calls: progress bar, Ctrl-C, validation)."""

TRACES: collections.Counter[str] = collections.Counter()
"""How many times each program was traced (compiled), by name."""

_PROGRAMS: dict[Any, Any] = {}

# stop codes returned by the chunk programs
RUNNING, NON_FINITE, CONVERGED = 0, 1, 2


def _aval(leaf: Any) -> Any:
    return (jnp.shape(leaf), jnp.result_type(leaf), getattr(leaf, "weak_type", False))


FAST_COMPILED = frozenset(
    {"lm", "ensemble_lm", "loss", "truncated_loss", "ensemble_loss", "validation"}
)
"""Programs compiled on a CPU with `FAST_COMPILE_OPTIONS` (LLVM -O1, XLA's older fusion
emitters): Levenberg-Marquardt's chunks (and an ensemble's) compile about a third faster and
run faster too (0.19 against 0.24 s a 100-step Cascaded Tanks chunk), the losses run a few
times. The optax chunks keep XLA's defaults: under those options they compiled twice as fast
but ran 14% slower a step."""


def compiled(name: str, fn: Callable, static: Any, dyn: Any) -> tuple[Callable, float]:
    """`(program, compile_seconds)`: `fn(static, dyn)` compiled for `dyn`'s shapes, cached."""
    leaves, treedef = jax.tree.flatten(dyn)
    key = (name, static, treedef, tuple(_aval(x) for x in leaves))
    program = _PROGRAMS.get(key)
    if program is not None:
        return program, 0.0
    start = time.perf_counter()

    def traced(d):
        TRACES[name] += 1
        return fn(static, d)

    lowered = jax.jit(traced).lower(dyn)
    fast = name in FAST_COMPILED and jax.devices()[0].platform == "cpu"
    program = compile_with_options(lowered, FAST_COMPILE_OPTIONS if fast else None)
    _PROGRAMS[key] = program
    return program, time.perf_counter() - start


def split_static(tree: Any) -> tuple[Any, Any]:
    """`(arrays, static)` with `static` hashable: `(treedef, non-array leaves)`."""
    arrays, rest = eqx.partition(tree, eqx.is_array)
    leaves, treedef = jax.tree.flatten(rest)
    return arrays, (treedef, tuple(leaves))


def join_static(arrays: Any, static: Any) -> Any:
    treedef, leaves = static
    return eqx.combine(arrays, jax.tree.unflatten(treedef, leaves))


def sq_norm(tree: Any) -> jax.Array:
    return sum((jnp.sum(x**2) for x in jax.tree.leaves(tree)), start=jnp.zeros(()))


# ---------------------------------------------------------------------------------------------
# criteria: residuals and losses of (params, x0s) on the standardised records


def residuals(criterion: str, model, x0s, data) -> list[jax.Array]:
    """Per record, `y - y_hat` (standardised): free-run simulation or one-step prediction."""
    out = []
    for i, (u, y) in enumerate(data):
        if criterion == "simulation":
            out.append(y - simulate_n(model, u, x0s[i]))
        else:
            out.append(y[model.lag :] - one_step_n(model, u, y))
    return out


def one_step_n(model: NARX, u, y) -> jax.Array:
    """One-step predictions of a NARX from measured (standardised) regressors, `k >= lag`."""

    def one(k):
        phi, _ = model.regressor(model.state_at(u, y, k), u[k])
        return model.net(phi)

    return jax.vmap(one)(jnp.arange(model.lag, u.shape[0]))


def loss(criterion: str, params, rest, x0s, data, l2) -> jax.Array:
    """Mean squared residual over all records and outputs, plus `l2 * ||params||²`."""
    r = residuals(criterion, eqx.combine(params, rest), x0s, data)
    mse = (
        jnp.mean(r[0] ** 2)
        if len(r) == 1
        else jnp.mean(jnp.concatenate([e.ravel() for e in r]) ** 2)
    )
    return mse + l2 * sq_norm(params)


def flat_residuals(criterion: str, params, rest, x0s, data, l2) -> jax.Array:
    """The residual vector whose squared norm is `loss` (Levenberg-Marquardt's)."""
    r = jnp.concatenate(
        [e.ravel() for e in residuals(criterion, eqx.combine(params, rest), x0s, data)]
    )
    flat_p, _ = ravel_pytree(params)
    return jnp.concatenate([r / jnp.sqrt(r.size).astype(r.dtype), jnp.sqrt(l2) * flat_p])


# ---------------------------------------------------------------------------------------------
# the optax chunk


def optax_chunk(static, dyn):
    """Run up to `n` optimizer steps (`n <= CHUNK`), stopping at a non-finite loss.

    Returns `(vars, opt_state, losses[CHUNK], steps_run, code)`; after a non-finite loss `vars`
    are the last ones whose loss was finite.
    """
    rest_static, opt, criterion, is_lbfgs = static
    vars_, opt_state, rest_arrays, data, l2, n = dyn
    rest = join_static(rest_arrays, rest_static)

    def f(v):
        return loss(criterion, v[0], rest, v[1], data, l2)

    def cond(c):
        return (c[0] < n) & (c[1] == RUNNING)

    def body(c):
        i, _, v, prev, s, buf = c
        value, grads = jax.value_and_grad(f)(v)
        if is_lbfgs:
            updates, s_new = opt.update(grads, s, v, value=value, grad=grads, value_fn=f)
        else:
            updates, s_new = opt.update(grads, s, v)
        v_new = optax.apply_updates(v, updates)
        ok = jnp.isfinite(value)
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)  # noqa: E731
        return (
            jnp.where(ok, i + 1, i),
            jnp.where(ok, RUNNING, NON_FINITE),
            pick(v_new, prev),
            pick(v, prev),
            pick(s_new, s),
            buf.at[i].set(value),
        )

    buf = jnp.full((CHUNK,), jnp.nan, jnp.result_type(float))
    init = (jnp.zeros((), jnp.int32), jnp.asarray(RUNNING), vars_, vars_, opt_state, buf)
    i, code, v, _, s, buf = jax.lax.while_loop(cond, body, init)
    return v, s, buf, i, code


# ---------------------------------------------------------------------------------------------
# the Levenberg-Marquardt chunk


def lm_chunk(static, dyn):
    """Run up to `n` Levenberg-Marquardt iterations on the residuals of `flat_residuals`.

    Damping `mu * I` (it starts at `1e-3 * max diag(JᵀJ)`), Nielsen's update of `mu`; the
    Jacobian through the simulation's scan by forward mode. Returns
    `(vars, (mu, nu), losses[CHUNK], steps_run, code)`; `code` is `CONVERGED` when the
    gradient's largest entry falls below `tol` or the damping exceeds 1e12 (no step lowers the
    loss).
    """
    rest_static, criterion = static
    vars_, (mu, nu), rest_arrays, data, l2, n, tol = dyn
    rest = join_static(rest_arrays, rest_static)
    theta0, unravel = ravel_pytree(vars_)

    def res(theta):
        p, x0s = unravel(theta)
        return flat_residuals(criterion, p, rest, x0s, data, l2)

    def linearize(theta):
        r, jvp = jax.linearize(res, theta)
        return r, jax.vmap(jvp, out_axes=1)(jnp.eye(theta.shape[0], dtype=theta.dtype))

    def cond(c):
        return (c[0] < n) & (c[1] == RUNNING)

    def body(c):
        i, _, theta, r, jac, mu, nu, buf = c
        cost = jnp.sum(r**2)
        g = jac.T @ r
        h = jac.T @ jac
        delta = jnp.linalg.solve(h + mu * jnp.eye(h.shape[0], dtype=h.dtype), -g)
        cand = theta + delta
        r_c = res(cand)
        cost_c = jnp.sum(r_c**2)
        predicted = cost - jnp.sum((r + jac @ delta) ** 2)
        rho = (cost - cost_c) / jnp.where(predicted > 0, predicted, jnp.inf)
        ok = jnp.isfinite(cost_c) & (cost_c < cost) & jnp.all(jnp.isfinite(delta))
        theta_n, r_n, jac_n = jax.lax.cond(
            ok, lambda: (cand, *linearize(cand)), lambda: (theta, r, jac)
        )
        mu_n = jnp.where(ok, mu * jnp.maximum(1 / 3, 1 - (2 * rho - 1) ** 3), mu * nu)
        nu_n = jnp.where(ok, 2.0, nu * 2.0)
        done = (jnp.max(jnp.abs(g)) < tol) | (mu_n > 1e12)
        return (
            i + 1,
            jnp.where(done, CONVERGED, RUNNING),
            theta_n,
            r_n,
            jac_n,
            mu_n.astype(mu.dtype),
            nu_n.astype(nu.dtype),
            buf.at[i].set(cost),
        )

    r0, jac0 = linearize(theta0)
    # a negative damping asks for the classic start, 1e-3 * max diag(JᵀJ) (Madsen et al.)
    mu = jnp.where(mu < 0, 1e-3 * jnp.max(jnp.sum(jac0**2, axis=0)), mu).astype(mu.dtype)
    code0 = jnp.where(jnp.isfinite(jnp.sum(r0**2)), RUNNING, NON_FINITE)
    buf = jnp.full((CHUNK,), jnp.nan, theta0.dtype)
    init = (jnp.zeros((), jnp.int32), code0, theta0, r0, jac0, mu, nu, buf)
    i, code, theta, _, _, mu, nu, buf = jax.lax.while_loop(cond, body, init)
    return unravel(theta), (mu, nu), buf, i, code


# ---------------------------------------------------------------------------------------------
# evaluation programs


def train_loss(static, dyn):
    """The training loss (with the penalty) of `(params, x0s)`."""
    rest_static, criterion = static
    (params, x0s), rest_arrays, data, l2 = dyn
    return loss(criterion, params, join_static(rest_arrays, rest_static), x0s, data, l2)


def validation_loss(static, dyn):
    """Simulation MSE (standardised) of a record after its first `n_init` samples, its initial
    state estimated from them (from each of `starts`, the best kept)."""
    model_static, n_init = static
    model_arrays, (u, y), starts = dyn
    model = join_static(model_arrays, model_static)
    x = initial_state_n(model, u[:n_init], y[:n_init], starts)
    err = jnp.mean((y[n_init:] - simulate_n(model, u, x)[n_init:]) ** 2)
    return jnp.where(jnp.isfinite(err), err, jnp.inf)
