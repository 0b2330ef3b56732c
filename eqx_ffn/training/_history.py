"""What a fit reports: `History`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

STOP_REASONS = (
    "completed",
    "converged",
    "early_stopping",
    "non_finite_loss",
    "diverged",
    "interrupted",
    "callback",
)


class _FinalLoss:
    """`History.final_loss`: a number, or a function computing it on first read (a
    mini-batch fit's full-data loss is computed only when asked for)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value: Any = instance.__dict__[self.name]
        if callable(value):
            computed: Any = value()
            value = instance.__dict__[self.name] = float(computed)
        return float(value)

    def __set__(self, instance, value):
        instance.__dict__[self.name] = value


@dataclasses.dataclass(frozen=True)
class History:
    """The record of one `fit`.

    **Attributes:**

    - `loss`: training loss at every step run, shape `(steps,)`, evaluated before that step's
      update (as the lecture records it): what the optimizer minimised, the data loss plus the
      L1/L2 penalty when one is set.
    - `data_loss`: the same steps' data loss without the penalty (`loss` less
      `l1 * sum|W| + l2 * sum W**2` of the parameters the step started from, up to rounding);
      without a penalty it is `loss` itself (the same array). `None` in a `History` built
      without it (`sysid.fit`'s, or one made by hand).
    - `val_loss`, `val_steps`: validation loss (no penalty) and the number of steps run when it
      was measured; empty without `validation`.
    - `steps`: steps run.
    - `stop_reason`: `"completed"`; `"converged"` (the solver's convergence test against `tol`
      passed); `"early_stopping"` (validation loss stopped improving for `patience` evaluations;
      the best model is returned); `"non_finite_loss"` (the loss became NaN/inf; the last model
      with a finite loss is returned); `"diverged"` (a full-batch loss grew 1e4-fold over its
      lowest value; the last model before that is returned); `"interrupted"` (Ctrl-C; the model
      trained so far is returned); `"callback"` (a callback asked the fit to stop; the model
      trained so far is returned).
    - `best_step`: the step of the returned model when it is not the last one, else `None`.
    - `final_loss`: training loss (with the penalty) of the returned model on the whole training
      set; `nan` for an interrupted fit. Full-batch fits measure it inside the program when
      the fit ends; mini-batch fits on its first read (it costs a pass over the data).
    - `wall_time`: seconds for the whole call; `compile_time`: seconds of it spent compiling
      the training program and the program that builds the initial state (0 when both were
      reused).
    - `message`: a sentence for people.
    """

    loss: np.ndarray
    val_loss: np.ndarray
    val_steps: np.ndarray
    steps: int
    stop_reason: str
    best_step: int | None
    final_loss: float
    wall_time: float
    compile_time: float
    message: str
    data_loss: np.ndarray | None = None

    @property
    def run_time(self) -> float:
        """Seconds not spent compiling."""
        return self.wall_time - self.compile_time

    def plot(self, **kwargs: Any):
        """Draw the loss curve (log scale, training and validation); returns the Figure."""
        from ..plot._plot import plot_loss

        return plot_loss(self, **kwargs)

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(step, loss, val_loss, data_loss)`: one row a step run (`val_loss` NaN where
        none was measured, `data_loss` where it was not recorded)."""
        steps = np.arange(1, len(self.loss) + 1)
        val = np.full(len(self.loss), np.nan, np.float64)
        at = (self.val_steps >= 1) & (self.val_steps <= len(self.loss))
        val[self.val_steps[at] - 1] = self.val_loss[at]
        loss = np.asarray(self.loss, np.float64)
        if self.data_loss is None:
            data = np.full(len(self.loss), np.nan, np.float64)
        elif self.data_loss is self.loss:
            data = loss
        else:
            data = np.asarray(self.data_loss, np.float64)
        return steps, loss, val, data

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the per-step losses to a CSV file (atomically); returns its path.

        Columns: `step` (1, 2, ...); `loss` (the training loss measured at that step, before
        its update: what the optimizer minimised, the data loss plus the L1/L2 penalty,
        `History.loss[step - 1]`); `val_loss` (the validation loss measured after that step,
        without the penalty; empty where none was measured); `data_loss` (the training loss
        without the penalty, `History.data_loss[step - 1]`: equal to `loss` without a penalty;
        empty where it was not recorded). Numbers are written with enough digits to read back
        the exact float32/float64 values.
        """
        from ..io._atomic import _atomic_write

        def cell(v: float) -> str:
            return "" if v != v else repr(v)

        steps, loss, val, data = self._columns()
        lines = ["step,loss,val_loss,data_loss"]
        rows = zip(steps.tolist(), loss.tolist(), val.tolist(), data.tolist(), strict=True)
        for s, a, v, d in rows:
            lines.append(f"{s},{a!r},{cell(v)},{cell(d)}")
        target = Path(path)
        _atomic_write(target, ("\n".join(lines) + "\n").encode("utf-8"))
        return target

    def to_dataframe(self):
        """The per-step losses as a pandas DataFrame indexed by `step`, with columns `loss`
        (with the penalty), `val_loss` (NaN where no validation loss was measured) and
        `data_loss` (the training loss without the penalty): see `to_csv`.

        **Raises:** `ImportError` when pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "History.to_dataframe needs pandas (pip install pandas); History.to_csv needs "
                "nothing more."
            ) from None
        steps, loss, val, data = self._columns()
        columns = {"loss": loss, "val_loss": val, "data_loss": data}
        frame = pd.DataFrame(columns, index=pd.Index(steps, name="step"))
        return frame

    def __repr__(self) -> str:
        last = f"{self.loss[-1]:.4g}" if len(self.loss) else "n/a"
        return (
            f"History(steps={self.steps}, stop_reason={self.stop_reason!r}, last loss={last}, "
            f"wall_time={self.wall_time:.3g}s, compile_time={self.compile_time:.3g}s)"
        )


# installed after the dataclass is made, so that the field stays a required argument
History.final_loss = _FinalLoss("final_loss")  # type: ignore[assignment]


class NonFiniteLossWarning(RuntimeWarning):
    """The training loss became NaN or inf; the last model with a finite loss was returned."""


class DivergenceWarning(NonFiniteLossWarning):
    """The training loss exploded (grew 1e4-fold over its lowest value); the last model before
    that was returned. A subclass of `NonFiniteLossWarning`: filters for one catch both."""
