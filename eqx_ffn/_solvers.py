"""The solver interface of the training engine, and its optax implementation.

A solver turns `objective(params, batch) -> scalar` into steps. The engine only calls `init` and
`step`, so full-batch least-squares solvers (Levenberg-Marquardt, Gauss-Newton) can plug in by
subclassing `Solver` without touching the rest: the objective the engine passes also has
`objective.residuals(params, batch)`, a vector whose squared norm is the objective (for
`loss="mse"`).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import optax

from ._errors import unknown_name

PyTree = Any
Objective = Callable[[PyTree, Any], jax.Array]

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "rmsprop", "lbfgs")
"""Names accepted by `fit(optimizer=...)`; `learning_rate` sets their step size."""


class Solver(eqx.Module):
    """Interface: `init(params) -> state`, `step(objective, params, state, batch)`.

    `step` returns `(new_params, new_state, loss)` or `(new_params, new_state, loss, converged)`:
    `loss = objective(params, batch)` is the value BEFORE the update (as the lecture records it)
    and `converged` a boolean scalar, `True` when the solver's own test against `objective.tol`
    says the fit has converged (the engine then stops with `stop_reason="converged"`).

    `objective` is an `eqx_ffn.Objective`: `objective(params, batch)` is the loss plus penalty;
    `objective.tol`, `objective.l1`, `objective.l2` are traced scalars (changing them never
    recompiles); least-squares solvers also use `objective.residuals`,
    `objective.data_residuals` and `objective.penalty_mask`. `batch = (x, y, w)`, with `w` the
    per-sample weights (0 on padding rows).

    Properties a solver may override: `full_batch_only` (refused with mini-batches),
    `least_squares` (needs `loss="mse"` and no `l1`), `default_tol` (the `tol` a fit uses when
    given `tol=None`; 0 means the solver never declares convergence by itself).
    """

    @property
    def full_batch_only(self) -> bool:
        return False

    @property
    def least_squares(self) -> bool:
        return False

    @property
    def default_tol(self) -> float:
        return 0.0

    @abc.abstractmethod
    def init(self, params: PyTree) -> PyTree: ...

    @abc.abstractmethod
    def step(
        self, objective: Any, params: PyTree, state: PyTree, batch: Any
    ) -> tuple[PyTree, PyTree, jax.Array] | tuple[PyTree, PyTree, jax.Array, jax.Array]: ...


class OptaxSolver(Solver):
    """Any `optax.GradientTransformation` (sgd, adam, schedules, chains, `optax.lbfgs`, ...).

    Transformations that want the loss (line searches) get `value`, `grad` and `value_fn`.
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    reuse_value: bool = eqx.field(static=True, default=False)
    needs_full_batch: bool = eqx.field(static=True, default=False)

    @property
    def full_batch_only(self) -> bool:
        return self.needs_full_batch

    def init(self, params):
        return self.optimizer.init(params)

    def step(self, objective, params, state, batch):
        value_fn = functools.partial(_call_objective, objective, batch=batch)
        if self.reuse_value:
            # L-BFGS's line search already evaluated the loss and gradient at `params`.
            loss, grads = optax.value_and_grad_from_state(value_fn)(params, state=state)
        else:
            loss, grads = jax.value_and_grad(value_fn)(params)
        # Wrapped here, not stored wrapped: the solver then compares equal for the same optimizer
        # object, and `fit` reuses its compiled program.
        tx = optax.with_extra_args_support(self.optimizer)
        updates, state = tx.update(grads, state, params, value=loss, grad=grads, value_fn=value_fn)
        return optax.apply_updates(params, updates), state, loss


def _call_objective(objective, params, *, batch):
    return objective(params, batch)


@functools.lru_cache(maxsize=64)
def _named(name: str, learning_rate: float | None) -> OptaxSolver:
    # Cached so that the same (name, learning rate) is the same object, and `fit` with the same
    # settings hits the compiled-program cache.
    if name == "lbfgs":
        tx = optax.lbfgs(learning_rate=learning_rate)
        return OptaxSolver(tx, reuse_value=True, needs_full_batch=True)
    lr = 1e-2 if learning_rate is None else learning_rate
    factory = {
        "adam": optax.adam,
        "adamw": optax.adamw,
        "sgd": optax.sgd,
        "rmsprop": optax.rmsprop,
    }[name]
    # inject_hyperparams keeps the learning rate in the optimiser state: per-member learning
    # rates in ensembles, and no recompiling for a new value.
    tx = optax.inject_hyperparams(factory)(learning_rate=lr)
    return OptaxSolver(tx)


def resolve_solver(
    optimizer: str | optax.GradientTransformation | Solver, learning_rate: float | None = None
) -> Solver:
    """Turn a name, an optax transformation or a `Solver` into a `Solver`."""
    if isinstance(optimizer, Solver):
        return optimizer
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise unknown_name(
                "optimizer", optimizer, OPTIMIZERS, ", or pass any optax.GradientTransformation"
            )
        if learning_rate is not None and not (
            isinstance(learning_rate, (int, float)) and learning_rate > 0
        ):
            raise ValueError(f"learning_rate must be a number > 0; got {learning_rate!r}.")
        return _named(optimizer, None if learning_rate is None else float(learning_rate))
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate is only used with an optimizer given by name; this optax "
                "transformation already has its own."
            )
        return OptaxSolver(optimizer)
    raise TypeError(
        "optimizer must be a name (one of "
        f"{', '.join(OPTIMIZERS)}), an optax.GradientTransformation or an eqx_ffn.Solver; "
        f"got {type(optimizer).__name__}."
    )
