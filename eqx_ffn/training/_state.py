"""The training state inside the compiled program: one member's `MemberState`, and its start.

A member is one model being trained (an ensemble stacks K of them along a leading axis of every
leaf). Its scalar bookkeeping lives in two small vectors, one float and one int (`floats`,
`ints`), so that one kernel a step updates all of it rather than one kernel per scalar; the
typed views `Floats` and `Ints` name their entries.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..solvers._optax import with_learning_rate
from ..solvers._solver import Solver
from ._flat import ravel_params
from ._objective import loss_dtype

PyTree = Any

RUNNING, EARLY_STOPPING, NON_FINITE, CONVERGED, DIVERGED = 0, 1, 2, 3, 4
"""A member's status inside the program."""


class Floats(NamedTuple):
    """A member's float bookkeeping (scalars, or `(K,)` for an ensemble)."""

    good_loss: Any  # the loss of `good`, the last parameters with a finite loss
    min_loss: Any  # the lowest loss so far (the divergence test)
    first_loss: Any
    epoch_sum: Any  # the plateau rule: this epoch's weighted loss sum and weight
    epoch_weight: Any
    best_epoch: Any  # ... and the best epoch's mean loss
    best_val: Any  # the best validation loss

    @classmethod
    def initial(cls) -> Floats:
        return cls(np.nan, np.inf, np.nan, 0.0, 0.0, np.inf, np.inf)


class Ints(NamedTuple):
    """A member's integer bookkeeping (scalars, or `(K,)` for an ensemble)."""

    status: Any  # RUNNING, EARLY_STOPPING, NON_FINITE, CONVERGED or DIVERGED
    stop_step: Any  # the steps run when it stopped
    stale: Any  # the plateau rule: epochs without enough improvement
    best_step: Any  # the step of `best` (-1: none yet)
    since: Any  # evaluations since the validation loss last improved

    @classmethod
    def initial(cls) -> Ints:
        return cls(RUNNING, 0, 0, -1, 0)


class MemberState(eqx.Module):
    """One member's training state (every leaf with a leading `(K,)` axis in an ensemble).

    `frozen` (fixed arrays such as a `Standardizer`'s statistics), `key` (batches drawn on the
    device), `best` (with validation) and `perm` (epoch sampling on the device) are `None` where
    the fit does not need them, so the program's arguments hold nothing to flatten for them.
    """

    params: PyTree  # the trained arrays (one vector in flat mode)
    opt: PyTree  # the solver's state
    good: PyTree  # the last parameters with a finite loss
    floats: jax.Array  # `Floats`, stacked on the last axis
    ints: jax.Array  # `Ints`, stacked on the last axis (int32)
    l1: jax.Array
    l2: jax.Array
    tol: jax.Array
    frozen: PyTree = None
    key: jax.Array | None = None
    best: PyTree = None
    perm: jax.Array | None = None

    @property
    def f(self) -> Floats:
        return Floats(*(self.floats[..., j] for j in range(len(Floats._fields))))

    @property
    def i(self) -> Ints:
        return Ints(*(self.ints[..., j] for j in range(len(Ints._fields))))

    def update(self, f: Floats | None = None, i: Ints | None = None, **fields: Any) -> MemberState:
        """A copy with `fields` replaced and the bookkeeping `f`/`i` packed back."""
        if f is not None:
            fields["floats"] = jnp.stack(list(f), axis=-1)
        if i is not None:
            fields["ints"] = jnp.stack([jnp.asarray(v, jnp.int32) for v in i], axis=-1)
        return dataclasses.replace(self, **fields)


def member_state(
    solver: Solver, params, frozen, key, l1, l2, tol, lr, has_val, perm_width, flat
) -> MemberState:
    """One member's initial state (traceable: ensembles vmap it)."""
    dtype = loss_dtype(params)
    if flat:
        params = ravel_params(params)
    opt = solver.init(params)
    if lr is not None:
        opt = with_learning_rate(opt, lr)
    return MemberState(
        params=params,
        opt=opt,
        good=params,
        floats=jnp.asarray(list(Floats.initial()), dtype),
        ints=jnp.asarray(list(Ints.initial()), jnp.int32),
        l1=jnp.asarray(l1, dtype),
        l2=jnp.asarray(l2, dtype),
        tol=jnp.asarray(tol, dtype),
        frozen=frozen if jax.tree.leaves(frozen) else None,
        key=key,
        best=params if has_val else None,
        perm=jnp.zeros(perm_width, jnp.int32) if perm_width else None,
    )


class InitConfig(NamedTuple):
    """What is static about the initial-state program (hashable; `solver_key` compares the
    solver by value)."""

    solver: Solver
    solver_key: Any
    has_val: bool
    perm_width: int
    ensemble: bool
    flat: bool

    def __hash__(self) -> int:
        return hash(self[1:])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InitConfig) and self[1:] == other[1:]


def init_states(cfg: InitConfig, params, frozen, key, l1, l2, tol, lr) -> MemberState:
    """The initial state of one model, or of a stacked ensemble (vmapped over members)."""

    def one(p, f, k, a, b, c, r):
        return member_state(cfg.solver, p, f, k, a, b, c, r, cfg.has_val, cfg.perm_width, cfg.flat)

    if cfg.ensemble:
        lr_axis = None if lr is None else 0
        return jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, lr_axis))(
            params, frozen, key, l1, l2, tol, lr
        )
    return one(params, frozen, key, l1, l2, tol, lr)
