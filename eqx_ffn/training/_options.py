"""`FitOptions`: the settings of one fit, frozen and validated once (what can be checked without
the data); `fit` and `fit_ensemble` build one from their keywords."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_int, check_precision, unknown_name
from ..solvers._resolve import resolve_solver
from ..solvers._solver import Solver
from ._callbacks import check_callbacks
from ._checkpoint import check_checkpoint_arguments
from ._losses import Loss, resolve_loss
from ._placement import Device, resolve_device

MAX_STEPS = 2**31 - 2**17
"""The most steps one fit can run (the step counter is an int32 inside the program)."""

SAMPLINGS = ("epoch", "replacement")
"""Values of `fit(sampling=...)`."""


def check_compute_dtype(compute_dtype: Any) -> jnp.dtype | None:
    """`compute_dtype`: None or a floating dtype this JAX can compute in."""
    if compute_dtype is None:
        return None
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        raise TypeError(
            f"compute_dtype must be a floating dtype such as jnp.bfloat16 or jnp.float32; got "
            f"{compute_dtype!r}."
        ) from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"compute_dtype must be a floating dtype such as jnp.bfloat16; got {dtype}."
        )
    if dtype.itemsize == 8 and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise ValueError(
            "compute_dtype=float64 needs jax.config.update('jax_enable_x64', True) first."
        )
    return dtype


def resolve_precision(precision: Any) -> str | None:
    """The matmul precision a program is traced under: `precision`, or JAX's current default."""
    if precision is None:
        current = jax.config.jax_default_matmul_precision  # type: ignore[attr-defined]
        return None if current is None else str(current)
    return check_precision(precision)


def check_penalty(value: Any, argument: str) -> Any:
    """`l1`/`l2`: a finite number >= 0 (Python, NumPy or JAX scalar), or an array of them (for
    ensembles)."""
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return np.asarray(value, dtype=float)  # the common case, without NumPy's checks
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.") from None
    if isinstance(value, bool) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.")
    return arr


def _check_tol(tol: Any, default: float) -> float:
    if tol is None:
        return default
    try:
        value = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}.") from None
    bad_type = isinstance(tol, (bool, str, bytes)) or np.ndim(tol)
    if bad_type or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}.")
    return value


def _check_steps(steps: Any) -> int:
    bad = isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
    if bad or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer >= 1 and <= {MAX_STEPS}; got {steps!r}.")
    return int(steps)


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int or None; got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    return int(batch_size)


@functools.lru_cache(maxsize=4)
def _default_key(impl: str) -> jax.Array:
    # made once (each jr.key call runs a small program); keys are immutable
    return jr.key(0)


def check_key(key: Any) -> jax.Array:
    """A typed `jax.random` key from `key` (`None`: `jax.random.key(0)`)."""
    if key is None:
        return _default_key(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax.random key such as jax.random.key(0); got {key!r}.")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"key must be ONE jax.random key (shape ()); got an array of keys of shape "
                f"{key.shape}."
            )
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise TypeError(
            f"key must be a jax.random key such as jax.random.key(0) (or a raw uint32 key of "
            f"shape (2,)); got an array of dtype {key.dtype} and shape {key.shape}."
        )
    return jr.wrap_key_data(key)


