"""The compiled training program shared by `fit` and `fit_ensemble`: module-level step, eval,
chunk and final functions over a typed state (`MemberState`).

One call of the program runs

    while chunk < max_chunks and t < end and some member is running:   # once per chunk
        the chunk's batch indices (a host input, or drawn on the device)
        lax.scan over `chunk` steps                                      # static trip count
        (steps past `end`, or of a member that has stopped, leave its state unchanged)

and returns the per-step losses (the objective, and the data loss without the penalty), each
member's status and the model it would return. The
validation loss, the best parameters, the patience counter, the non-finite guard and the
convergence test all live in the loop, so the host only calls again to update a progress bar or
to stay responsive to Ctrl-C (about every half second of run time).

What is static (the program's shape) is its `Config`; everything else is a run-time input: the
state (learning rate in the optimizer state, `l1`, `l2`, `tol`), and `Scalars` (steps, N,
`eval_every`, `patience`, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..solvers._solver import SolverStep, as_step
from ._callbacks import pack
from ._config import Config
from ._flat import unraveler
from ._objective import Objective, loss_dtype
from ._one_kernel import one_kernel
from ._sampling import device_chunk_indices
from ._state import CONVERGED, DIVERGED, EARLY_STOPPING, NON_FINITE, RUNNING, MemberState

PyTree = Any

DIVERGENCE_FACTOR = 1e4
"""In a full-batch fit, a finite loss above `DIVERGENCE_FACTOR * max(lowest loss so far,
1e-3 * first loss)` stops the fit as diverged (e.g. `rmsprop` at a learning rate of 1e8): the
last model before it is returned, as for a non-finite loss."""


class Scalars(NamedTuple):
    """The program's run-time integers, passed as ONE int32 vector (one transfer a call)."""

    t0: Any  # the first step of this call
    max_chunks: Any  # chunks this call may run
    end: Any  # the fit's number of steps
    n: Any  # the real number of samples
    n_iter_no_change: Any
    eval_every: Any
    patience: Any  # 0: no early stopping

    def vector(self) -> np.ndarray:
        return np.asarray(self, np.int32)

    @classmethod
    def of(cls, vector: jax.Array) -> Scalars:
        return cls(*(vector[j] for j in range(len(cls._fields))))


class Output(NamedTuple):
    """What one call returns besides the state; the host reads all but `result` in one
    transfer."""

    ints: jax.Array  # [t_end, status (K), stop_step (K), best_step (K)]
    loss: jax.Array  # per-step training losses, (steps_per_call,) or (K, steps_per_call)
    data_loss: jax.Array  # the same without the penalty (equal to `loss` where l1 = l2 = 0)
    val: jax.Array | None  # per-step validation losses (NaN where none was evaluated)
    result: PyTree  # the parameters each member would return now (as the model's tree)
    final_loss: jax.Array  # each member's final loss once the fit is over, else NaN
    # with `cfg.snap_chunks`: `(state, result)` packed (`snapshot`) at the end of every
    # `snap_chunks` chunks, stacked (slot i: after chunk (i + 1) * snap_chunks), else None
    snaps: Any = None


def precision_context(precision: str | None):
    """`jax.default_matmul_precision(precision)`, or nothing for `None`."""
    if precision is None:
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)


def members(cfg: Config, f: Callable, in_axes: Any = 0) -> Callable:
    """`jax.vmap` over the members of an ensemble; `f` itself for one model."""
    return jax.vmap(f, in_axes=in_axes) if cfg.ensemble else f


def _where(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _take(data, idx):
    # Indices come from permutations of range(N) or randint(0, N): always in bounds, so the
    # gather needs no clamping (a clamp costs a noticeable part of a small mini-batch step).
    return jax.tree.map(lambda a: a.at[idx].get(mode="promise_in_bounds"), data)


def _constrain(cfg: Config, batch):
    if cfg.batch_sharding is None:
        return batch
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, cfg.batch_sharding), batch)


def objective_of(cfg: Config, m: MemberState) -> Objective:
    """The `Objective` one member's solver minimises."""
    return Objective(
        cfg.loss,
        m.frozen,
        cfg.static,
        l1=m.l1,
        l2=m.l2,
        tol=m.tol,
        compute_dtype=cfg.compute_dtype,
        unravel=None if cfg.param_spec is None else unraveler(cfg.param_spec),
        terms=cfg.penalty_terms,
        feature_major=cfg.feature_major,
    )


