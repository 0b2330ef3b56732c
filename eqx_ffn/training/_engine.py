"""The compiled training program shared by `fit` and `fit_ensemble`.

One program per network structure. Its cache key (`Config` plus the shapes, dtypes and placement
of its inputs) holds only what changes the program's shape: the model's structure, the loss, the
optimizer's `update` function by value, the batch size and sampling mode, the padded data sizes,
the compute dtype and matmul precision. Everything else is a run-time input: the learning rate
(in the optimizer state), `l1`, `l2`, `tol`, the number of steps, the sample weights, the real
number of samples, the validation data, `eval_every`, `patience` and the key.

One call of the program runs

    while chunk < max_chunks and t < end and some member is running:   # once per chunk
        the chunk's batch indices (a host input, or drawn on the device)
        lax.scan over `chunk` steps                                      # static trip count
        (steps past `end`, or of a member that has stopped, leave its state unchanged)

and returns the per-step losses, each member's status and the model it would return. The
validation loss, the best parameters, the patience counter, the non-finite guard and the
convergence test all live in the loop, so the host only calls again to update a progress bar or
to stay responsive to Ctrl-C (about every half second of run time).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from ..solvers._solver import Solver
from ._cache_key import identity_memo, pytree_key, signature, value_key
from ._compile_options import CPU_COMPILE_OPTIONS, FAST_COMPILE_OPTIONS
from ._losses import Loss
from ._objective import Objective, loss_dtype

PyTree = Any

RUNNING, EARLY_STOPPING, NON_FINITE, CONVERGED, DIVERGED = 0, 1, 2, 3, 4
"""A member's status inside the program."""

DIVERGENCE_FACTOR = 1e4
"""In a full-batch fit, a finite loss above `DIVERGENCE_FACTOR * max(lowest loss so far,
1e-3 * first loss)` stops the fit as diverged (e.g. `rmsprop` at a learning rate of 1e8): the
last model before it is returned, as for a non-finite loss."""


FLOAT_FIELDS = (
    "good_loss", "min_loss", "first_loss", "epoch_sum", "epoch_weight", "best_epoch", "best_val"
)  # fmt: skip
INT_FIELDS = ("status", "stop_step", "stale", "best_step", "since")
"""A member's scalar bookkeeping, packed into two small vectors of its state (`"f"`, `"i"`): one
kernel a step updates them all, not one kernel per scalar."""

FLOAT_INIT = {"good_loss": np.nan, "min_loss": np.inf, "first_loss": np.nan, "epoch_sum": 0.0,
              "epoch_weight": 0.0, "best_epoch": np.inf, "best_val": np.inf}  # fmt: skip
INT_INIT = {"status": RUNNING, "stop_step": 0, "stale": 0, "best_step": -1, "since": 0}


def unpack(member: dict) -> dict:
    """The member's state with its scalar bookkeeping as named entries."""
    out = {k: v for k, v in member.items() if k not in ("f", "i")}
    out.update({name: member["f"][..., j] for j, name in enumerate(FLOAT_FIELDS)})
    out.update({name: member["i"][..., j] for j, name in enumerate(INT_FIELDS)})
    return out


def pack(member: dict) -> dict:
    """The inverse of `unpack`."""
    out = {k: v for k, v in member.items() if k not in FLOAT_FIELDS and k not in INT_FIELDS}
    out["f"] = jnp.stack([member[name] for name in FLOAT_FIELDS], axis=-1)
    out["i"] = jnp.stack([jnp.asarray(member[name], jnp.int32) for name in INT_FIELDS], axis=-1)
    return out


def field(state: dict, name: str) -> jax.Array:
    """One scalar field of (every member of) a packed state."""
    if name in INT_FIELDS:
        return state["i"][..., INT_FIELDS.index(name)]
    return state["f"][..., FLOAT_FIELDS.index(name)]


POW2_BUCKETS_UP_TO = 2048
"""Up to this many rows, N is padded to the next power of two; above, to 4 sizes per octave."""


