"""Callbacks: functions the host calls between program calls, with a read-only view of the fit.

`fit(..., callbacks=[f, ...])` calls each `f(info)` every `callback_every` steps (rounded up to
whole chunks of the compiled loop) and at the end of every program call, never inside the
compiled loop: a callback adds no per-step work. `info` is a `FitInfo`; a callback asks the fit
to stop by returning `True` or calling `info.stop()`: the fit then ends with
`History.stop_reason == "callback"` and returns the model trained up to that callback's step.

Where the steps between two callbacks run in much less time than a program call costs (small
models), one call runs several intervals and keeps the state at the end of each (a snapshot):
the callbacks of a call run, in step order, when it returns, each seeing the losses, the model
and (if it stops the fit) the state of its own step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

STOP_REASON = "callback"
"""`History.stop_reason` of a fit that a callback stopped."""

SNAPSHOT_SECONDS = 0.02
"""Callback intervals estimated to run in less than this share a program call (each call costs
the host a dispatch and a read); longer intervals get a call each."""

SNAPSHOT_BYTES = 1 << 22
"""The most bytes of snapshots (state and returned parameters, one per interval) a call keeps."""


def sized_for_callbacks(options: Any, cfg: Any, step_seconds: float, state: Any) -> Any:
    """The program `Config` of a fit with callbacks every `options.callback_every` steps: `k`
    chunks an interval (rounded up); intervals shorter than `SNAPSHOT_SECONDS` (by the static
    step estimate `step_seconds`) share a call that snapshots each, others get a call each (its
    buffers sized to the interval). The steps compute the same either way."""
    if not options.callbacks or options.callback_every is None:
        return cfg
    k = -(-options.callback_every // cfg.chunk)
    if k >= cfg.max_chunks:
        return cfg
    per_snapshot = 2 * sum(int(getattr(a, "nbytes", 0)) for a in jax.tree.leaves(state))
    n = min(cfg.max_chunks // k, SNAPSHOT_BYTES // max(per_snapshot, 1))
    if n < 2 or k * cfg.chunk * step_seconds >= SNAPSHOT_SECONDS:
        return dataclasses.replace(cfg, max_chunks=k)
    return dataclasses.replace(cfg, max_chunks=n * k, snap_chunks=k)


def snapshot_steps(cfg: Any, t0: int, t_end: int) -> list[int]:
    """The steps inside a call from `t0` to `t_end` where callbacks are due before its end, in
    the order of its snapshot slots."""
    if not cfg.snap_chunks:
        return []
    every = cfg.snap_chunks * cfg.chunk
    return list(range(t0 + every, t_end, every))


def pack(tree: Any) -> dict[str, Any]:
    """A snapshot's leaves raveled into one vector per dtype (written a few kernels a chunk
    rather than one per leaf)."""
    groups: dict[str, list] = {}
    for a in jax.tree.leaves(tree):
        groups.setdefault(str(a.dtype), []).append(jnp.ravel(a))
    return {name: jnp.concatenate(parts) for name, parts in groups.items()}


def unpack(snaps: dict[str, Any], i: int, template: Any) -> Any:
    """Slot `i` of a call's stacked packed snapshots, as a tree like `template` (the same
    structure, shapes and dtypes as what `pack` packed)."""
    leaves, treedef = jax.tree.flatten(template)
    slot = {name: v[i] for name, v in snaps.items()}
    offsets: dict[str, int] = {}
    out = []
    for a in leaves:
        name, size = str(a.dtype), int(np.prod(a.shape))
        at = offsets.get(name, 0)
        out.append(slot[name][at : at + size].reshape(a.shape))
        offsets[name] = at + size
    return jax.tree.unflatten(treedef, out)


class FitInfo:
    """A read-only view of a running fit, passed to each callback.

    **Attributes:**

    - `step`: steps run so far (the furthest member of an ensemble); `steps`: the fit's total.
    - `loss`: the training loss of every step run so far (with the penalty, as
      `History.loss`): a read-only array for one model, a list of K arrays for an ensemble.
    - `data_loss`: the same without the penalty (as `History.data_loss`; `loss` itself when
      no penalty is set).
    - `val_loss`, `val_steps`: the validation losses so far and the steps they were measured
      at (likewise per member; empty without validation).
    - `model`: the model the fit would return now (built on first access only).
    - `ensemble`: K for `fit_ensemble`, else None.

    Call `stop()` (or return `True` from the callback) to end the fit at this step.
    """

    def __init__(
        self, step: int, steps: int, record: Any, ensemble: int | None, model_fn, upto: int
    ):
        self.step, self.steps, self.ensemble = step, steps, ensemble
        self._record, self._model_fn, self._model = record, model_fn, None
        self._upto = upto  # the record holds steps past this one when a call snapshots
        self._stop = False

    def _per_member(self, which: str) -> Any:
        views = [self._view(which, j) for j in range(self._record.k)]
        return views if self.ensemble is not None else views[0]

    def _view(self, which: str, j: int) -> np.ndarray:
        view = self._record.view(which, j)
        if which in ("val_loss", "val_steps"):
            steps = self._record.view("val_steps", j)
            return view[: int(np.searchsorted(steps, self._upto, side="right"))]
        return view[: self._upto]

    @property
    def loss(self) -> np.ndarray | list[np.ndarray]:
        return self._per_member("loss")

    @property
    def data_loss(self) -> np.ndarray | list[np.ndarray]:
        return self._per_member("data_loss")

    @property
    def val_loss(self) -> np.ndarray | list[np.ndarray]:
        return self._per_member("val_loss")

    @property
    def val_steps(self) -> np.ndarray | list[np.ndarray]:
        return self._per_member("val_steps")

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._model_fn()
        return self._model

    def stop(self) -> None:
        """Ask the fit to end at this step (`step`): it returns the model and History of it."""
        self._stop = True

    def __repr__(self) -> str:
        return f"FitInfo(step={self.step}, steps={self.steps})"


def check_callbacks(callbacks: Any) -> tuple[Callable[[FitInfo], Any], ...]:
    """`callbacks`: a sequence of callables (or one callable)."""
    if callbacks is None:
        return ()
    if callable(callbacks):
        return (callbacks,)
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TypeError(f"callbacks must be a list of callables f(info); got {callbacks!r}.")
    for c in callbacks:
        if not callable(c):
            raise TypeError(f"callbacks must be a list of callables f(info); got {c!r} in it.")
    return tuple(callbacks)


def run_callbacks(callbacks: Sequence[Callable[[FitInfo], Any]], info: FitInfo) -> bool:
    """Call each callback with `info`; True when one asked the fit to stop."""
    for callback in callbacks:
        if callback(info) is True:
            info.stop()
    return info._stop
