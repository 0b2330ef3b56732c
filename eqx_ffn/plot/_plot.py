"""The lecture's figures, drawn with Matplotlib's object API (no pyplot, no global state).

Every function builds a `matplotlib.figure.Figure` directly, so it works headless (PNG through the
Agg renderer), never opens a window, and leaves pyplot's list of figures alone. Each returns the
Figure and, given `path`, also saves it as a PNG (parent folders are created). To show a figure
in a notebook, just display the returned object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._metrics import r2_per_output

__all__ = [
    "plot_confusion",
    "plot_fit_1d",
    "plot_loss",
    "plot_parity",
    "plot_residuals",
    "plot_surface_2d",
]


# -- helpers -----------------------------------------------------------------------------------


@eqx.filter_jit
def _batched(model: Any, x: jax.Array) -> jax.Array:
    return eqx.filter_vmap(model)(x)


def _predict(model: Any, x: np.ndarray, argument: str = "model") -> np.ndarray:
    """`model` on every row of `x (N, n_x)`, as a NumPy array `(N, n_y)`."""
    if not callable(model):
        raise TypeError(f"{argument} must be a callable model; got {type(model).__name__}.")
    in_size = getattr(model, "in_size", None)
    if in_size is not None and x.shape[1] != in_size:
        raise ValueError(
            f"{argument} takes {in_size} inputs, but x has shape {x.shape} ({x.shape[1]} columns)."
        )
    dtype = _model_dtype(model, x.dtype)
    out = np.asarray(_batched(model, jax.numpy.asarray(x, dtype)))
    if out.ndim == 1:
        out = out[:, None]
    return out


def _model_dtype(model: Any, default: Any) -> Any:
    for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)):
        return leaf.dtype
    return default


def _as_2d(a: Any, argument: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{argument} must have shape (N, k) with N >= 1; got {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{argument} must hold real numbers; got dtype {arr.dtype}.")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    return arr


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x2, y2 = _as_2d(x, "x"), _as_2d(y, "y")
    if x2.shape[0] != y2.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows; got x {x2.shape} and y {y2.shape}."
        )
    return x2, y2


def _predictions(model: Any, x: Any, y: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """`(y, predictions)` as 2-D arrays: `pred` when given, else `model` on every row of `x`."""
    if pred is None:
        x2, y2 = _pair(x, y)
        out = _predict(model, x2)
    else:
        y2, out = _as_2d(y, "y"), _as_2d(pred, "pred")
    _check_outputs(out, y2)
    return y2, out


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    return fig


def _output_label(j: int, n_y: int) -> str:
    return "y" if n_y == 1 else f"y{j + 1}"


def _output_names(names: Sequence[str] | None, n_y: int) -> list[str]:
    """The outputs' names: the given column names, else `y` / `y1, y2, ...`."""
    if names is None:
        return [_output_label(j, n_y) for j in range(n_y)]
    if isinstance(names, str) or len(names) != n_y:
        raise ValueError(f"names must be a list of {n_y} output name(s); got {names!r}.")
    return [str(n) for n in names]


# -- loss --------------------------------------------------------------------------------------


