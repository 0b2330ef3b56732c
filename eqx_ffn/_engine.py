"""The compiled training loop shared by `fit` and `fit_ensemble`.

One XLA program runs up to `chunk` steps (`lax.fori_loop` with a dynamic trip count, so the last,
shorter chunk reuses the same program). The host is visited once per chunk only: for the progress
bar, validation bookkeeping, early stopping and the non-finite guard. Programs are compiled
ahead of time and kept in a small cache keyed on the static settings and the argument shapes, so
a second `fit` with the same shapes and settings compiles nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._losses import Loss, weight_penalty
from ._solvers import Solver

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything static about a training program (hashable: it keys the program cache)."""

    solver: Solver
    loss: Loss
    static: PyTree  # the model's non-array part
    n: int  # training samples
    batch_size: int | None  # None: full batch
    sampling: str  # "epoch" or "replacement"
    drop_last: bool
    chunk: int  # steps per program call (the loss buffer's length)
    weighted: bool
    has_val: bool
    use_l1: bool
    use_l2: bool
    ensemble: bool  # state has a leading member axis (vmapped program)
    batch_sharding: Any = None  # a NamedSharding for data-parallel batches, or None

    @property
    def steps_per_epoch(self) -> int:
        assert self.batch_size is not None
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    @property
    def perm_rows(self) -> int:
        """Rows of the `perms` input: with epoch sampling the most epochs that `chunk`
        consecutive steps can touch; with replacement sampling one row a step."""
        if self.batch_size is None:
            return 0
        if self.sampling == "replacement":
            return self.chunk
        spe = self.steps_per_epoch
        return (self.chunk + spe - 2) // spe + 1

    @property
    def perm_width(self) -> int:
        """Columns of `perms`. Epoch sampling: N, padded to whole batches when the last batch is
        smaller (the padding repeats the epoch's first indices and is masked out or never
        read). Replacement sampling: the batch size."""
        if self.batch_size is None:
            return 0
        if self.sampling == "replacement":
            return self.batch_size
        return self.n if self.drop_last else self.steps_per_epoch * self.batch_size

    @property
    def last_batch(self) -> int:
        """Size of an epoch's last batch (== batch_size when it divides N or with drop_last)."""
        assert self.batch_size is not None
        rem = self.n % self.batch_size
        return self.batch_size if (rem == 0 or self.drop_last) else rem


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


class Objective:
    """What a `Solver` minimises: `objective(params, (x, y, w)) -> scalar`, the data loss plus
    the weight penalty; for least-squares solvers also `objective.residuals(params, batch)`."""

    def __init__(self, cfg: Config, frozen, l1, l2):
        self.cfg, self.frozen, self.l1, self.l2 = cfg, frozen, l1, l2

    def model(self, params):
        return eqx.combine(params, self.frozen, self.cfg.static)

    def __call__(self, params, batch):
        cfg = self.cfg
        model = self.model(params)
        x, y, w = batch
        value = cfg.loss(model, x, y, w)
        if cfg.use_l1 or cfg.use_l2:
            value = value + weight_penalty(
                model, self.l1, self.l2, use_l1=cfg.use_l1, use_l2=cfg.use_l2
            )
        return value

    def residuals(self, params, batch) -> jax.Array:
        """A vector `r` with `sum(r**2) == objective(params, batch)`, for `loss="mse"` (with
        sample weights and an L2 penalty, not L1): the interface for Gauss-Newton and
        Levenberg-Marquardt solvers."""
        cfg = self.cfg
        if cfg.loss.name != "mse" or cfg.use_l1:
            raise ValueError("Least-squares solvers need loss='mse' and no l1 penalty.")
        model = self.model(params)
        x, y, w = batch
        r = jax.vmap(model)(x) - y  # (B, out)
        if w is None:
            r = r / jnp.sqrt(float(r.shape[0] * r.shape[1]))
        else:
            r = r * jnp.sqrt(w / (jnp.sum(w) * r.shape[1]))[:, None]
        parts = [r.reshape(-1)]
        if cfg.use_l2:
            from ._ffn import Dense

            for layer in jax.tree.leaves(model, is_leaf=lambda n: isinstance(n, Dense)):
                if isinstance(layer, Dense):
                    parts.append(jnp.sqrt(self.l2) * layer.weight.reshape(-1))
        return jnp.concatenate(parts)


def objective_fn(cfg: Config, frozen, l1, l2) -> Objective:
    """The `Objective` of a training program."""
    return Objective(cfg, frozen, l1, l2)


def _member_chunk(cfg: Config, state, perms, frozen, data, val, start, n, want_end, epoch0):
    """Run `n <= cfg.chunk` steps for ONE member, from absolute step `start`.

    With epoch sampling, `perms[e - epoch0]` is the permutation of epoch `e` (drawn on the host:
    XLA's sort-based `jax.random.permutation` costs more than the steps of an epoch on a CPU);
    with replacement sampling `perms[i]` holds the indices of step `start + i` (also drawn on the
    host: a threefry draw in every step costs as much as the step itself on a CPU).
    """
    objective = objective_fn(cfg, frozen, state["l1"], state["l2"])
    solver = cfg.solver

    def step_on(batch, params, opt):
        return solver.step(objective, params, opt, _constrain(cfg, batch))

    def body(i, carry):
        params, opt, good, ok, losses = carry
        t = start + i
        if cfg.batch_size is None:
            new_params, new_opt, loss = step_on(data, params, opt)
        elif cfg.sampling == "replacement":
            idx = lax.dynamic_index_in_dim(perms, i, keepdims=False)  # drawn on the host
            new_params, new_opt, loss = step_on(_take(data, idx), params, opt)
        else:
            spe = cfg.steps_per_epoch
            row, j = t // spe - epoch0, t % spe
            bs = cfg.batch_size
            idx = lax.dynamic_slice(perms, (row, j * bs), (1, bs))[0]  # int32 indices
            if cfg.last_batch == bs:
                new_params, new_opt, loss = step_on(_take(data, idx), params, opt)
            elif cfg.loss.weightable:
                # The epoch's last, smaller batch is used, not dropped: a full-size batch whose
                # padding (slots past N) has weight 0, so one step body serves every batch.
                x, y, w = _take(data, idx)
                mask = (j * bs + jnp.arange(bs) < cfg.n).astype(x.dtype)
                batch = (x, y, mask if w is None else w * mask)
                new_params, new_opt, loss = step_on(batch, params, opt)
            else:  # a callable loss cannot be weighted: a second step body for the last batch

                def partial():
                    last = jnp.int32((spe - 1) * bs)
                    idx = lax.dynamic_slice(perms, (row, last), (1, cfg.last_batch))[0]
                    return step_on(_take(data, idx), params, opt)

                def full():
                    return step_on(_take(data, idx), params, opt)

                new_params, new_opt, loss = lax.cond(j == spe - 1, partial, full)
        finite = ok & jnp.isfinite(loss)
        good = _where(finite, params, good)
        params = _where(finite, new_params, params)
        # The optimiser state needs no guard: once `ok` is False the member's params stay frozen
        # and it is returned from `good` (or the host's best), never from `opt`.
        opt = new_opt
        losses = losses.at[i].set(loss)
        return params, opt, good, finite, losses

    losses = jnp.full((cfg.chunk,), jnp.nan, dtype=_loss_dtype(state["params"]))
    carry = (state["params"], state["opt"], state["good"], state["ok"], losses)
    params, opt, good, ok, losses = lax.fori_loop(0, n, body, carry)
    model_params = params

    def full_loss(p, x, y, w):
        return objective(p, (x, y, w))

    nan = jnp.full((), jnp.nan, losses.dtype)
    end_loss = lax.cond(
        want_end, lambda: full_loss(model_params, *data).astype(losses.dtype), lambda: nan
    )
    if cfg.has_val:
        vx, vy = val
        model = eqx.combine(model_params, frozen, cfg.static)
        val_loss = cfg.loss(model, vx, vy, None).astype(losses.dtype)
    else:
        val_loss = nan
    new_state = dict(state, params=params, opt=opt, good=good, ok=ok)
    return new_state, losses, val_loss, end_loss


def _loss_dtype(params) -> jnp.dtype:
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.promote_types(leaf.dtype, jnp.float32)
    return jnp.zeros(()).dtype