# --- one step of one member ---------------------------------------------------------------------


def _batch_for(cfg: Config, data, n, ids, t):
    """The batch of step `t` from indices `ids` (None: full batch)."""
    if ids is None:
        return data
    x, y, w = _take(data, ids)
    if cfg.sampling == "epoch" and not cfg.drop_last:
        # the epoch's last, smaller batch: a full-size batch whose extra slots weigh 0
        bs = cfg.batch_size
        j = t % cfg.steps_per_epoch(n)
        mask = (j * bs + jnp.arange(bs)) < n
        w = mask.astype(x.dtype) if w is None else w * mask.astype(w.dtype)
    return x, y, w


def _step(cfg: Config, objective: Objective, params, opt, batch) -> SolverStep:
    return as_step(cfg.solver.step(objective, params, opt, batch))


def _solver_step(cfg: Config, data, n, m: MemberState, ids, t) -> tuple[SolverStep, Any]:
    """The solver's step on this step's batch, and the batch's weight (for the plateau rule)."""
    objective = objective_of(cfg, m)
    bs = cfg.batch_size
    if ids is None or cfg.weighted or cfg.sampling == "replacement" or cfg.drop_last:
        batch = _batch_for(cfg, data, n, ids, t)
        out = _step(cfg, objective, m.params, m.opt, _constrain(cfg, batch))
        return out, (jnp.sum(batch[2]) if batch[2] is not None else batch[0].shape[0])
    # a callable loss cannot be weighted: a second body for the epoch's last batch
    assert bs is not None  # mini-batches (ids is not None)
    last = cfg.n_floor % bs  # a callable loss trains on exactly N rows: N is static

    def partial():
        sub = _take(data, ids[:last])  # the epoch's last batch holds `last` samples
        return _step(cfg, objective, m.params, m.opt, _constrain(cfg, sub))

    def full():
        batch = _constrain(cfg, _take(data, ids))
        return _step(cfg, objective, m.params, m.opt, batch)

    is_last = t % cfg.steps_per_epoch(n) == cfg.steps_per_epoch(n) - 1
    out = lax.cond(is_last, partial, full) if last else full()
    return out, (jnp.where(is_last, last, bs) if last else bs)


def _plateau(cfg: Config, sc: Scalars, m: MemberState, loss, weight, use, t):
    """scikit-learn's rule: the epoch's training loss (the mean of its batch losses, weighted by
    each batch's sample weight) has not beaten the best epoch's by `tol` for more than
    `n_iter_no_change` epochs (full batch: one step is an epoch). Returns `(converged, f, i)`:
    the updated bookkeeping."""
    f, i = m.f, m.i
    spe = 1 if cfg.batch_size is None else cfg.steps_per_epoch(sc.n)
    weight = jnp.asarray(weight, loss.dtype)
    total = f.epoch_sum + jnp.where(use, loss * weight, 0)
    wsum = f.epoch_weight + jnp.where(use, weight, 0)
    epoch_end = use & ((t + 1) % spe == 0)
    mean = total / jnp.where(wsum > 0, wsum, 1)
    stale = jnp.where(mean > f.best_epoch - m.tol, i.stale + 1, 0)
    stale = jnp.where(epoch_end, stale, i.stale)
    converged = epoch_end & (m.tol > 0) & (stale > sc.n_iter_no_change)
    f = f._replace(
        epoch_sum=jnp.where(epoch_end, 0, total),
        epoch_weight=jnp.where(epoch_end, 0, wsum),
        best_epoch=jnp.where(epoch_end, jnp.minimum(mean, f.best_epoch), f.best_epoch),
    )
    return converged, f, i._replace(stale=stale)


