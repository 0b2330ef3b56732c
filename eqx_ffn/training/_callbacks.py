"""Callbacks: functions the host calls between program calls, with a read-only view of the fit.

`fit(..., callbacks=[f, ...])` calls each `f(info)` after every program call (the points where
the host already updates the progress bar and checks for Ctrl-C; `callback_every` caps a call's
length in steps), never inside the compiled loop: a callback adds no per-step work. `info` is a
`FitInfo`; a callback asks the fit to stop by returning `True` or calling `info.stop()`: the fit
then ends with `History.stop_reason == "callback"` and returns the model trained so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

STOP_REASON = "callback"
"""`History.stop_reason` of a fit that a callback stopped."""


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

    Call `stop()` (or return `True` from the callback) to end the fit after this call.
    """

    def __init__(self, step: int, steps: int, record: Any, ensemble: int | None, model_fn):
        self.step, self.steps, self.ensemble = step, steps, ensemble
        self._record, self._model_fn, self._model = record, model_fn, None
        self._stop = False

    def _per_member(self, which: str) -> Any:
        views = [self._record.view(which, j) for j in range(self._record.k)]
        return views if self.ensemble is not None else views[0]

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
        """Ask the fit to stop after this program call."""
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
