"""The figure of a simulation: measured against simulated output, with the error, per output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._experiment import Experiment
from ._metrics import rmse

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_simulation(
    experiment: Experiment,
    y_sim: Any,
    *,
    skip: int | None = None,
    unit: str = "",
    label: str = "simulated",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Measured and simulated output over time, and their difference, one pair of axes per output.

    **Arguments:**

    - `experiment`: the measured record.
    - `y_sim`: the simulated (or predicted) output, `(T, n_y)` or `(T,)`.
    - `skip`: the initialisation window, shaded and left out of the RMSE in the title (default
      `experiment.n_init`).
    - `unit`: the outputs' unit for the axis labels (e.g. `"V"`).
    - `label`: the legend's name of `y_sim`.
    - `path`: also save the figure there as PNG.

    **Returns:** the `matplotlib.figure.Figure` (built without pyplot).
    """
    from matplotlib.figure import Figure  # imported on first use: `import sysid` stays light

    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a sysid.Experiment; got {type(experiment).__name__}.")
    y = experiment.y
    y_hat = np.asarray(y_sim, dtype=np.float64)
    y_hat = y_hat[:, None] if y_hat.ndim == 1 else y_hat
    if y_hat.shape != y.shape:
        raise ValueError(f"y_sim must have shape {y.shape}, the record's y; got {y_hat.shape}.")
    skip = experiment.n_init if skip is None else skip
    scores = rmse(y, y_hat, skip) if np.isfinite(y_hat[skip:]).all() else None
    ts = experiment.ts
    t = np.arange(experiment.T) * (ts or 1.0)
    fig = Figure(figsize=(8, 3.2 * experiment.n_y), layout="constrained")
    axes = fig.subplots(2 * experiment.n_y, 1, sharex=True, squeeze=False)[:, 0]
    suffix = f" [{unit}]" if unit else ""
    for j in range(experiment.n_y):
        top, bottom = axes[2 * j], axes[2 * j + 1]
        top.plot(t, y[:, j], color="k", lw=1, label="measured")
        top.plot(t, y_hat[:, j], color="C1", lw=1, label=label)
        bottom.plot(t, y[:, j] - y_hat[:, j], color="C3", lw=1)
        for ax in (top, bottom):
            if skip:
                ax.axvspan(t[0], t[skip - 1], color="0.9", zorder=0)
            ax.grid(alpha=0.3)
        top.set_ylabel(f"y{j + 1}{suffix}" if experiment.n_y > 1 else f"y{suffix}")
        bottom.set_ylabel(f"error{suffix}")
        title = experiment.name or "simulation"
        if scores is not None:
            title += f": RMSE {scores[j]:.4g}{(' ' + unit) if unit else ''}"
        top.set_title(title)
        top.legend(loc="best")
    axes[-1].set_xlabel("time [s]" if ts else "sample")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig
