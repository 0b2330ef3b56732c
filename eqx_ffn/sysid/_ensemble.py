"""`sysid.fit_ensemble`: K dynamical models of one structure trained in one program (vmap)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import ArgumentTypeError, check_number
from ..training._history import History
from ._experiment import Scaler, as_experiments
from ._fit import _check_options, _named_optax, _split_model
from ._models import check_model
from ._programs import (
    CHUNK,
    CONVERGED,
    NON_FINITE,
    RUNNING,
    compiled,
    lm_chunk,
    optax_chunk,
    split_static,
    train_loss,
)

_STOPS = {RUNNING: "completed", NON_FINITE: "non_finite_loss", CONVERGED: "converged"}


def _members(models: Any) -> list:
    if not isinstance(models, Sequence) or isinstance(models, (str, bytes)) or not models:
        raise ArgumentTypeError(
            "models must be a non-empty list of sysid models of one structure; got "
            f"{type(models).__name__}."
        )
    out = [check_model(m, f"models[{i}]") for i, m in enumerate(models)]
    shape = jax.tree.structure(eqx.filter(out[0], eqx.is_array))
    for i, m in enumerate(out[1:], start=1):
        same = jax.tree.structure(eqx.filter(m, eqx.is_array)) == shape and all(
            a.shape == b.shape
            for a, b in zip(
                jax.tree.leaves(eqx.filter(m, eqx.is_array)),
                jax.tree.leaves(eqx.filter(out[0], eqx.is_array)),
                strict=True,
            )
        )
        if (
            not same
            or split_static(eqx.filter(m, eqx.is_array, inverse=True))[1]
            != (split_static(eqx.filter(out[0], eqx.is_array, inverse=True))[1])
        ):
            raise ValueError(
                f"models[{i}] differs in structure from models[0]; an ensemble "
                "trains models of one architecture."
            )
    return out


def _program(static, dyn):
    """The chunk program of every member at once: `vmap` over parameters, state and steps."""
    kind, inner = static
    vars_, state, rest_arrays, data, l2, n, tol = dyn
    if kind == "lm":
        return jax.vmap(lambda v, s, k: lm_chunk(inner, (v, s, rest_arrays, data, l2, k, tol)))(
            vars_, state, n
        )
    return jax.vmap(lambda v, s, k: optax_chunk(inner, (v, s, rest_arrays, data, l2, k)))(
        vars_, state, n
    )


def _losses(static, dyn):
    vars_, rest_arrays, data, l2 = dyn
    return jax.vmap(lambda v: train_loss(static, (v, rest_arrays, data, l2)))(vars_)


def fit_ensemble(
    models: Sequence,
    experiments,
    *,
    criterion: str = "simulation",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    steps: int = 1000,
    l2: float = 0.0,
    x0: Any = None,
    standardize: bool = True,
    tol: float = 0.0,
):
    """Train K models of one structure on the same records in one compiled program (vmap).

    **Arguments:**

    - `models`: a list of K `NeuralStateSpace` (or `NARX`) models of one architecture (e.g.
      built from K keys); each member keeps its own parameters and initial states.
    - `experiments`, `criterion` (`"simulation"`), `optimizer` (a name of
      `sysid.OPTIMIZERS`), `learning_rate`, `steps`, `l2`, `standardize`, `tol`: as
      `sysid.fit`'s, the same for every member.
    - `x0`: starting initial states: `None` (zeros), one array for every member (`(n_x,)` or
      `(E, n_x)`), or one per member (`(K, E, n_x)`).

    **Returns:** `(models, x0s, histories)`: lists of K trained models, K initial-state arrays
    (shaped as `sysid.fit` returns them) and K `History`. Member `i` follows the same steps as
    `sysid.fit(models[i], ...)` with the same arguments (a member that stops, converged or
    after a non-finite loss, stays where it stopped while the others go on); their numbers
    agree to float rounding (a batched matrix product may round differently).
    """
    start = time.perf_counter()
    members = _members(models)
    records = as_experiments(experiments)
    if criterion != "simulation":
        raise ValueError(
            f"fit_ensemble trains by criterion='simulation' (whole records); got {criterion!r}."
        )
    if not isinstance(optimizer, str):
        raise ArgumentTypeError("fit_ensemble takes an optimizer name (sysid.OPTIMIZERS).")
    k = len(members)
    checked = [
        _check_options(m, records, criterion, optimizer, learning_rate, steps, l2, x)
        for m, x in zip(members, _x0_per_member(x0, k, len(records)), strict=True)
    ]
    kind, lr, _ = checked[0]
    if standardize:
        scaler = Scaler.fit(records)
        members = [eqx.tree_at(lambda m: m.scaler, m, scaler) for m in members]
    parts = [_split_model(m) for m in members]
    rest_arrays, rest_static = split_static(parts[0][1])
    sc = members[0].scaler
    data = tuple((sc.u_in(jnp.asarray(e.u)), sc.y_in(jnp.asarray(e.y))) for e in records)
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
    vars_ = (stack([p for p, _ in parts]), jnp.stack([c[2] for c in checked]))
    dtype = vars_[1].dtype
    l2a = jnp.asarray(l2, dtype)
    tol_a = jnp.asarray(check_number(tol, "tol", 0.0, closed=True), dtype)
    if kind == "lm":
        state: Any = (jnp.full((k,), -1.0, dtype), jnp.full((k,), 2.0, dtype))
        static = ("lm", (rest_static, criterion))
    else:
        opt = _named_optax(kind)
        state = jax.vmap(opt.init)(vars_)
        if kind != "lbfgs":
            state[-1].hyperparams["step_size"] = jnp.full((k,), -lr, dtype)
        static = ("optax", (rest_static, opt, criterion, kind == "lbfgs"))
    buffers, done, codes, compile_time = [], np.zeros(k, np.int64), np.zeros(k, np.int64), 0.0
    while True:
        n = np.where(codes == RUNNING, np.minimum(CHUNK, steps - done), 0)
        if not n.any():
            break
        dyn = (vars_, state, rest_arrays, data, l2a, jnp.asarray(n, jnp.int32), tol_a)
        program, t = compiled("ensemble", _program, static, dyn)
        compile_time += t
        vars_, state, buf, ran, code = program(dyn)
        ran, code, buf = np.asarray(ran), np.asarray(code), np.asarray(buf)
        buffers.append([buf[i, : ran[i]] for i in range(k)])
        done += ran
        codes = np.where(n > 0, code, codes)
    dyn = (vars_, rest_arrays, data, l2a)
    program, t = compiled("ensemble_loss", _losses, (rest_static, criterion), dyn)
    finals = np.asarray(program(dyn))
    run = (buffers, done, codes, finals, time.perf_counter() - start, compile_time + t)
    single = not isinstance(experiments, Sequence)
    out_models = [
        eqx.combine(jax.tree.map(lambda a, i=i: a[i], vars_[0]), parts[i][1]) for i in range(k)
    ]
    out_x0 = [vars_[1][i][0] if single else vars_[1][i] for i in range(k)]
    return out_models, out_x0, [_history(run, i) for i in range(k)]


def _x0_per_member(x0: Any, k: int, n_records: int) -> list:
    """`x0` for each member: `None`, one array for all, or one per member (leading K)."""
    if x0 is None:
        return [None] * k
    arr = jnp.asarray(x0)
    if arr.ndim == 3 or (arr.ndim == 2 and n_records == 1 and arr.shape[0] == k):
        if arr.shape[0] != k:
            raise ValueError(f"x0 per member must have {k} rows (one per model); got {arr.shape}.")
        return list(arr)
    return [arr] * k


def _history(run, i: int) -> History:
    buffers, done, codes, finals, wall, compile_time = run
    stop = _STOPS.get(int(codes[i]), "completed")
    return History(
        loss=np.concatenate([b[i] for b in buffers]) if buffers else np.zeros(0, np.float32),
        val_loss=np.zeros(0, np.float32),
        val_steps=np.zeros(0, np.int64),
        steps=int(done[i]),
        stop_reason=stop,
        best_step=None,
        final_loss=float(finals[i]),
        wall_time=wall,
        compile_time=compile_time,
        message=f"sysid.fit_ensemble member {i}: {stop} after {int(done[i])} steps.",
    )