def member_step(cfg: Config, data, sc: Scalars, m: MemberState, ids, t, in_range):
    """One step of one member: `(member, loss, ok)`; `loss` is NaN where the member did not
    step, `ok` whether it took the step with a finite loss.

    The guard keeps `good`, the parameters the last finite loss was computed at: `(params,
    good)` becomes `(new, params)` after a step with a finite loss, and stays otherwise. Done
    by selecting into both, XLA copies the parameters every step (the old `params` is read by
    one select while the other overwrites it). With `cfg.ring` the step writes
    `(new if ok else good, params)` instead: two steps a scan iteration (`unroll` 2) then
    write each buffer in place, with no copy. A step that is not `ok` swaps the two (`ok` is
    False for every later step of the call), so `program` carries a `swapped` flag a member and
    puts them back (`unswapped`) where they are read."""
    ldt = loss_dtype(m.params)
    out, weight = _solver_step(cfg, data, sc.n, m, ids, t)
    loss = jnp.asarray(out.loss).astype(ldt)
    converged = jnp.asarray(out.converged, bool)
    active = (m.i.status == RUNNING) & in_range
    finite = jnp.isfinite(loss)
    f, i = m.f, m.i
    if not cfg.solver_test:
        converged, f, i = _plateau(cfg, sc, m, loss, weight, active & finite, t)
    first = jnp.where(jnp.isnan(f.first_loss), loss, f.first_loss)
    limit = DIVERGENCE_FACTOR * jnp.maximum(f.min_loss, 1e-3 * jnp.abs(first))
    # full batch only: mini-batch losses legitimately vary by orders of magnitude
    diverged = active & finite & (loss > limit) & (cfg.batch_size is None)
    ok = active & finite & ~diverged
    bad = active & ~finite
    done = ok & converged
    status = jnp.where(done, CONVERGED, i.status)
    status = jnp.where(bad, NON_FINITE, jnp.where(diverged, DIVERGED, status))
    f = f._replace(
        good_loss=jnp.where(ok, loss, f.good_loss),
        min_loss=jnp.where(ok, jnp.minimum(f.min_loss, loss), f.min_loss),
        first_loss=jnp.where(active, first, f.first_loss),
    )
    i = i._replace(
        status=status,
        stop_step=jnp.where(bad | diverged, t, jnp.where(done, t + 1, i.stop_step)),
    )
    if cfg.ring:
        good, params = m.params, _where(ok, out.params, m.good)
    else:
        good, params = _where(ok, m.params, m.good), _where(ok, out.params, m.params)
    # the optimiser state needs no guard: a stopped member never steps again
    m = m.update(f, i, good=good, params=params, opt=out.state)
    return m, jnp.where(active & ~diverged, loss, jnp.asarray(jnp.nan, ldt)), ok


# --- validation ---------------------------------------------------------------------------------


def member_val_loss(cfg: Config, val, m: MemberState):
    """The validation loss of the member's current parameters (no penalty)."""
    return objective_of(cfg, m).data_loss(m.params, val).astype(loss_dtype(m.params))


def member_eval(sc: Scalars, m: MemberState, ok, v, t):
    """Bookkeeping after a validation loss `v` (NaN where none was evaluated): the best model,
    patience."""
    f, i = m.f, m.i
    ok = ok & ~jnp.isnan(v)
    improved = ok & (v < f.best_val)
    since = jnp.where(ok, jnp.where(improved, 0, i.since + 1), i.since)
    stop = ok & (sc.patience > 0) & (since >= sc.patience) & (i.status == RUNNING)
    i = i._replace(
        best_step=jnp.where(improved, t + 1, i.best_step),
        since=since,
        status=jnp.where(stop, EARLY_STOPPING, i.status),
        stop_step=jnp.where(stop, t + 1, i.stop_step),
    )
    f = f._replace(best_val=jnp.where(improved, v, f.best_val))
    m = m.update(f, i, best=_where(improved, m.params, m.best))
    return m, jnp.where(ok, v, jnp.asarray(jnp.nan, v.dtype))


# --- a step of every member, a chunk of steps ---------------------------------------------------


def penalties(cfg: Config, state: MemberState):
    """Each member's penalty `l1 * sum|W| + l2 * sum W**2` of its current parameters (0 where
    `l1 = l2 = 0`: then `loss - penalty` is `loss`, bit for bit).

    Computed as the objective computes it, on the parameters the solver evaluates the
    objective at: XLA merges the two (common-subexpression elimination), so recording the data
    loss adds no kernel to the step of a solver that evaluates `objective(params, batch)`
    itself (else one small reduction over the weights). A `lax.cond` on the run-time `l1`,
    `l2` would hide it from that merge and cost a conditional every step."""
    ldt = loss_dtype(state.params)
    return members(cfg, lambda m: objective_of(cfg, m).penalty(m.params).astype(ldt))(state)


