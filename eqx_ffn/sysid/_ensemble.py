"""`sysid.fit_ensemble`: K dynamical models of one structure trained in one program (vmap)."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import ArgumentTypeError, check_int, check_number
from ..training._driver import _sigint_as_flag
from ..training._history import History
from ._checkpoint import Session, fingerprint, loss_dtype, session
from ._experiment import Scaler, as_experiments
from ._fit import _check_options, _named_optax, _options_fingerprint, _split_model
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


@dataclasses.dataclass
class _Loop:
    """What the ensemble's step loop keeps between chunks (stacked over the K members)."""

    vars: Any
    state: Any
    done: np.ndarray
    codes: np.ndarray
    buffers: list = dataclasses.field(default_factory=list)
    compile_time: float = 0.0
    prior_wall: float = 0.0
    interrupted: bool = False
    chunk: int = CHUNK


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
    checkpoint: Any = None,
    checkpoint_every: float = 60.0,
    resume: Any = False,
    _chunk: int = CHUNK,
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
    - `checkpoint`, `checkpoint_every` (seconds), `resume`: as `sysid.fit`'s (one file holds
      every member; Ctrl-C keeps it and returns the members trained so far).

    **Returns:** `(models, x0s, histories)`: lists of K trained models, K initial-state arrays
    (shaped as `sysid.fit` returns them) and K `History`. Member `i` follows the same steps as
    `sysid.fit(models[i], ...)` with the same arguments (a member that stops, converged or
    after a non-finite loss, stays where it stopped while the others go on); their numbers
    agree to float rounding (a batched matrix product may round differently). `_chunk`: as
    `sysid.fit`'s (for tests).
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
    chunk = check_int(_chunk, "_chunk", 1, CHUNK)
    ses = session(checkpoint, checkpoint_every, resume)
    ses.start = start
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
    ens = _Loop(vars_, state, np.zeros(k, np.int64), np.zeros(k, np.int64), chunk=chunk)
    if ses.active:
        opts = (kind, optimizer, criterion, lr, steps, l2, tol, standardize, None, None, chunk)
        options = {"members": k, **_options_fingerprint(*opts)}
        ses.fingerprint = fingerprint(members[0], records, None, options)
    dtype_loss = loss_dtype(kind, jax.eval_shape(lambda v: jax.tree.map(lambda a: a[0], v), vars_))
    ses.restore_ensemble(ens, dtype_loss, steps)
    _loop(ens, static, (rest_arrays, data, l2a, tol_a), steps, (ses, dtype_loss))
    vars_ = ens.vars
    finals = np.full(k, np.nan)
    if not ens.interrupted:
        dyn = (vars_, rest_arrays, data, l2a)
        program, t = compiled("ensemble_loss", _losses, (rest_static, criterion), dyn)
        finals, ens.compile_time = np.asarray(program(dyn)), ens.compile_time + t
    wall = ens.prior_wall + time.perf_counter() - start
    run = (ens, finals, wall, steps)
    single = not isinstance(experiments, Sequence)
    # the members' arrays apart in one program (indexing each leaf eagerly compiles a kernel
    # a leaf shape)
    params, x0s = _unstacked(vars_, k)
    out_models = [eqx.combine(params[i], parts[i][1]) for i in range(k)]
    out_x0 = [x0s[i][0] if single else x0s[i] for i in range(k)]
    return out_models, out_x0, [_history(run, i) for i in range(k)]


@functools.partial(jax.jit, static_argnums=1)
def _unstacked(tree: Any, k: int) -> tuple[list, list]:
    """`(params, x0s)` of each of the `k` members of the stacked `(params, x0s)`."""
    params, x0s = tree
    return [jax.tree.map(lambda a, i=i: a[i], params) for i in range(k)], [x0s[i] for i in range(k)]


def _loop(ens: _Loop, static, inputs, steps: int, saving: tuple[Session, str]) -> None:
    """Call the ensemble's chunk program until every member has stopped or run `steps`;
    checkpoints after a chunk once `checkpoint_every` seconds have passed, at the end and on
    Ctrl-C."""
    ses, dtype = saving
    rest_arrays, data, l2a, tol_a = inputs
    try:
        with _sigint_as_flag() as sigint:
            while True:
                n = np.where(ens.codes == RUNNING, np.minimum(ens.chunk, steps - ens.done), 0)
                if not n.any():
                    break
                dyn = (ens.vars, ens.state, rest_arrays, data, l2a, jnp.asarray(n, jnp.int32))
                name = f"ensemble_{static[0]}"  # ensemble_lm or ensemble_optax
                program, t = compiled(name, _program, static, (*dyn, tol_a))
                ens.compile_time += t
                ens.vars, ens.state, buf, ran, code = program((*dyn, tol_a))
                ran, code, buf = np.asarray(ran), np.asarray(code), np.asarray(buf)
                ens.buffers.append([buf[i, : ran[i]] for i in range(len(n))])
                ens.done = ens.done + ran
                ens.codes = np.where(n > 0, code, ens.codes)
                if sigint["set"]:
                    ens.interrupted = True
                    break
                if ses.due():
                    ses.save_ensemble(ens, dtype)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, with what the finished chunks trained
        ens.interrupted = True
    ses.save_ensemble(ens, dtype)


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
    ens, finals, wall, steps = run
    done, codes = ens.done, ens.codes
    stop = _STOPS.get(int(codes[i]), "completed")
    if stop == "completed" and ens.interrupted and done[i] < steps:
        stop = "interrupted"
    return History(
        loss=(
            np.concatenate([b[i] for b in ens.buffers]) if ens.buffers else np.zeros(0, np.float32)
        ),
        val_loss=np.zeros(0, np.float32),
        val_steps=np.zeros(0, np.int64),
        steps=int(done[i]),
        stop_reason=stop,
        best_step=None,
        final_loss=float(finals[i]),
        wall_time=wall,
        compile_time=ens.compile_time,
        message=f"sysid.fit_ensemble member {i}: {stop} after {int(done[i])} steps.",
    )
