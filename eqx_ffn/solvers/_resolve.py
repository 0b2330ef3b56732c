"""`resolve_solver`: what `fit(optimizer=...)` accepts (a name, an optax transformation or a
`Solver`) turned into a `Solver`."""

from __future__ import annotations

from typing import Any

import optax

from .._validation import unknown_name
from ._least_squares import LEAST_SQUARES_SOLVERS, least_squares_solver
from ._optax import (
    DEFAULT_LEARNING_RATE,
    NAMED,
    OptaxSolver,
    as_named,
    check_learning_rate,
    is_elementwise,
    named_optimizer,
)
from ._solver import Solver

OPTIMIZERS: tuple[str, ...] = (*NAMED, *LEAST_SQUARES_SOLVERS)
"""Names accepted by `fit(optimizer=...)`; `learning_rate` sets the step size of the first four
(and L-BFGS's fixed step, which by default comes from its line search)."""


def resolve_solver(
    optimizer: str | optax.GradientTransformation | Solver,
    learning_rate: Any = None,
    *,
    share_named: bool = True,
) -> tuple[Solver, float | None]:
    """Turn a name, an optax transformation or a `Solver` into a `Solver`, and the learning rate
    to set in its state (`None`: the solver's own).

    `share_named`: an optax transformation that is a named optimizer at some rate (`as_named`)
    becomes that named optimizer, whose program it then shares. `make_step` passes `False`: its
    caller initialises the state with their own transformation."""
    if isinstance(optimizer, Solver):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate is only used with an optimizer given by name; this Solver "
                "already has its own."
            )
        return optimizer, None
    if isinstance(optimizer, str):
        if optimizer in LEAST_SQUARES_SOLVERS:
            if learning_rate is not None:
                raise ValueError(
                    f"learning_rate does not apply to optimizer={optimizer!r} (it sets its own "
                    "step through its damping)."
                )
            return least_squares_solver(optimizer), None
        if optimizer not in OPTIMIZERS:
            raise unknown_name(
                "optimizer", optimizer, OPTIMIZERS, ", or pass any optax.GradientTransformation"
            )
        lr = None if learning_rate is None else check_learning_rate(learning_rate)
        if optimizer == "lbfgs":
            return named_optimizer("lbfgs", lr), None
        return named_optimizer(optimizer), DEFAULT_LEARNING_RATE if lr is None else lr
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate is only used with an optimizer given by name; this optax "
                "transformation already has its own."
            )
        named = as_named(optimizer) if share_named else None
        if named is not None:  # e.g. optax.adam(1e-2): the named program, its rate at run time
            name, lr = named
            return named_optimizer(name), check_learning_rate(lr)
        return OptaxSolver(optimizer, flat_params=is_elementwise(optimizer)), None
    raise TypeError(
        "optimizer must be a name (one of "
        f"{', '.join(OPTIMIZERS)}), an optax.GradientTransformation or an eqx_ffn.Solver; "
        f"got {type(optimizer).__name__}."
    )