def _loss_parts(
    source: Any, val_loss: Any, val_steps: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if hasattr(source, "loss"):
        loss = source.loss
        val_loss = getattr(source, "val_loss", None) if val_loss is None else val_loss
        val_steps = getattr(source, "val_steps", None) if val_steps is None else val_steps
    else:
        loss = source
    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim != 1:
        raise ValueError(f"the loss must be one value per step, shape (steps,); got {loss.shape}.")
    vl = np.asarray([] if val_loss is None else val_loss, dtype=np.float64).reshape(-1)
    if val_steps is None or np.size(val_steps) == 0:
        vs = np.arange(1, vl.size + 1) * max(loss.size // max(vl.size, 1), 1)
    else:
        vs = np.asarray(val_steps, dtype=np.float64).reshape(-1)
    if vs.size != vl.size:
        raise ValueError(
            f"val_steps has {vs.size} entries but val_loss has {vl.size}; they must match."
        )
    return loss, vl, vs


def plot_loss(
    history_or_losses: Any,
    *,
    val_loss: Any = None,
    val_steps: Any = None,
    title: str | None = "Loss vs. step",
    ylabel: str = "Loss",
    labels: tuple[str, str] = ("training", "validation"),
    path: str | os.PathLike | None = None,
) -> Figure:
    """The training loss against the step, on a log scale (and the validation loss).

    **Arguments:**

    - `history_or_losses`: an `eqx_ffn.History` (or anything with attributes `loss`,
      `val_loss`, `val_steps`), an array of losses of shape `(steps,)`, or a dict
      `{label: history_or_losses}` to compare several runs on one plot (as docs/REFERENCE.md
      section 3 compares mini-batch and full-batch training).
    - `val_loss`: validation losses, shape `(n_eval,)`; overrides the history's.
    - `val_steps`: the number of steps run at each validation loss, shape `(n_eval,)`.
    - `title`: the axes' title (`None` for none).
    - `ylabel`: the y axis' label (default `"Loss"`), e.g. the loss's name and units.
    - `labels`: the legend's names of the training and validation curves of one history
      (default `("training", "validation")`), e.g. `("training: MSE + L2 penalty",
      "validation: MSE")`: `History.loss` includes the penalty, `History.val_loss` does not.
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the `matplotlib.figure.Figure` (one axes; one line per curve, and for one
    history whose `best_step` is set, a dotted vertical line at the step of the returned model).

    ```python
    model, history = eqx_ffn.fit(model, x, y)
    fig = plot_loss(history, path="out/loss.png")
    ```
    """
    if isinstance(history_or_losses, Mapping):
        runs = {str(k): v for k, v in history_or_losses.items()}
        if not runs:
            raise ValueError("plot_loss got an empty dict of runs.")
        if val_loss is not None or val_steps is not None:
            raise ValueError("val_loss/val_steps cannot be combined with a dict of runs.")
    else:
        if not (isinstance(labels, tuple) and len(labels) == 2):
            raise ValueError(
                f"labels must be a pair of names (training, validation); got {labels!r}."
            )
        runs = {str(labels[0]): history_or_losses}
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for label, run in runs.items():
        loss, vl, vs = _loss_parts(run, val_loss, val_steps)
        (line,) = ax.plot(np.arange(loss.size), loss, label=label, linewidth=1.2)
        if vl.size:
            name = str(labels[1]) if len(runs) == 1 else f"{label} (validation)"
            ax.plot(vs, vl, "o--", color=line.get_color(), markersize=3, label=name, alpha=0.8)
        best = getattr(run, "best_step", None) if len(runs) == 1 else None
        if isinstance(best, (int, np.integer)):
            ax.axvline(
                int(best), color="0.4", ls=":", lw=1.0, label=f"returned model (step {best})"
            )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(ax.get_lines()) > 1:
        ax.legend()
    return _finish(fig, path)


# -- the 1-D fit -------------------------------------------------------------------------------


def plot_fit_1d(
    model: Callable,
    x: Any,
    y: Any,
    *,
    initial_model: Callable | None = None,
    f: Callable | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """The data, the fitted curve (and the initial and true curves) over sorted `x`.

    The lecture's "Model fit" figure. One axes per output.

    **Arguments:**

    - `model`: the trained model, a single-sample callable `(1,) -> (n_y,)` (batched here with
      `eqx.filter_vmap`).
    - `x`: inputs, shape `(N, 1)` or `(N,)`.
    - `y`: measured outputs, shape `(N, n_y)` or `(N,)`.
    - `initial_model`: if given, the model before training, drawn dashed.
    - `f`: if given, the noise-free function `(N, 1) -> (N, n_y)`, drawn dotted.
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the Figure: `n_y` axes, each with the data points, the fit and (when given)
    the initial and true curves, in that order.

    ```python
    fig = plot_fit_1d(model, x, y, initial_model=model0, path="out/fit.png")
    ```
    """
    x, y = _pair(x, y)
    if x.shape[1] != 1:
        raise ValueError(
            f"plot_fit_1d draws one input against the outputs: x must have shape (N, 1); got "
            f"{x.shape}. Use plot_surface_2d for two inputs or plot_parity for any."
        )
    order = np.argsort(x[:, 0], kind="stable")
    xs = x[order]
    curves = [("fit", _predict(model, xs), {"color": "C1", "linewidth": 2})]
    if initial_model is not None:
        curves.append(
            ("initial", _predict(initial_model, xs, "initial_model"), {"color": "C2", "ls": "--"})
        )
    if f is not None:
        true = _as_2d(np.asarray(f(xs)), "f(x)")
        curves.append(("true f(x)", true, {"color": "k", "ls": ":"}))
    n_y = y.shape[1]
    for label, values, _ in curves:
        if values.shape != (xs.shape[0], n_y):
            raise ValueError(
                f"the {label} curve has shape {values.shape}, but y has {n_y} column(s): "
                f"expected ({xs.shape[0]}, {n_y})."
            )
    fig = Figure(figsize=(6.4, 4.0 * n_y if n_y > 1 else 4.0))
    for j in range(n_y):
        ax = fig.add_subplot(n_y, 1, j + 1)
        ax.plot(x[:, 0], y[:, j], "o", color="C0", markersize=3, alpha=0.6, label="data")
        for label, values, style in curves:
            ax.plot(xs[:, 0], values[:, j], label=label, **style)
        ax.set_xlabel("x")
        ax.set_ylabel(_output_label(j, n_y))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.axes[0].set_title("Model fit")
    return _finish(fig, path)


# -- the 2-D surfaces --------------------------------------------------------------------------


def _limits(lim: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    if isinstance(lim, (int, float, np.floating, np.integer)) and not isinstance(lim, bool):
        if not lim > 0:
            raise ValueError(f"lim must be > 0 (the grid spans [-lim, lim]^2); got {lim}.")
        return (-float(lim), float(lim)), (-float(lim), float(lim))
    if isinstance(lim, Sequence) and len(lim) == 2:
        first = lim[0]
        if isinstance(first, (int, float, np.floating, np.integer)):
            bounds = (float(lim[0]), float(lim[1]))  # (lo, hi) for both inputs
            pair = (bounds, bounds)
        else:
            pair = tuple((float(a), float(b)) for a, b in lim)  # ((lo1, hi1), (lo2, hi2))
        for lo, hi in pair:
            if not lo < hi:
                raise ValueError(f"lim ranges must have lo < hi; got {lim!r}.")
        return pair[0], pair[1]  # type: ignore[return-value]
    raise ValueError(
        f"lim must be a number L (grid on [-L, L]^2), a pair (lo, hi), or a pair of pairs "
        f"((lo1, hi1), (lo2, hi2)); got {lim!r}."
    )


def plot_surface_2d(
    model: Callable,
    f: Callable | None = None,
    *,
    lim: Any = 2.0,
    n: int = 100,
    output: int = 0,
    path: str | os.PathLike | None = None,
) -> Figure:
    """3-D surfaces of the true function (if given) and of the learned model on an n x n grid.

    docs/REFERENCE.md section 4's figure.

    **Arguments:**

    - `model`: a single-sample callable `(2,) -> (n_y,)`.
    - `f`: the true function, vectorised: `(N, 2) -> (N, n_y)` or `(N,)`, e.g.
      `eqx_ffn.datasets.sine_cosine_2d().f`. Without it only the model is drawn.
    - `lim`: the grid: a number `L` for `[-L, L]^2` (default 2), a pair `(lo, hi)` for both
      inputs, or `((lo1, hi1), (lo2, hi2))`.
    - `n`: grid points per axis (default 100).
    - `output`: which output column to draw (default 0).
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the Figure: one 3-D axes per surface (true function first).
    """
    from mpl_toolkits.mplot3d import Axes3D  # registers the "3d" projection

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (grid points per axis); got {n!r}.")
    in_size = getattr(model, "in_size", 2)
    if in_size != 2:
        raise ValueError(
            f"plot_surface_2d draws a model of 2 inputs over a grid; this model takes {in_size} "
            "inputs. Use plot_parity or plot_residuals for other sizes."
        )
    (lo1, hi1), (lo2, hi2) = _limits(lim)
    g1, g2 = np.meshgrid(np.linspace(lo1, hi1, n), np.linspace(lo2, hi2, n))
    grid = np.stack([g1.ravel(), g2.ravel()], axis=1).astype(np.float32)
    surfaces = []
    if f is not None:
        surfaces.append(("True function", _as_2d(np.asarray(f(grid)), "f(grid)")))
    surfaces.append(("Learned model", _predict(model, grid)))
    for title, values in surfaces:
        if values.shape[0] != grid.shape[0] or not 0 <= output < values.shape[1]:
            raise ValueError(
                f"{title}: output={output} is not a column of its values of shape {values.shape}."
            )
    fig = Figure(figsize=(5.5 * len(surfaces), 4.8))
    z_all = np.concatenate([v[:, output] for _, v in surfaces])
    z_lim = (float(z_all.min()), float(z_all.max()))
    for i, (title, values) in enumerate(surfaces):
        ax = fig.add_subplot(1, len(surfaces), i + 1, projection="3d")
        assert isinstance(ax, Axes3D)
        ax.plot_surface(g1, g2, values[:, output].reshape(n, n), cmap="viridis", linewidth=0)
        ax.set_zlim(*z_lim)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_zlabel("y" if output == 0 else f"y{output + 1}")
        ax.set_title(title)
    return _finish(fig, path)


# -- test-set diagnostics ----------------------------------------------------------------------


def _check_outputs(pred: np.ndarray, y: np.ndarray) -> None:
    if pred.shape != y.shape:
        raise ValueError(
            f"the model gives predictions of shape {pred.shape}, but the measured outputs have "
            f"shape {y.shape}."
        )


def plot_residuals(
    model: Callable | None,
    x_test: Any,
    y_test: Any,
    *,
    bins: int = 30,
    names: Sequence[str] | None = None,
    pred: Any = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Predictions and residuals against the measured outputs, and a histogram of the residuals.

    docs/REFERENCE.md section 4's test-set figure. For each output, a row of three axes, each
    with its own y scale: the predictions `ŷ` against the measured outputs `y` (with the line
    `ŷ = y`); the residuals `y - ŷ` against `y` (with a zero line); a histogram of the
    residuals, titled with their RMSE.

    **Arguments:**

    - `model`: a single-sample callable `(n_x,) -> (n_y,)`.
    - `x_test`: inputs, shape `(N, n_x)`.
    - `y_test`: measured outputs, shape `(N, n_y)`.
    - `bins`: histogram bins (default 30).
    - `names`: the outputs' names, e.g. the table's column names (default `y` or `y1, y2, ...`).
    - `pred`: predictions already made, shape `(N, n_y)`; then `model` and `x_test` are not
      used (pass `None`).
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the Figure: `3 * n_y` axes; per output, the predictions (2 lines: predicted
    and `ŷ = y`), the residuals (2 lines: residual and zero) and the histogram.
    """
    y, pred = _predictions(model, x_test, y_test, pred)
    res = y - pred
    n_y = y.shape[1]
    labels = _output_names(names, n_y)
    fig = Figure(figsize=(15.0, 4.0 * n_y))
    for j in range(n_y):
        _residual_row(fig, j, n_y, labels[j], y[:, j], pred[:, j], res[:, j], bins)
    return _finish(fig, path)


def _residual_row(
    fig: Figure,
    j: int,
    n_y: int,
    name: str,
    y: np.ndarray,
    pred: np.ndarray,
    res: np.ndarray,
    bins: int,
) -> None:
    """Output `j`'s row of `plot_residuals`: predictions, residuals, histogram."""
    ax: Axes = fig.add_subplot(n_y, 3, 3 * j + 1)
    ax.plot(y, pred, ".", color="C0", alpha=0.6, label="predicted")
    lo, hi = float(y.min()), float(y.max())
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1.0, label="ŷ = y")
    ax.set_xlabel(f"measured {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.set_title(f"Test set: predictions ({y.shape[0]} samples)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    rax: Axes = fig.add_subplot(n_y, 3, 3 * j + 2)
    rax.plot(y, res, ".", color="C3", alpha=0.6, label="residual")
    rax.axhline(0.0, color="0.5", linewidth=0.8, label="zero")
    rax.set_xlabel(f"measured {name}")
    rax.set_ylabel(f"residual: {name} - predicted")
    rax.set_title("Test set: residuals")
    rax.grid(True, alpha=0.3)
    hist: Axes = fig.add_subplot(n_y, 3, 3 * j + 3)
    hist.hist(res, bins=bins, color="r", alpha=0.7)
    rmse = float(np.sqrt(np.mean(res**2)))
    hist.set_title(f"Residuals of {name}: RMSE {rmse:.3g}")
    hist.set_xlabel(f"{name} - predicted")
    hist.set_ylabel("Count")


def plot_parity(
    model: Callable | None,
    x: Any,
    y: Any,
    *,
    names: Sequence[str] | None = None,
    pred: Any = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Predicted against measured outputs, with the line `y = x` (one axes per output).

    **Arguments:**

    - `model`: a single-sample callable `(n_x,) -> (n_y,)`.
    - `x`: inputs, shape `(N, n_x)`.
    - `y`: measured outputs, shape `(N, n_y)`.
    - `names`: the outputs' names, e.g. the table's column names (default `y` or `y1, y2, ...`).
    - `pred`: predictions already made, shape `(N, n_y)`; then `model` and `x` are not used
      (pass `None`).
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the Figure: `n_y` axes, each with 2 lines (the points and `y = x`), titled
    with the output's name, R² and RMSE (e.g. `Weight: R² 0.9300, RMSE 2.1`).
    """
    y, pred = _predictions(model, x, y, pred)
    n_y = y.shape[1]
    labels = _output_names(names, n_y)
    r2 = r2_per_output(y, pred)
    fig = Figure(figsize=(4.6 * n_y, 4.4))
    for j in range(n_y):
        ax: Axes = fig.add_subplot(1, n_y, j + 1)
        ax.plot(y[:, j], pred[:, j], ".", alpha=0.6, label="samples")
        lo = float(min(y[:, j].min(), pred[:, j].min()))
        hi = float(max(y[:, j].max(), pred[:, j].max()))
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=1.0, label="y = x")
        rmse = float(np.sqrt(np.mean((y[:, j] - pred[:, j]) ** 2)))
        name = labels[j]
        ax.set_title(f"{name}: R² {r2[j]:.4f}, RMSE {rmse:.3g}")
        ax.set_xlabel(f"measured {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left")
    return _finish(fig, path)


# -- classification ----------------------------------------------------------------------------


def plot_confusion(
    matrix: Any,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = "Confusion matrix",
    path: str | os.PathLike | None = None,
) -> Figure:
    """A confusion matrix as a labelled grid of counts (rows: true class, columns: predicted).

    **Arguments:**

    - `matrix`: counts of shape `(K, K)`, e.g. from the metrics' `confusion_matrix`: entry
      `[i, j]` is the number of samples of class `i` predicted as class `j`.
    - `class_names`: `K` names for the ticks (default `0 .. K-1`).
    - `title`: the axes' title; the accuracy `trace / sum` is appended.
    - `path`: if given, also save the figure there as a PNG.

    **Returns:** the Figure: one axes with the image, one text per cell, tick labels the class
    names.

    ```python
    fig = plot_confusion([[10, 2], [1, 12]], ["cat", "dog"], path="out/confusion.png")
    ```
    """
    cm = np.asarray(matrix)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"matrix must be square, shape (K, K) with K >= 1; got {cm.shape}.")
    if not np.issubdtype(cm.dtype, np.number) or np.any(cm < 0):
        raise ValueError("matrix must hold counts >= 0.")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names but the matrix has {k} classes.")
    size = min(4.0 + 0.45 * k, 16.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax: Axes = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 30:
        top = cm.max() if cm.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if top and cm[i, j] > top / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color)
    if max(map(len, names)) > 3:
        ax.set_xticks(range(k), names, rotation=45, ha="right")
    else:
        ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = cm.sum()
    acc = f"accuracy {np.trace(cm) / total:.3f} ({total} samples)" if total else "no samples"
    ax.set_title(f"{title}: {acc}" if title else acc)
    return _finish(fig, path)
