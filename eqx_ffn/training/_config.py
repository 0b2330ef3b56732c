"""`Config`: everything static about a training program (the part of its cache key that is not
the shapes of its inputs)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from ..solvers._solver import Solver
from ._cache_key import pytree_key, value_key
from ._losses import Loss

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Everything static about a training program; compared by value (it keys the cache).

    Only what changes the program's shape belongs here: the model's structure, the loss, the
    solver (its `program_key`), the batch size and sampling mode, the chunk length, the compute
    dtype and matmul precision, ... Learning rates, `l1`, `l2`, `tol`, the number of steps, the
    real N and the validation data are run-time inputs.
    """

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
    small_call: bool = False  # its chunk's scan compiled into one kernel (`_program`)
    ring: bool = False  # the step's guard rotates two buffers (`_program.member_step`)
    # (l1, l2): a term that is 0 for every member is left out of the program
    penalty_terms: tuple[bool, bool] = (True, True)
    # callbacks every `snap_chunks` chunks, several to a call: the state at each (0: none)
    snap_chunks: int = 0
    feature_major: bool = False  # an FFN's batch along the minor axis (`model._rows`)

    def __post_init__(self):
        key = (
            self.solver.program_key(),
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
            self.small_call,
            self.ring,
            self.penalty_terms,
            self.snap_chunks,
            self.feature_major,
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