def bucket(n: int, multiple: int = 1) -> int:
    """The padded size for `n` rows, rounded up to a multiple of `multiple` (the number of devices
    of a mesh): the next power of two up to `POW2_BUCKETS_UP_TO` rows (where compiling costs far
    more than the padding: cross-validation folds of 160, 161 or 200 rows share one program),
    then 4 sizes per octave (at most 25% padding, 12% on average).

    The padding rows carry weight zero and never enter a mini-batch.
    """
    if n <= POW2_BUCKETS_UP_TO:
        size = 1 << max(n - 1, 0).bit_length()
    else:
        step = 1 << (n.bit_length() - 3)  # a quarter of the octave [2^k, 2^(k+1))
        size = -(-n // step) * step
    return -(-size // multiple) * multiple


def bucket_floor(size: int) -> int:
    """The smallest `n` with `bucket(n) == size` (a lower bound on N for a padded size)."""
    lo, hi = 1, size
    while lo < hi:
        mid = (lo + hi) // 2
        if bucket(mid) >= size:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Everything static about a training program; compared by value (it keys the cache)."""

    solver: Solver
    loss: Loss
    static: PyTree  # the model's non-array part
    batch_size: int | None  # None: full batch
    sampling: str  # "epoch" or "replacement"
    drop_last: bool
    weighted: bool  # data carry per-sample weights (False only for a callable loss)
    n_floor: int  # a lower bound on the real N (to size the epoch rows of a chunk)
    device_sampling: bool  # draw batch indices on the device (else they are a host input)
    chunk: int  # steps per scan (static)
    max_chunks: int  # chunks one call can run: the loss buffers hold chunk * max_chunks steps
    unroll: int
    has_val: bool
    ensemble: bool  # state leaves have a leading member axis
    solver_test: bool  # the solver reports convergence (else the engine's loss-plateau rule)
    compute_dtype: Any = None
    precision: str | None = None
    batch_sharding: Any = None  # a NamedSharding for data-parallel batches, or None
    param_spec: Any = None  # the raveled parameters' layout (flat mode), or None (the tree)
    cpu_options: bool = False  # compiled with CPU_COMPILE_OPTIONS
    fast_compile: bool = False  # a small CPU program (see FAST_COMPILE_OPTIONS)

    def __post_init__(self):
        solver_key = getattr(self.solver, "program_key", None)
        key = (
            solver_key() if callable(solver_key) else value_key(self.solver),
            value_key(self.loss),
            pytree_key(self.static),
            self.batch_size,
            self.sampling,
            self.drop_last,
            self.weighted,
            self.n_floor if self.batch_size is not None else None,
            self.device_sampling,
            self.chunk,
            self.max_chunks,
            self.unroll,
            self.has_val,
            self.ensemble,
            self.solver_test,
            None if self.compute_dtype is None else str(jnp.dtype(self.compute_dtype)),
            self.precision,
            self.batch_sharding,
            self.param_spec,
            self.cpu_options,
            self.fast_compile,
        )
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self._key == other._key  # type: ignore[attr-defined]

    @property
    def steps_per_call(self) -> int:
        return self.chunk * self.max_chunks

    def steps_per_epoch(self, n):
        """Mini-batch steps in an epoch of `n` samples (a traced or a Python int)."""
        bs = self.batch_size
        assert bs is not None
        if self.drop_last:
            return n // bs
        return (n + bs - 1) // bs

    @property
    def epoch_rows(self) -> int:
        """The most epochs that `chunk` consecutive steps can touch."""
        spe_min = max(1, self.steps_per_epoch(self.n_floor))
        return min(self.chunk, (self.chunk - 1) // spe_min + 2)


def _where(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _take(data, idx):
    # Indices come from permutations of range(N) or randint(0, N): always in bounds, so the
    # gather needs no clamping (about 8% of a 256-sample mini-batch step on a CPU).
    return jax.tree.map(lambda a: a.at[idx].get(mode="promise_in_bounds"), data)


def _constrain(cfg: Config, batch):
    if cfg.batch_sharding is None:
        return batch
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, cfg.batch_sharding), batch)


@identity_memo
def param_spec(params: PyTree) -> Any:
    """The layout of `params` raveled into one vector (hashable), or None when the leaves do
    not share one floating dtype."""
    leaves, treedef = jax.tree.flatten(params)
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) != 1 or not leaves:
        return None
    try:
        hash(treedef)
    except TypeError:  # a static field holding something unhashable: keep the tree
        return None
    shapes = tuple(tuple(int(d) for d in leaf.shape) for leaf in leaves)
    return (treedef, shapes, str(dtypes.pop()))


def ravel_params(params: PyTree) -> jax.Array:
    """The trained arrays as ONE vector, in leaf order."""
    return jnp.concatenate([leaf.reshape(-1) for leaf in jax.tree.leaves(params)])


def unraveler(spec: Any):
    """The inverse of `ravel_params` for the layout `spec`."""
    treedef, shapes, _ = spec
    sizes = [int(np.prod(shape)) for shape in shapes]

    def unravel(flat: jax.Array) -> PyTree:
        # lax.split, whose transpose is one concatenate (slices would transpose to a pad and an
        # add per array)
        parts = lax.split(flat, sizes)
        return jax.tree.unflatten(
            treedef, [p.reshape(shape) for p, shape in zip(parts, shapes, strict=True)]
        )

    return unravel


def objective_of(cfg: Config, member: dict) -> Objective:
    """The `Objective` one member's solver minimises."""
    return Objective(
        cfg.loss,
        member["frozen"],
        cfg.static,
        l1=member["l1"],
        l2=member["l2"],
        tol=member["tol"],
        compute_dtype=cfg.compute_dtype,
        unravel=None if cfg.param_spec is None else unraveler(cfg.param_spec),
    )


# --- batch indices drawn on the device -------------------------------------------------------


def device_epoch_permutation(key: jax.Array, epoch, n, width: int) -> jax.Array:
    """A permutation of `range(n)` (`n` traced) in the first `n` of `width` slots: padding rows
    (indices `n .. width-1`) sort last. Keyed by the fit's key and the epoch."""
    bits = jr.bits(jr.fold_in(key, epoch), (width,), jnp.uint32) >> 1
    bits = jnp.where(jnp.arange(width) < n, bits, jnp.uint32(0xFFFFFFFF))
    return jnp.argsort(bits, stable=True).astype(jnp.int32)


def _device_chunk_indices(cfg: Config, member: dict, t0, n, width: int):
    """`(chunk, batch_size)` indices for steps `t0 .. t0 + chunk - 1`, drawn on the device, and
    the member's updated permutation cache."""
    bs = cfg.batch_size
    assert bs is not None
    c = cfg.chunk
    steps = t0 + jnp.arange(c)
    if cfg.sampling == "replacement":
        keys = jax.vmap(lambda t: jr.fold_in(member["key"], t))(steps)
        return jax.vmap(lambda k: jr.randint(k, (bs,), 0, n, dtype=jnp.int32))(keys), member
    spe = cfg.steps_per_epoch(n)
    e0 = t0 // spe
    e_last = (t0 + c - 1) // spe
    # `perm` holds the permutation of the last epoch the previous chunk touched: a function of
    # t0 alone, so the test below is the same for every member (a real branch under vmap)
    cached, cached_epoch = member["perm"], jnp.where(t0 > 0, (t0 - 1) // spe, -1)
    if cfg.epoch_rows <= 2:
        # large epochs (the case that matters for speed): draw only what the chunk needs
        rows = []
        for r in range(cfg.epoch_rows):
            e = e0 + r
            need = (e <= e_last) & (e != cached_epoch)
            rows.append(
                lax.cond(
                    need,
                    lambda e=e: device_epoch_permutation(member["key"], e, n, width),
                    lambda: cached,
                )
            )
        perms = jnp.stack(rows)
    else:
        # a chunk spans many small epochs: one batched draw (one sort) for all of them, which
        # costs less than the chunk's steps and compiles in a fraction of a branch per row
        epochs = e0 + jnp.arange(cfg.epoch_rows)
        perms = jax.vmap(lambda e: device_epoch_permutation(member["key"], e, n, width))(epochs)
    perms = jnp.concatenate([perms, jnp.zeros((perms.shape[0], bs), jnp.int32)], axis=1)
    row, slot = steps // spe - e0, steps % spe
    idx = jax.vmap(lambda r, s: lax.dynamic_slice(perms[r], (s * bs,), (bs,)))(row, slot)
    last = jnp.clip(e_last - e0, 0, cfg.epoch_rows - 1)
    return idx, dict(member, perm=perms[last, :width])


# --- the program -----------------------------------------------------------------------------


SCALARS = ("t0", "max_chunks", "end", "n", "n_iter_no_change", "eval_every", "patience")
"""The program's run-time integers, passed as one int32 vector in this order (one transfer a
call, not seven)."""


def scalars(**values: int) -> np.ndarray:
    """The `SCALARS` vector from keyword values."""
    return np.asarray([values[name] for name in SCALARS], np.int32)


def _program(cfg: Config, state: dict, data, val, idx, sc_vector):
    """One call: up to `sc["max_chunks"]` chunks from step `sc["t0"]` (`sc`: the `SCALARS`).
    See the module docstring."""
    sc = {name: sc_vector[i] for i, name in enumerate(SCALARS)}

    def mmap(f, in_axes: Any = 0):
        """`jax.vmap` over the members of an ensemble; `f` itself for one model."""
        return jax.vmap(f, in_axes=in_axes) if cfg.ensemble else f

    c_len = cfg.chunk
    s_len = cfg.steps_per_call
    end, n = sc["end"], sc["n"]
    ldt = loss_dtype(state["params"])
    nan = jnp.asarray(jnp.nan, ldt)
    bs = cfg.batch_size
    width = data[0].shape[0]

    def batch_for(ids, t):
        """The batch of step `t` from indices `ids` (None: full batch)."""
        if ids is None:
            return data
        x, y, w = _take(data, ids)
        if cfg.sampling == "epoch" and not cfg.drop_last:
            # the epoch's last, smaller batch: a full-size batch whose extra slots weigh 0
            j = t % cfg.steps_per_epoch(n)
            mask = (j * bs + jnp.arange(bs)) < n
            w = mask.astype(x.dtype) if w is None else w * mask.astype(w.dtype)
        return x, y, w

    def member_step(m, ids, t, in_range):
        m = unpack(m)
        objective = objective_of(cfg, m)
        params, opt = m["params"], m["opt"]
        if ids is None or cfg.weighted or cfg.sampling == "replacement" or cfg.drop_last:
            batch = batch_for(ids, t)
            out = cfg.solver.step(objective, params, opt, _constrain(cfg, batch))
            weight = jnp.sum(batch[2]) if batch[2] is not None else batch[0].shape[0]
        else:  # a callable loss cannot be weighted: a second body for the epoch's last batch
            assert bs is not None  # mini-batches (ids is not None)
            last = cfg.n_floor % bs  # a callable loss trains on exactly N rows: N is static

            def partial():
                sub = _take(data, ids[:last])  # the epoch's last batch holds `last` samples
                return cfg.solver.step(objective, params, opt, _constrain(cfg, sub))

            def full():
                return cfg.solver.step(objective, params, opt, _constrain(cfg, _take(data, ids)))

            is_last = t % cfg.steps_per_epoch(n) == cfg.steps_per_epoch(n) - 1
            out = lax.cond(is_last, partial, full) if last else full()
            weight = jnp.where(is_last, last, bs) if last else bs
        new_params, new_opt, loss = out[:3]
        converged = jnp.asarray(out[3], bool) if len(out) > 3 else jnp.asarray(False)
        loss = jnp.asarray(loss).astype(ldt)
        active = (m["status"] == RUNNING) & in_range
        finite = jnp.isfinite(loss)
        plateau = {}
        if not cfg.solver_test:
            # scikit-learn's rule: the epoch's training loss (the mean of its batch losses,
            # weighted by each batch's sample weight) has not beaten the best epoch's by `tol`
            # for more than `n_iter_no_change` epochs (full batch: one step is an epoch)
            spe = 1 if bs is None else cfg.steps_per_epoch(n)
            use = active & finite
            weight = jnp.asarray(weight, ldt)
            total = m["epoch_sum"] + jnp.where(use, loss * weight, 0)
            wsum = m["epoch_weight"] + jnp.where(use, weight, 0)
            epoch_end = use & ((t + 1) % spe == 0)
            mean = total / jnp.where(wsum > 0, wsum, 1)
            tol = m["tol"]
            stale = jnp.where(mean > m["best_epoch"] - tol, m["stale"] + 1, 0)
            stale = jnp.where(epoch_end, stale, m["stale"])
            converged = epoch_end & (tol > 0) & (stale > sc["n_iter_no_change"])
            plateau = {
                "epoch_sum": jnp.where(epoch_end, 0, total),
                "epoch_weight": jnp.where(epoch_end, 0, wsum),
                "best_epoch": jnp.where(
                    epoch_end, jnp.minimum(mean, m["best_epoch"]), m["best_epoch"]
                ),
                "stale": stale,
            }
        first = jnp.where(jnp.isnan(m["first_loss"]), loss, m["first_loss"])
        limit = DIVERGENCE_FACTOR * jnp.maximum(m["min_loss"], 1e-3 * jnp.abs(first))
        # full batch only: mini-batch losses legitimately vary by orders of magnitude
        diverged = active & finite & (loss > limit) & (bs is None)
        ok = active & finite & ~diverged
        bad = active & ~finite
        done = ok & converged
        status = jnp.where(done, CONVERGED, m["status"])
        status = jnp.where(bad, NON_FINITE, jnp.where(diverged, DIVERGED, status))
        m = dict(
            m,
            good=_where(ok, params, m["good"]),
            good_loss=jnp.where(ok, loss, m["good_loss"]),
            params=_where(ok, new_params, params),
            # the optimiser state needs no guard: a stopped member never steps again
            opt=new_opt,
            status=status,
            stop_step=jnp.where(bad | diverged, t, jnp.where(done, t + 1, m["stop_step"])),
            min_loss=jnp.where(ok, jnp.minimum(m["min_loss"], loss), m["min_loss"]),
            first_loss=jnp.where(active, first, m["first_loss"]),
            **plateau,
        )
        return pack(m), jnp.where(active & ~diverged, loss, nan), ok

    def member_val_loss(m):
        vx, vy, vw = val
        return objective_of(cfg, m).data_loss(m["params"], (vx, vy, vw)).astype(ldt)

    def member_eval(m, ok, v, t):
        """Bookkeeping after a validation loss `v` (NaN where none was evaluated)."""
        m = unpack(m)
        ok = ok & ~jnp.isnan(v)
        improved = ok & (v < m["best_val"])
        since = jnp.where(ok, jnp.where(improved, 0, m["since"] + 1), m["since"])
        stop = ok & (sc["patience"] > 0) & (since >= sc["patience"]) & (m["status"] == RUNNING)
        m = dict(
            m,
            best=_where(improved, m["params"], m["best"]),
            best_val=jnp.where(improved, v, m["best_val"]),
            best_step=jnp.where(improved, t + 1, m["best_step"]),
            since=since,
            status=jnp.where(stop, EARLY_STOPPING, m["status"]),
            stop_step=jnp.where(stop, t + 1, m["stop_step"]),
        )
        return pack(m), jnp.where(ok, v, nan)

    def step(carry, xs):
        members, t0 = carry
        i, ids = xs
        t = t0 + i
        in_range = t < end
        in_axes = (0, None if ids is None else 0, None, None)
        members, loss, ok = mmap(member_step, in_axes)(members, ids, t, in_range)
        if not cfg.has_val:
            return (members, t0), (loss,)
        eval_now = in_range & (((t + 1) % sc["eval_every"] == 0) | (t + 1 == end))
        # only the validation loss under the branch (a forward pass): the bookkeeping outside
        # it, so the branch neither carries nor copies the members' state
        v = lax.cond(
            eval_now,
            lambda ms: mmap(member_val_loss)(ms),
            lambda ms: jnp.full_like(loss, jnp.nan),
            members,
        )
        members, v = mmap(member_eval, (0, 0, 0, None))(members, ok, v, t)
        return (members, t0), (loss, v)

    def chunk_indices(members, c, t0):
        """The chunk's indices, step-major: `(chunk, batch)` or `(chunk, K, batch)`."""
        if bs is None:
            return None, members
        if cfg.device_sampling:
            ids, members = mmap(lambda m: _device_chunk_indices(cfg, m, t0, n, width))(members)
            return (jnp.swapaxes(ids, 0, 1) if cfg.ensemble else ids), members
        return lax.dynamic_slice_in_dim(idx, c * c_len, c_len, axis=0), members

    def chunk(carry):
        c, t0, members, bufs = carry
        ids, members = chunk_indices(members, c, t0)
        (members, _), outs = lax.scan(
            step, (members, t0), (jnp.arange(c_len, dtype=jnp.int32), ids), unroll=cfg.unroll
        )
        bufs = tuple(
            lax.dynamic_update_slice_in_dim(buf, jnp.moveaxis(o, 0, -1), c * c_len, axis=-1)
            for buf, o in zip(bufs, outs, strict=True)
        )
        return c + 1, t0 + c_len, members, bufs

    def running(members):
        return jnp.any(field(members, "status") == RUNNING)

    def cond(carry):
        c, t0, members, _ = carry
        return (c < sc["max_chunks"]) & (t0 < end) & running(members)

    k_shape = field(state, "status").shape  # () or (K,)
    bufs = (jnp.full((*k_shape, s_len), jnp.nan, ldt),)
    if cfg.has_val:
        bufs = (*bufs, jnp.full((*k_shape, s_len), jnp.nan, ldt))
    carry = (jnp.int32(0), sc["t0"], state, bufs)
    _, t_end, state, bufs = lax.while_loop(cond, chunk, carry)

    # --- what each member would return now, and its final loss once the fit is over
    def member_result(m):
        m = unpack(m)
        use_good = (m["status"] == NON_FINITE) | (m["status"] == DIVERGED)
        use_best = (
            (m["best_step"] >= 0) & (sc["patience"] > 0) & ~use_good
            if cfg.has_val
            else jnp.asarray(False)
        )
        result = _where(use_good, m["good"], m["params"])
        if cfg.has_val:
            result = _where(use_best, m["best"], result)
        return result, use_good, use_best

    result, use_good, use_best = mmap(member_result)(state)
    as_tree = (lambda r: r) if cfg.param_spec is None else mmap(unraveler(cfg.param_spec))
    finished = (field(state, "status") != RUNNING) | (t_end >= end)

    def final(result, state, use_good, use_best):
        def member_final(m, r, use_good, use_best):
            m = unpack(m)
            value = objective_of(cfg, m)(r, data).astype(ldt)
            # a last update that produced a non-finite model: return the last finite one
            blew_up = ~jnp.isfinite(value) & ~use_good & ~use_best
            steps_run = jnp.where(m["status"] == RUNNING, jnp.minimum(t_end, end), m["stop_step"])
            m = dict(
                m,
                status=jnp.where(blew_up, NON_FINITE, m["status"]),
                stop_step=jnp.where(blew_up, steps_run, m["stop_step"]),
            )
            r = _where(blew_up, m["good"], r)
            return jnp.where(blew_up, m["good_loss"], value), r, pack(m)

        return mmap(member_final)(state, result, use_good, use_best)

    def not_yet(result, state, use_good, use_best):
        del use_good, use_best
        return jnp.full(k_shape, jnp.nan, ldt), result, state

    final_loss, result, state = lax.cond(
        jnp.all(finished), final, not_yet, result, state, use_good, use_best
    )
    # the host reads `t` and each member's status, stop and best steps: one vector
    ints = [field(state, name).reshape(-1) for name in ("status", "stop_step", "best_step")]
    out = {
        "ints": jnp.concatenate([t_end.reshape(1), *ints]),
        "loss": bufs[0],
        "val": bufs[1] if cfg.has_val else None,
        "result": as_tree(result),
        "final_loss": final_loss,
    }
    return state, out


# --- batch indices drawn on the host ---------------------------------------------------------


def epoch_permutation(key_data: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """The permutation of `range(n)` for `epoch`: a NumPy PCG64 stream seeded by the fit's key
    and the epoch, so it does not depend on how the steps are cut into calls."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(epoch)])
    return np.random.Generator(np.random.PCG64(seed)).permutation(n).astype(np.int32)


REPLACEMENT_BLOCK = 256
"""Steps whose replacement-sampling indices come from one seeded NumPy stream."""


def replacement_block(key_data: np.ndarray, block: int, n: int, batch_size: int) -> np.ndarray:
    """Indices, shape `(REPLACEMENT_BLOCK, batch_size)`, drawn uniformly with replacement from
    `range(n)` for steps `block * REPLACEMENT_BLOCK ...`: a NumPy PCG64 stream seeded by the fit's
    key and the block, so it does not depend on how the steps are cut into calls."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(block), 1])
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.integers(0, n, size=(REPLACEMENT_BLOCK, batch_size), dtype=np.int32)


def host_indices(cfg: Config, key_data: np.ndarray, n: int, start: int, count: int) -> np.ndarray:
    """The program's index input for steps `start .. start + count - 1`: shape
    `(steps_per_call, batch_size)`, or `(steps_per_call, K, batch_size)` for an ensemble
    (`key_data` then has a leading member axis). Rows past `count` are zeros (never used)."""
    bs = cfg.batch_size
    assert bs is not None
    members = key_data if cfg.ensemble else key_data[None]
    out = np.zeros((cfg.steps_per_call, members.shape[0], bs), np.int32)
    if count > 0 and cfg.sampling == "replacement":
        b0, b1 = start // REPLACEMENT_BLOCK, (start + count - 1) // REPLACEMENT_BLOCK
        off = start - b0 * REPLACEMENT_BLOCK
        for m, kd in enumerate(members):
            blocks = [replacement_block(kd, b, n, bs) for b in range(b0, b1 + 1)]
            out[:count, m] = np.concatenate(blocks)[off : off + count]
    elif count > 0:
        spe = cfg.steps_per_epoch(n)
        e0, e1 = start // spe, (start + count - 1) // spe
        for m, kd in enumerate(members):
            rows = []
            for e in range(e0, e1 + 1):
                perm = epoch_permutation(kd, e, n)[: spe * bs]
                if perm.shape[0] < spe * bs:  # the last batch: pad with indices masked out
                    perm = np.concatenate([perm, perm[: spe * bs - perm.shape[0]]])
                rows.append(perm.reshape(spe, bs))
            steps = np.concatenate(rows)
            off = start - e0 * spe
            out[:count, m] = steps[off : off + count]
    return out if cfg.ensemble else out[:, 0]


# --- compiling and caching -------------------------------------------------------------------


_jitted_program = jax.jit(_program, static_argnums=0)

_CACHE_SIZE = 32
_cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_chunk_seconds: dict[Any, float] = {}
_cache_lock = threading.Lock()
compile_count = 0
"""How many training programs this process has compiled (for tests and benchmarks)."""


def precision_context(precision: str | None):
    """`jax.default_matmul_precision(precision)`, or nothing for `None`."""
    if precision is None:
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)


def program_key(cfg: Config, args) -> Any:
    leaves, treedef = jax.tree.flatten(args)
    return (cfg, treedef, tuple(signature(leaf) for leaf in leaves))


def compiled_program(cfg: Config, *args) -> tuple[Any, float]:
    """The compiled program for `cfg` and these arguments, and the seconds spent compiling."""
    global compile_count
    key = program_key(cfg, args)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit, 0.0
    t0 = time.perf_counter()
    with precision_context(cfg.precision):
        lowered = _jitted_program.lower(cfg, *args)
    compiled = None
    options: dict[str, Any] | None = None
    if cfg.fast_compile:
        options = FAST_COMPILE_OPTIONS
    elif cfg.cpu_options:
        options = CPU_COMPILE_OPTIONS
    if options:
        try:
            compiled = lowered.compile(options)
        except Exception:  # an option this XLA does not know: its defaults
            compiled = None
    if compiled is None:
        compiled = lowered.compile()
    seconds = time.perf_counter() - t0
    with _cache_lock:
        compile_count += 1
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            old, _ = _cache.popitem(last=False)
            _chunk_seconds.pop(old, None)
    return compiled, seconds


def record_chunk_seconds(cfg: Config, args, seconds: float) -> None:
    """Remember how long one chunk of this program takes (to size later calls)."""
    key = program_key(cfg, args)
    with _cache_lock:
        old = _chunk_seconds.get(key)
        _chunk_seconds[key] = seconds if old is None else 0.5 * (old + seconds)


def chunk_seconds(cfg: Config, args) -> float | None:
    with _cache_lock:
        return _chunk_seconds.get(program_key(cfg, args))


def clear_cache() -> None:
    """Forget every compiled training program of this process."""
    with _cache_lock:
        _cache.clear()
        _chunk_seconds.clear()


def lowered_text(cfg: Config, *args) -> str:
    """The program's StableHLO text (for tests that inspect its loops)."""
    with precision_context(cfg.precision):
        return _jitted_program.lower(cfg, *args).as_text()


def is_array_tree(tree: PyTree) -> bool:
    return all(eqx.is_array(leaf) for leaf in jax.tree.leaves(tree))
