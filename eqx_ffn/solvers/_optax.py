"""optax in the engine: `OptaxSolver` (any `optax.GradientTransformation`), the named
optimizers (`"adam"`, ..., `"lbfgs"`), and which optax transformations may run on the raveled
parameter vector."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..training._cache_key import by_value, value_key
from ._solver import Solver, SolverStep

PyTree = Any

NAMED: tuple[str, ...] = ("adam", "adamw", "sgd", "rmsprop", "lbfgs")
"""The optax optimizers accepted by name."""


class OptaxSolver(Solver):
    """Any `optax.GradientTransformation` (sgd, adam, schedules, chains, `optax.lbfgs`, ...).

    Transformations that want the loss (line searches) get `value`, `grad` and `value_fn`.

    Compiled programs are keyed by the transformation's `update` function compared by value (its
    code and the values it closes over), not by the object: two separately made
    `optax.adam(1e-2, b1=0.8)` share one program, while `optax.adam(3e-3, b1=0.8)` bakes another
    learning rate into its `update` and compiles its own. Values that live in the optimizer
    STATE do not compile: a named optimizer's `learning_rate`, and every numeric hyperparameter
    of `optax.inject_hyperparams(optax.adam)(learning_rate=...)`. In `fit`, `optax.adam`,
    `adamw`, `sgd` and `rmsprop` with only their rate set are not `OptaxSolver`s at all: they
    are the named optimizer at that rate (`as_named`).

    Fields besides `optimizer` (keyword, static) set the `Solver` flags: `line_search=True`
    (e.g. L-BFGS) hands the transformation `value`, `grad` and `value_fn` from its state;
    `convergence_test=True` reports `converged` when the largest gradient entry is at most `tol`
    (as SciPy's `gtol`) or the relative decrease of the objective over the step is at most
    `tol * 1e-3`; without it the engine watches the training loss (see `Solver`).
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    line_search: bool = eqx.field(static=True, default=False)
    convergence_test: bool = eqx.field(static=True, default=False)
    full_batch_only: bool = eqx.field(static=True, default=False)
    default_tol: float = eqx.field(static=True, default=0.0)
    flat_params: bool = eqx.field(static=True, default=False)

    def program_key(self) -> Any:
        """What a training program depends on: `update` by value (`init` runs outside it)."""
        return (
            type(self),
            value_key(self.optimizer.update),
            self.line_search,
            self.convergence_test,
            self.full_batch_only,
            self.flat_params,
        )

    def init_key(self) -> Any:
        return (type(self), value_key(self.optimizer.init))

    def init(self, params):
        return self.optimizer.init(params)

    def step(self, objective, params, state, batch):
        value_fn = functools.partial(_call_objective, objective, batch=batch)
        if self.line_search:
            # L-BFGS's line search already evaluated the loss and gradient at `params`.
            loss, grads = optax.value_and_grad_from_state(value_fn)(params, state=state)
        else:
            loss, grads = jax.value_and_grad(value_fn)(params)
        # Wrapped here, not stored wrapped: the solver then compares equal for the same optimizer.
        tx = optax.with_extra_args_support(self.optimizer)
        updates, state = tx.update(grads, state, params, value=loss, grad=grads, value_fn=value_fn)
        new_params = optax.apply_updates(params, updates)
        if not self.convergence_test:
            return SolverStep(new_params, state, loss, jnp.asarray(False))
        tol = jnp.asarray(objective.tol, jnp.asarray(loss).dtype)
        gmax = optax.tree.max(jax.tree.map(jnp.abs, grads))
        new_value = optax.tree.get(state, "value")
        decrease = loss - new_value
        scale = jnp.maximum(jnp.maximum(jnp.abs(loss), jnp.abs(new_value)), 1e-30)
        small_step = (decrease >= 0) & (decrease <= 1e-3 * tol * scale)
        converged = (tol > 0) & ((gmax <= tol) | small_step)
        return SolverStep(new_params, state, loss, converged)


def _call_objective(objective, params, *, batch):
    return objective(params, batch)


DEFAULT_LEARNING_RATE = 1e-2
"""The learning rate of an optimizer given by name (the lecture's)."""


_FACTORIES: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "sgd": optax.sgd,
    "rmsprop": optax.rmsprop,
}
_PROBE = 0.000123456789  # a learning rate no one uses: it marks where a factory keeps its rate


@functools.cache
def _probe_key(name: str) -> Any:
    return by_value(_FACTORIES[name](_PROBE))


def _rate_where_probed(probe: Any, key: Any, found: list[float]) -> bool:
    """Whether `key` equals `probe` except where `probe` holds the probe rate (or its negative,
    as `optax.scale_by_learning_rate` stores it), and there `key` holds one same rate
    (collected in `found`)."""
    if (
        isinstance(probe, tuple)
        and len(probe) == 2
        and probe[0] is float
        and abs(probe[1]) == _PROBE
    ):
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] is float):
            return False
        found.append(key[1] if probe[1] > 0 else -key[1])
        return len(set(found)) == 1
    if isinstance(probe, tuple) and isinstance(key, tuple):
        return len(probe) == len(key) and all(
            _rate_where_probed(p, k, found) for p, k in zip(probe, key, strict=True)
        )
    return probe == key


def as_named(tx: optax.GradientTransformation) -> tuple[str, float] | None:
    """`(name, learning_rate)` when `tx` is `optax.<name>(learning_rate)` with every other
    setting at its default (compared by value, as the program cache compares), else `None`.

    Such a transformation trains exactly as the named optimizer at that rate, so it shares the
    named optimizer's program: a fresh `optax.adam(3e-3)` after `optax.adam(1e-2)` (or after
    `optimizer="adam"`) compiles nothing. Anything else (a schedule, other `b1`, a chain) keeps
    its own program."""
    key = by_value(tx)
    if key is None:
        return None
    for name in _FACTORIES:
        found: list[float] = []
        if _rate_where_probed(_probe_key(name), key, found) and found:
            rate = found[0]
            # any other rate (0 in tests, a negative one) stays the user's own program
            return (name, rate) if math.isfinite(rate) and rate > 0 else None
    return None