def _program(cfg: Config, state, perms, frozen, data, val, start, n, want_end, epoch0):
    args = (cfg, state, perms, frozen, data, val, start, n, want_end, epoch0)
    if cfg.ensemble:
        axes = (None, 0, 0, None, None, None, None, None, None, None)
        return jax.vmap(_member_chunk, in_axes=axes)(*args)
    return _member_chunk(*args)


def epoch_permutation(key_data: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """The permutation of `range(n)` for `epoch`: a NumPy PCG64 stream seeded by the fit's key
    and the epoch, so it does not depend on how the steps are cut into chunks."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(epoch)])
    return np.random.Generator(np.random.PCG64(seed)).permutation(n).astype(np.int32)


REPLACEMENT_BLOCK = 256
"""Steps whose replacement-sampling indices come from one seeded NumPy stream."""


def replacement_block(key_data: np.ndarray, block: int, n: int, batch_size: int) -> np.ndarray:
    """Indices, shape `(REPLACEMENT_BLOCK, batch_size)`, drawn uniformly with replacement from
    `range(n)` for steps `block * REPLACEMENT_BLOCK ...`: a NumPy PCG64 stream seeded by the fit's
    key and the block, so it does not depend on how the steps are cut into chunks."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(block), 1])
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.integers(0, n, size=(REPLACEMENT_BLOCK, batch_size), dtype=np.int32)


def batch_indices(cfg: Config, key_data: np.ndarray, start: int, n: int) -> tuple[np.ndarray, int]:
    """The program's `perms` input for steps `start .. start + n - 1`, and its `epoch0`.

    `perms` has shape `(perm_rows, perm_width)`, or `(K, perm_rows, perm_width)` for an ensemble
    (`key_data` then has a leading member axis): one permutation a row with epoch sampling (row
    0 is epoch `epoch0`), one step's indices a row with replacement sampling (`epoch0` is 0).
    """
    rows = cfg.perm_rows
    members = key_data if cfg.ensemble else key_data[None]
    out = np.zeros((members.shape[0], rows, cfg.perm_width), np.int32)
    epoch0 = 0
    if rows and cfg.sampling == "replacement":
        assert cfg.batch_size is not None
        b0, b1 = start // REPLACEMENT_BLOCK, (start + n - 1) // REPLACEMENT_BLOCK
        off = start - b0 * REPLACEMENT_BLOCK
        for m, kd in enumerate(members):
            blocks = [replacement_block(kd, b, cfg.n, cfg.batch_size) for b in range(b0, b1 + 1)]
            out[m, :n] = np.concatenate(blocks)[off : off + n]
    elif rows:
        spe = cfg.steps_per_epoch
        epoch0, last = start // spe, (start + n - 1) // spe
        for m, kd in enumerate(members):
            for e in range(epoch0, last + 1):
                perm = epoch_permutation(kd, e, cfg.n)
                out[m, e - epoch0, : cfg.n] = perm
                out[m, e - epoch0, cfg.n :] = perm[: cfg.perm_width - cfg.n]
    return (out if cfg.ensemble else out[0]), epoch0


_jitted_program = jax.jit(_program, static_argnums=0)

_CACHE_SIZE = 32
_cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_cache_lock = threading.Lock()
compile_count = 0
"""How many training programs this process has compiled (for tests and benchmarks)."""


def _signature(leaf) -> Any:
    if isinstance(leaf, jax.Array):
        return (leaf.shape, leaf.dtype, leaf.sharding, getattr(leaf, "weak_type", False))
    if isinstance(leaf, (np.ndarray, np.generic)):
        return (np.ndarray, leaf.shape, leaf.dtype)
    return (type(leaf), leaf)


def compiled_program(cfg: Config, *args) -> tuple[Any, float]:
    """The compiled program for `cfg` and these arguments, and the seconds spent compiling."""
    global compile_count
    leaves, treedef = jax.tree.flatten(args)
    key = (cfg, treedef, tuple(_signature(leaf) for leaf in leaves))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit, 0.0
    t0 = time.perf_counter()
    compiled = _jitted_program.lower(cfg, *args).compile()
    seconds = time.perf_counter() - t0
    with _cache_lock:
        compile_count += 1
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled, seconds


def clear_cache() -> None:
    """Forget every compiled training program of this process."""
    with _cache_lock:
        _cache.clear()