def unswapped(cfg: Config, state: MemberState, swapped) -> MemberState:
    """The state with each member's `params` and `good` in their places (`swapped`: None, or
    a flag a member, see `member_step`)."""
    if swapped is None:
        return state

    def one(m: MemberState, s):
        return m.update(params=_where(s, m.good, m.params), good=_where(s, m.params, m.good))

    return members(cfg, one)(state, swapped)


def scan_step(cfg: Config, data, val, sc: Scalars, carry, xs):
    """The body of the chunk's `lax.scan`: one step of every member, and its evaluation.
    Records the step's loss and data loss (the loss less the penalty of the parameters the
    step started from: the solver reports the loss before its update). `carry` is `(state,
    t0, swapped)` (`swapped`: see `member_step`)."""
    state, t0, swapped = carry
    j, ids = xs
    t = t0 + j
    in_range = t < sc.end

    def step(m, ids):
        return member_step(cfg, data, sc, m, ids, t, in_range)

    penalty = penalties(cfg, state)
    stepped = members(cfg, step, (0, None if ids is None else 0))
    if cfg.has_val:  # the step (not the branch below) as one kernel (`_chunk_scan`)
        state, loss, ok = one_kernel(cfg, stepped, state, ids)
    else:
        state, loss, ok = stepped(state, ids)
    if swapped is not None:
        swapped = swapped ^ ~ok
    # the loss and the data loss (NaN where the member did not step) as ONE output: one
    # write a step into the call's buffer
    losses = jnp.stack([loss, loss - penalty])
    if not cfg.has_val:
        return (state, t0, swapped), (losses,)
    eval_now = in_range & (((t + 1) % sc.eval_every == 0) | (t + 1 == sc.end))
    # only the validation loss under the branch (a forward pass): the bookkeeping outside
    # it, so the branch neither carries nor copies the members' state
    v = lax.cond(
        eval_now,
        lambda ms: members(cfg, lambda m: member_val_loss(cfg, val, m))(ms),
        lambda ms: jnp.full_like(loss, jnp.nan),
        state,
    )
    evaluate = members(cfg, lambda m, ok, v: member_eval(sc, m, ok, v, t))
    state, v = evaluate(state, ok, v)
    return (state, t0, swapped), (losses, v)


def chunk_indices(cfg: Config, data, idx, sc: Scalars, state: MemberState, c, t0):
    """The chunk's indices, step-major: `(chunk, batch)` or `(chunk, K, batch)` (None: full
    batch), and the state (its permutation cache updated)."""
    if cfg.batch_size is None:
        return None, state
    if cfg.device_sampling:
        width = data[0].shape[0]
        draw = members(cfg, lambda m: device_chunk_indices(cfg, m, t0, sc.n, width))
        ids, state = draw(state)
        return (jnp.swapaxes(ids, 0, 1) if cfg.ensemble else ids), state
    return lax.dynamic_slice_in_dim(idx, c * cfg.chunk, cfg.chunk, axis=0), state


def _chunk_scan(cfg: Config, body: Callable, init, xs):
    """`lax.scan(body, init, xs)` over the chunk's steps: one kernel (`one_kernel`), or with a
    validation set (a branch in the step) one kernel a step for its training part
    (`scan_step`)."""

    def scan(init, xs):
        return lax.scan(body, init, xs, unroll=cfg.unroll)

    return scan(init, xs) if cfg.has_val else one_kernel(cfg, scan, init, xs)


def run_chunk(cfg: Config, data, val, idx, sc: Scalars, carry):
    """One chunk: `cfg.chunk` steps in a `lax.scan`, their losses written into the buffers."""
    c, t0, state, bufs, swapped = carry
    ids, state = chunk_indices(cfg, data, idx, sc, state, c, t0)

    def body(carry, xs):
        return scan_step(cfg, data, val, sc, carry, xs)

    steps = jnp.arange(cfg.chunk, dtype=jnp.int32)
    (state, _, swapped), outs = _chunk_scan(cfg, body, (state, t0, swapped), (steps, ids))
    bufs = tuple(
        lax.dynamic_update_slice_in_dim(buf, jnp.moveaxis(o, 0, -1), c * cfg.chunk, axis=-1)
        for buf, o in zip(bufs, outs, strict=True)
    )
    return c + 1, t0 + cfg.chunk, state, bufs, swapped


# --- what each member returns -------------------------------------------------------------------