@dataclasses.dataclass(frozen=True, eq=False)
class FitOptions:
    """The settings of one fit: `fit`'s keywords (documented there) with their defaults,
    checked once when the object is made. The derived values (`solver`, `rate`, `objective`,
    `dtype`, `matmul_precision`, `target`, `show_progress`) are set then too.

    The underscored fields are settings for tests and benchmarks, not keywords of `fit`:
    `_unroll` forces the step loop's unroll factor (None: 8 on accelerators when a chunk holds
    at least 16 steps, else 1); `_device_sampling` forces where mini-batch indices are drawn
    (None: on the device for accelerators, on the host for CPUs, where XLA's sort-based
    permutation is slower); `_call_seconds` sets the run time of one program call (None: see
    `_driver.CALL_SECONDS`; tiny: one chunk a call).
    """

    optimizer: str | Any = "adam"
    learning_rate: float | None = None
    steps: int = 2000
    batch_size: int | None = None
    loss: str | Callable[..., Any] = "mse"
    key: jax.Array | None = None
    validation: tuple[Any, Any] | None = None
    eval_every: int | None = None
    patience: int | None = None
    l1: Any = 0.0
    l2: Any = 0.0
    tol: float | None = None
    n_iter_no_change: int = 10
    sample_weight: Any = None
    sampling: str = "epoch"
    drop_last: bool = False
    progress: bool | None = None
    mesh: Any = None
    device: str | Device | None = None
    compute_dtype: Any = None
    precision: str | None = None
    checkpoint: str | os.PathLike[str] | None = None
    checkpoint_every: float = 60.0
    resume: bool | str | os.PathLike[str] = False
    callbacks: Sequence[Callable[..., Any]] = ()
    callback_every: int | None = None
    _unroll: int | None = None
    _device_sampling: bool | None = None
    _call_seconds: float | None = None
    # derived, set in __post_init__
    solver: Solver = dataclasses.field(init=False)
    rate: float | None = dataclasses.field(init=False)  # the learning rate set in the state
    objective: Loss = dataclasses.field(init=False)  # the resolved loss
    dtype: Any = dataclasses.field(init=False)  # the checked compute dtype
    matmul_precision: str | None = dataclasses.field(init=False)
    target: Device | None = dataclasses.field(init=False)  # the resolved device
    show_progress: bool = dataclasses.field(init=False)

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> FitOptions:
        """The options from a function's arguments (`fit` passes its `locals()`): the entries
        named like a public field."""
        return cls(**{name: arguments[name] for name in _public_fields() if name in arguments})

    def __post_init__(self):
        steps = _check_steps(self.steps)
        objective = resolve_loss(self.loss)
        solver, rate = resolve_solver(self.optimizer, self.learning_rate)
        if self.sampling not in SAMPLINGS:
            raise unknown_name(
                "sampling",
                self.sampling,
                SAMPLINGS,
                " ('epoch': a fresh permutation every epoch, each sample once)",
            )
        dtype = check_compute_dtype(self.compute_dtype)
        matmul_precision = resolve_precision(self.precision)
        if solver.least_squares:
            from ..solvers._least_squares import check_least_squares

            check_least_squares(objective.name, self.l1, self.batch_size, solver)
        batch_size = _check_batch_size(self.batch_size)
        if self.sample_weight is not None and not objective.weightable:
            raise ValueError(
                "sample_weight needs a named loss; a callable loss cannot be weighted."
            )
        values = {
            "steps": steps,
            "batch_size": batch_size,
            "l1": check_penalty(self.l1, "l1"),
            "l2": check_penalty(self.l2, "l2"),
            "tol": _check_tol(self.tol, solver.default_tol),
            "n_iter_no_change": check_int(self.n_iter_no_change, "n_iter_no_change", 1, 2**30),
            "patience": self._patience(),
            "eval_every": check_int(
                max(1, steps // 50) if self.eval_every is None else self.eval_every,
                "eval_every",
                1,
                2**30,
            ),
            "drop_last": bool(self.drop_last),
            "solver": solver,
            "rate": rate,
            "objective": objective,
            "dtype": dtype,
            "matmul_precision": matmul_precision,
            "target": self._target(),
            "show_progress": self._show_progress(),
            **self._session(),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _patience(self) -> int:
        if self.validation is not None and not (
            isinstance(self.validation, (tuple, list)) and len(self.validation) == 2
        ):
            raise TypeError("validation must be a pair (x_val, y_val).")
        if self.patience is None:
            return 0
        if self.validation is None:
            raise ValueError("patience needs validation=(x_val, y_val) to watch.")
        return check_int(self.patience, "patience", 1, 2**30)

    @property
    def penalty_terms(self) -> tuple[bool, bool]:
        """`(l1, l2)`: whether some member has that penalty (a term that is 0 for every member
        is left out of the training program)."""
        return bool(np.any(np.asarray(self.l1) != 0)), bool(np.any(np.asarray(self.l2) != 0))

    @property
    def penalised(self) -> bool:
        """Whether some member has an L1 or L2 penalty (only then is the data loss recorded
        apart from the loss)."""
        return any(self.penalty_terms)

    def _session(self) -> dict[str, Any]:
        """`checkpoint`, `checkpoint_every`, `resume`, `callbacks`, `callback_every`, checked."""
        path, every, resume = check_checkpoint_arguments(
            self.checkpoint, self.checkpoint_every, self.resume
        )
        checkpoint = None if path is None else str(path)
        resume = resume if isinstance(resume, bool) else str(resume)
        callback_every = self.callback_every
        if callback_every is not None:
            callback_every = check_int(callback_every, "callback_every", 1, MAX_STEPS)
        return {
            "checkpoint": checkpoint,
            "checkpoint_every": every,
            "resume": resume,
            "callbacks": check_callbacks(self.callbacks),
            "callback_every": callback_every,
        }

    def _target(self) -> Device | None:
        dev = resolve_device(self.device)
        if self.mesh is not None and dev is not None:
            raise ValueError("Pass mesh= or device=, not both.")
        return dev

    def _show_progress(self) -> bool:
        if self.progress is None:
            return bool(getattr(sys.stderr, "isatty", lambda: False)())
        return bool(self.progress)


@functools.cache
def _public_fields() -> tuple[str, ...]:
    """`FitOptions`' fields that are `fit` keywords."""
    fields = dataclasses.fields(FitOptions)
    return tuple(f.name for f in fields if f.init and not f.name.startswith("_"))