@functools.lru_cache(maxsize=16)
def named_optimizer(name: str, lbfgs_learning_rate: float | None = None) -> OptaxSolver:
    # One object per name: the learning rate is set in the optimizer state (`with_learning_rate`),
    # so every learning rate shares one compiled program.
    if name == "lbfgs":
        tx = optax.lbfgs(learning_rate=lbfgs_learning_rate)
        return OptaxSolver(
            tx,
            line_search=True,
            convergence_test=True,
            full_batch_only=True,
            default_tol=LBFGS_TOL,
            flat_params=True,
        )
    factory = _FACTORIES[name]
    # inject_hyperparams keeps the learning rate in the optimiser state: per-member learning
    # rates in ensembles, and no recompiling for a new value. The other settings stay Python
    # constants, as in `factory(rate)` itself, so that the named optimizer computes exactly
    # what `optax.<name>(rate)` does (see `as_named`); `fit` runs low-precision models on
    # float32 master copies, so b2 = 0.999 is never rounded to bfloat16's 1.0.
    static = tuple(a for a in inspect.signature(factory).parameters if a != "learning_rate")
    tx = optax.inject_hyperparams(factory, static_args=static)(learning_rate=DEFAULT_LEARNING_RATE)
    return OptaxSolver(tx, flat_params=True)


LBFGS_TOL = 1e-5
"""L-BFGS's default `tol`: the largest gradient entry at which it has converged (SciPy's
L-BFGS-B default `gtol`)."""


def with_learning_rate(opt_state: Any, learning_rate: Any) -> Any:
    """`opt_state` of an `optax.inject_hyperparams` optimizer with its learning rate replaced."""
    hyper = getattr(opt_state, "hyperparams", None)
    if not isinstance(hyper, dict) or "learning_rate" not in hyper:
        raise ValueError("This optimizer has no learning_rate hyperparameter to set.")
    old = hyper["learning_rate"]
    lr = jnp.asarray(learning_rate, old.dtype).reshape(old.shape)
    return opt_state._replace(hyperparams={**hyper, "learning_rate": lr})


def check_learning_rate(learning_rate: Any) -> float:
    """A learning rate: a finite number > 0 (Python, NumPy or 0-d JAX scalar)."""
    if isinstance(learning_rate, (bool, str, bytes)) or np.ndim(learning_rate) != 0:
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}.")
    try:
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise ValueError(
            f"learning_rate must be a finite number > 0; got {learning_rate!r}."
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}.")
    return value


# Optax transformations (by the function that builds them) whose update works element by element
# or on global reductions only, so that it gives the same result on the parameters raveled into
# one vector. Anything not listed, or closing over a mask, a user function or an array, keeps
# the parameters' own structure.
_ELEMENTWISE_BUILDERS = frozenset(
    {
        "adabelief", "adagrad", "adam", "adamax", "adamw", "amsgrad", "lion", "nadam",
        "rmsprop", "sgd", "lbfgs", "add_decayed_weights", "chain", "clip", "clip_by_global_norm",
        "identity", "init_empty_state", "inject_hyperparams", "named_chain", "scale",
        "scale_by_adam", "scale_by_adamax", "scale_by_amsgrad", "scale_by_belief",
        "scale_by_learning_rate", "scale_by_lbfgs", "scale_by_lion", "scale_by_rms",
        "scale_by_rss", "scale_by_schedule", "scale_by_zoom_linesearch", "trace",
        "with_extra_args_support", "zoom_linesearch", "constant_schedule", "cosine_decay_schedule",
        "exponential_decay", "join_schedules", "linear_schedule", "piecewise_constant_schedule",
        "polynomial_schedule", "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule",
    }
)  # fmt: skip
_SAFE_DICTS = frozenset({"numeric_hps", "other_hps", "sched_hps", "static_args"})


def is_elementwise(tx: optax.GradientTransformation) -> bool:
    """Whether `tx.update` is built only from optax transformations known to act element by
    element (or through global norms): then it may run on the raveled parameter vector."""
    seen: set[int] = set()

    def ok(obj: Any, name: str = "", depth: int = 0) -> bool:
        if depth > 40:
            return False
        if obj is None or isinstance(obj, (bool, int, float, str, np.dtype, type)):
            return True
        if id(obj) in seen:
            return True
        seen.add(id(obj))
        if isinstance(obj, (tuple, list)):
            return all(ok(v, name, depth + 1) for v in obj)
        if isinstance(obj, dict):
            return name in _SAFE_DICTS and all(ok(v, "", depth + 1) for v in obj.values())
        if isinstance(obj, functools.partial):
            return ok(obj.func, "", depth + 1) and ok(obj.args, "", depth + 1)
        fn = getattr(obj, "__code__", None)
        if fn is None:
            return False
        module = getattr(obj, "__module__", "") or ""
        builder = obj.__qualname__.split(".<locals>")[0]
        if not module.startswith("optax") or builder not in _ELEMENTWISE_BUILDERS:
            return False
        cells = obj.__closure__ or ()
        for var, cell in zip(fn.co_freevars, cells, strict=True):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if var == "mask" and value is not None:
                return False
            if not ok(value, var, depth + 1):
                return False
        return ok(obj.__defaults__, "", depth + 1)

    try:
        return ok(tx.update)
    except Exception:
        return False