def member_result(cfg: Config, sc: Scalars, m: MemberState):
    """The parameters the member would return now: its last finite ones after a non-finite
    loss or a divergence, its best ones after early stopping with validation, else its
    latest."""
    status = m.i.status
    use_good = (status == NON_FINITE) | (status == DIVERGED)
    result = _where(use_good, m.good, m.params)
    use_best = jnp.asarray(False)
    if cfg.has_val:
        use_best = (m.i.best_step >= 0) & (sc.patience > 0) & ~use_good
        result = _where(use_best, m.best, result)
    return result, use_good, use_best


def member_final(cfg: Config, data, sc: Scalars, t_end, m: MemberState, r, use_good, use_best):
    """A finished member's final loss (of the parameters it returns) and those parameters: a
    last update that produced a non-finite model returns the last finite one."""
    ldt = loss_dtype(m.params)
    if cfg.batch_size is None:
        value = objective_of(cfg, m)(r, data).astype(ldt)
        finite = jnp.isfinite(value)
    else:
        # a mini-batch fit's full-data loss can cost more than its steps: the host computes
        # it when `History.final_loss` is read (`lazy_final_losses`); the guard checks the
        # parameters instead
        value = jnp.asarray(jnp.nan, ldt)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(r)]))
    blew_up = ~finite & ~use_good & ~use_best
    i = m.i
    steps_run = jnp.where(i.status == RUNNING, jnp.minimum(t_end, sc.end), i.stop_step)
    i = i._replace(
        status=jnp.where(blew_up, NON_FINITE, i.status),
        stop_step=jnp.where(blew_up, steps_run, i.stop_step),
    )
    r = _where(blew_up, m.good, r)
    return jnp.where(blew_up, m.f.good_loss, value), r, m.update(i=i)


def _finish(cfg: Config, data, sc: Scalars, t_end, state: MemberState):
    """Each member's result, and its final loss once the whole fit is over (NaN before)."""
    result, use_good, use_best = members(cfg, lambda m: member_result(cfg, sc, m))(state)
    finished = (state.i.status != RUNNING) | (t_end >= sc.end)

    def final(result, state, use_good, use_best):
        def one(m, r, g, b):
            return member_final(cfg, data, sc, t_end, m, r, g, b)

        return members(cfg, one)(state, result, use_good, use_best)

    def not_yet(result, state, use_good, use_best):
        del use_good, use_best
        k_shape = state.i.status.shape
        return jnp.full(k_shape, jnp.nan, loss_dtype(state.params)), result, state

    return lax.cond(jnp.all(finished), final, not_yet, result, state, use_good, use_best)


# --- the program --------------------------------------------------------------------------------


def program(cfg: Config, state: MemberState, data, val, idx, sc_vector):
    """One call: up to `max_chunks` chunks from step `t0` (see `Scalars` and the module
    docstring). Returns `(state, Output)`."""
    sc = Scalars.of(sc_vector)
    ldt = loss_dtype(state.params)
    k_shape = state.i.status.shape  # () or (K,)
    # [loss, data loss] stacked on a leading axis; the validation losses
    bufs = (jnp.full((2, *k_shape, cfg.steps_per_call), jnp.nan, ldt),)
    if cfg.has_val:
        bufs = (*bufs, jnp.full((*k_shape, cfg.steps_per_call), jnp.nan, ldt))

    def cond(carry):
        c, t0, state = carry[:3]
        return (c < sc.max_chunks) & (t0 < sc.end) & jnp.any(state.i.status == RUNNING)

    def chunk(carry):
        *carry, snaps = carry
        c, t0, state, bufs, swapped = run_chunk(cfg, data, val, idx, sc, tuple(carry))
        if snaps is not None:  # the slot of this chunk's interval: its last chunk writes last
            slot = (c - 1) // cfg.snap_chunks
            snaps = jax.tree.map(
                lambda buf, a: lax.dynamic_update_index_in_dim(buf, a, slot, 0),
                snaps,
                snapshot(cfg, sc, unswapped(cfg, state, swapped)),
            )
        return c, t0, state, bufs, swapped, snaps

    snaps = None
    if cfg.snap_chunks:
        n_snaps = cfg.max_chunks // cfg.snap_chunks
        first = snapshot(cfg, sc, state)
        snaps = jax.tree.map(lambda a: jnp.broadcast_to(a[None], (n_snaps, *a.shape)), first)
    # with `cfg.ring`, whether each member's `params` and `good` are swapped (`member_step`)
    swapped = jnp.zeros(k_shape, bool) if cfg.ring else None
    carry = (jnp.int32(0), sc.t0, state, bufs, swapped, snaps)
    _, t_end, state, bufs, swapped, snaps = lax.while_loop(cond, chunk, carry)
    state = unswapped(cfg, state, swapped)
    final_loss, result, state = _finish(cfg, data, sc, t_end, state)
    as_tree = _as_tree(cfg)
    i = state.i
    # the host reads `t` and each member's status, stop and best steps: one vector
    ints = [v.reshape(-1) for v in (i.status, i.stop_step, i.best_step)]
    out = Output(
        ints=jnp.concatenate([t_end.reshape(1), *ints]),
        loss=bufs[0][0],
        data_loss=bufs[0][1],
        val=bufs[1] if cfg.has_val else None,
        result=as_tree(result),
        final_loss=final_loss,
        snaps=snaps,
    )
    return state, out


