"""The program's shape in time: steps per scan (`chunk`), chunks per call, the unroll factor,
and the cost model that sizes them."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..solvers._solver import Solver
from ._cache_key import identity_memo

MAX_STEPS_PER_CALL = 16384
"""Steps one program call can run (its loss buffer's length); the host also returns between
calls after about `CALL_SECONDS` (see `_driver`)."""

HOST_INDEX_SECONDS = 4.0
"""A call's host-drawn batch indices (a program input) cover about this many seconds of steps
by the step's estimate (which errs long), and at most `HOST_INDICES_MAX` indices: a short fit
of large steps draws, zeroes and transfers a few steps' indices, not thousands (16 MB for
batches of 1024). Calls last about `CALL_SECONDS` anyway (see `_driver`)."""

HOST_INDICES_MAX = 1 << 20
"""The most host-drawn indices one call takes (4 MB of int32)."""

FAST_COMPILE_MAX_STEP = 1e-4
"""CPU programs whose step is estimated at most this many seconds compile with
`FAST_COMPILE_OPTIONS` (compiling dominates their cost); other CPU programs with
`CPU_COMPILE_OPTIONS` (both in `_program_cache`). Least-squares solvers take neither: under
them a member of an ensemble and its own fit round their linear algebra differently, and
Levenberg-Marquardt's accept/reject decisions amplify that into different trajectories."""


RING_MIN_WEIGHTS = 1 << 18
"""Programs that train at least this many weights (all members together) and whose step is not
small (`FAST_COMPILE_MAX_STEP`) keep the last finite parameters without a copy a step
(`Schedule.ring`, see `_program.member_step`): two steps a scan iteration (`unroll` 2, chunks
of at least 2 steps). The second step costs about a quarter more compile time (0.3 s at
784-256-256-10) and saves three passes over the weights a step (0.16 ms there): it pays from
about 2,000 steps at this size, and sooner for larger networks."""


SMALL_CALL = os.environ.get("EQX_FFN_ONE_KERNEL", "1") != "0"
"""Small CPU programs (`FAST_COMPILE_MAX_STEP`) compile each chunk's scan into one kernel
(`Config.small_call`, see `_one_kernel`). The environment variable `EQX_FFN_ONE_KERNEL=0`
turns it off for the process: XLA's one-kernel emitter aborts the process (a failed CHECK,
not an exception) on some programs, and the gate in `_one_kernel` admits only the steps the
suite exercises."""


@identity_memo
def n_weights(model: Any) -> int:
    """Trainable scalars of a model (or of a shape-only template)."""
    total = 0
    for leaf in jax.tree.leaves(model):
        if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)) and jnp.issubdtype(
            leaf.dtype, jnp.inexact
        ):
            total += int(np.prod(leaf.shape))
    return total


def step_seconds(solver: Solver, rows: int, weights: int, k: int, cpu: bool) -> float:
    """A step's estimated cost: its flops at the device's throughput, but at least the device's
    per-step overhead for that kind of step (line searches and the damped normal equations run
    many small kernels; see benchmarks/BENCHMARKS.md). The estimate sizes the chunk, whose
    masked steps past the requested end still run: an estimate too low makes short fits pay for
    a long chunk."""
    w = max(weights, 1)
    if solver.least_squares:  # Jacobian, J^T J, three Choleskys, four trial points
        flops = k * (2.0 * rows * w * w + w**3 + 30.0 * rows * w)
        floor = 2e-4 if cpu else 4e-4
    elif solver.line_search:
        flops = 36.0 * rows * w * k
        floor = 8e-5 if cpu else 4e-4
    else:
        flops = 6.0 * rows * w * k
        floor = 3e-6 if cpu else 8e-6
    throughput = 2e10 if cpu else 2e13
    return max(floor, flops / throughput)


class Schedule(NamedTuple):
    """How a fit's steps are cut: `chunk` steps a scan, at most `max_chunks` chunks a call."""

    step_seconds: float
    chunk: int
    unroll: int
    max_chunks: int
    ring: bool = False  # the step's guard rotates two buffers (`RING_MIN_WEIGHTS`)


def schedule(
    solver: Solver,
    *,
    rows: int,
    weights: int,
    k: int,
    platform: str,
    host_indices: int,
    has_val: bool,
    unroll: int | None = None,
) -> Schedule:
    """The chunk length, unroll factor and chunks per call of a program.

    **Arguments:** `rows` a step reads (the batch size, or the padded N), `weights` trained
    scalars, `k` members, `platform` the device's, `host_indices` indices a step reads from the
    host (0 when they are drawn on the device or there are none), `has_val`, and `unroll` to
    force the unroll factor (None: 8 on accelerators when a chunk holds at least 16 steps,
    else 2 for a `ring` guard and 1 without; a forced odd factor turns the ring off).
    """
    cpu = platform == "cpu"
    seconds = step_seconds(solver, rows, weights, k, cpu)
    # a chunk's steps past the requested end still run (masked), so a short chunk costs a
    # short fit little; on a CPU the while loop over chunks costs next to nothing a chunk, on
    # a GPU each chunk is a host round trip
    chunk_target = 2.5e-4 if cpu else 2e-3
    chunk = 1
    while chunk < 256 and (2 * chunk) * seconds <= chunk_target:
        chunk *= 2
    ring = weights * k >= RING_MIN_WEIGHTS and not (cpu and seconds <= FAST_COMPILE_MAX_STEP)
    if ring:  # two steps an iteration: a chunk holds an even number of steps
        chunk = max(chunk, 2)
    if unroll is None:
        unroll = 8 if (not cpu and chunk >= 16) else (2 if ring else 1)
    else:
        unroll = max(1, min(int(unroll), chunk))
    ring = ring and unroll % 2 == 0
    per_step_floats = k * (2 if has_val else 1)
    cap = (1 << 21) // max(per_step_floats, 1)
    if host_indices:
        timed = 1 << max(0, int(np.ceil(np.log2(max(HOST_INDEX_SECONDS / seconds, 1.0)))))
        cap = min(cap, max(chunk, min(HOST_INDICES_MAX // host_indices, timed)))
    max_chunks = max(1, min(MAX_STEPS_PER_CALL, cap) // chunk)
    return Schedule(seconds, chunk, unroll, max_chunks, ring)
