"""The solver interface of the training engine: `Solver`, and the one shape of its step
(`SolverStep`).

A solver turns `objective(params, batch) -> scalar` into steps. The engine only calls `init` and
`step`, so any optimizer can plug in by subclassing `Solver`: optax transformations
(`solvers/_optax.py`), the least-squares solvers (`solvers/_least_squares.py`), a user's own.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp

from ..training._cache_key import value_key

PyTree = Any


class SolverStep(NamedTuple):
    """What `Solver.step` returns: the new parameters and solver state, `loss =
    objective(params, batch)` BEFORE the update (as the lecture records it), and `converged`, a
    boolean scalar: `True` when the solver's own test against `objective.tol` says the fit has
    converged (read only when `convergence_test` is set)."""

    params: PyTree
    state: PyTree
    loss: Any  # a scalar array
    converged: Any


def as_step(out: tuple) -> SolverStep:
    """`out` as a `SolverStep`. A 3-tuple `(params, state, loss)` (the shape a `Solver` written
    against the first version of this interface returns) gets `converged=False`."""
    if len(out) == 3:
        return SolverStep(out[0], out[1], out[2], jnp.asarray(False))
    return SolverStep(*out)


class Solver(eqx.Module):
    """Interface: `init(params) -> state`, `step(objective, params, state, batch) -> SolverStep`.

    `objective` is an `eqx_ffn.Objective`: `objective(params, batch)` is the loss plus penalty;
    `objective.tol`, `objective.l1`, `objective.l2` are traced scalars (changing them never
    recompiles); least-squares solvers also use `objective.residuals`,
    `objective.data_residuals` and `objective.penalty_mask`. `batch = (x, y, w)`, with `w` the
    per-sample weights (0 on padding rows).

    What the engine reads of a solver, each declared once here with its default (a subclass
    overrides it as a class attribute, a field or a property):

    - `full_batch_only`: refused with mini-batches.
    - `least_squares`: needs `loss="mse"` and no `l1` (Levenberg-Marquardt, Gauss-Newton).
    - `convergence_test`: `True`: its `step` reports `converged` itself; `False`: the engine
      stops when the epoch's training loss has not beaten the best by `tol` for more than
      `n_iter_no_change` epochs, as scikit-learn's MLP does.
    - `line_search`: each step runs a line search (several evaluations; the cost model and the
      default placement read it).
    - `flat_params`: the solver may work on the parameters raveled into ONE vector (an
      elementwise optimizer: then a step needs a few large kernels, not a few per array).
    - `default_tol`: the `tol` a fit uses when given `tol=None` (0: never stop early).
    """

    full_batch_only = False
    least_squares = False
    convergence_test = False
    line_search = False
    flat_params = False
    default_tol = 0.0

    def program_key(self) -> Any:
        """What a training program depends on (compared by value): the solver itself."""
        return value_key(self)

    def init_key(self) -> Any:
        """What the initial-state program depends on: the solver itself."""
        return value_key(self)

    @abc.abstractmethod
    def init(self, params: PyTree) -> PyTree: ...

    @abc.abstractmethod
    def step(self, objective: Any, params: PyTree, state: PyTree, batch: Any) -> SolverStep: ...