def _as_tree(cfg: Config) -> Callable:
    """Parameters as the model's tree (they are one vector in flat mode)."""
    return (lambda r: r) if cfg.param_spec is None else members(cfg, unraveler(cfg.param_spec))


def snapshot(cfg: Config, sc: Scalars, state: MemberState):
    """What a callback at a step inside a call reads: the state there, and the parameters each
    member would return from it (as the model's tree), packed (`_callbacks.unpack` reads it)."""
    result = members(cfg, lambda m: member_result(cfg, sc, m)[0])(state)
    return pack((state, _as_tree(cfg)(result)))


# --- a mini-batch fit's final loss, on the host's demand ------------------------------------------


def _final_values(cfg: Config, frozen, l1, l2, result, data):
    def one(f, a, b, r):
        objective = Objective(
            cfg.loss,
            f,
            cfg.static,
            l1=a,
            l2=b,
            tol=None,
            compute_dtype=cfg.compute_dtype,
            terms=cfg.penalty_terms,
            feature_major=cfg.feature_major,
        )
        return objective(r, data).astype(loss_dtype(r))

    return members(cfg, one)(frozen, l1, l2, result)


_jitted_final_values = jax.jit(_final_values, static_argnums=0)


class LazyFinalLosses:
    """Each member's training objective of the parameters it returns (`result`, as trees) on
    the whole training data, computed (for every member at once) on the first read."""

    def __init__(self, cfg: Config, state: MemberState, result: PyTree, data):
        self._args: tuple | None = (cfg, state.frozen, state.l1, state.l2, result, data)
        self._values: np.ndarray | None = None

    def __call__(self, j: int) -> float:
        if self._values is None:
            args = self._args
            assert args is not None
            with precision_context(args[0].precision):
                values = _jitted_final_values(*args)
            self._values = np.asarray(values).reshape(-1)
            self._args = None  # the data and parameters are no longer held
        return float(self._values[j])


def lazy_final_losses(
    cfg: Config, state: MemberState, result: PyTree, data, final_loss: np.ndarray, reasons
) -> list:
    """The members' `History.final_loss`: the program's values for full-batch fits; for a
    mini-batch fit a function that computes it on first read (`nan` where the fit is not
    over: interrupted or stopped by a callback)."""
    if cfg.batch_size is None:
        return [float(v) for v in final_loss]
    # data the program took from the host (small NumPy arrays) may be the caller's: copied,
    # so that a later read does not see the caller's later changes
    data = jax.tree.map(lambda a: np.array(a) if isinstance(a, np.ndarray) else a, data)
    lazy = LazyFinalLosses(cfg, state, result, data)
    return [_Member(lazy, j) if r in _OVER else float("nan") for j, r in enumerate(reasons)]


_OVER = ("completed", "converged", "early_stopping", "non_finite_loss", "diverged")
"""The stop reasons of a member whose fit is over (the others report no final loss)."""


class _Member:
    """Member `j`'s value of a `LazyFinalLosses` (pickled as the number)."""

    def __init__(self, lazy: LazyFinalLosses, j: int):
        self.lazy, self.j = lazy, j

    def __call__(self) -> float:
        return self.lazy(self.j)

    def __reduce__(self):
        return (float, (self(),))
