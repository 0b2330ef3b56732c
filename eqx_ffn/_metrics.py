"""Scores of a fit: R², MSE, accuracy and the confusion matrix, on NumPy arrays.

One definition of each, used by the command line and the figures. They follow scikit-learn's
`r2_score`, `mean_squared_error`, `accuracy_score` and `confusion_matrix` (tested against them),
without needing scikit-learn; only NumPy is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["accuracy", "confusion_matrix", "mse", "r2_per_output", "r2_score"]


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if t.ndim != 2 or t.shape != p.shape or t.shape[0] == 0:
        raise ValueError(
            f"y_true and y_pred must have the same shape (N,) or (N, k) with N >= 1; got "
            f"{np.shape(y_true)} and {np.shape(y_pred)}."
        )
    return t, p


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error over all samples and outputs.

    **Arguments:** `y_true`, `y_pred` of the same shape `(N,)` or `(N, k)`.

    **Returns:** `mean((y_true - y_pred) ** 2)` as a float (scikit-learn's
    `mean_squared_error`, whose default averages the outputs' MSEs: the same number).

    ```python
    mse([1.0, 2.0], [1.0, 4.0])                # 2.0
    ```
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def r2_per_output(y_true: Any, y_pred: Any) -> np.ndarray:
    """The coefficient of determination R² of each output column.

    `R² = 1 - sum((y - ŷ)²) / sum((y - mean(y))²)` per column. A constant column (zero total
    sum of squares) gets 1.0 when predicted exactly and 0.0 otherwise, as in scikit-learn.

    **Arguments:** `y_true`, `y_pred` of the same shape `(N,)` or `(N, k)`.

    **Returns:** an array of shape `(k,)` (`(1,)` for one-dimensional input).
    """
    t, p = _pair(y_true, y_pred)
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    out = np.where(ss_res == 0, 1.0, 0.0)
    nonconstant = ss_tot > 0
    out[nonconstant] = 1.0 - ss_res[nonconstant] / ss_tot[nonconstant]
    return out


def r2_score(y_true: Any, y_pred: Any) -> float:
    """R², averaged over the output columns (scikit-learn's `r2_score` default).

    **Arguments:** `y_true`, `y_pred` of the same shape `(N,)` or `(N, k)`.

    **Returns:** the mean of `r2_per_output`, a float (1 is a perfect fit, 0 the mean's).

    ```python
    r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])  # 0.5
    ```
    """
    return float(np.mean(r2_per_output(y_true, y_pred)))


def _labels(a: Any, argument: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"{argument} must be one label per sample, shape (N,); got {arr.shape}.")
    return arr


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The share of samples whose predicted label equals the true one.

    **Arguments:** `y_true`, `y_pred`: labels (integers or strings) of shape `(N,)`.

    **Returns:** a float in `[0, 1]`.

    ```python
    accuracy([0, 1, 2, 2], [0, 1, 1, 2])       # 0.75
    ```
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {t.shape}, {p.shape}.")
    return float(np.mean(t == p))


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    **Arguments:**

    - `y_true`, `y_pred`: integer class indices `0 .. K-1`, shape `(N,)`.
    - `n_classes`: `K` (default: one more than the largest index seen).

    **Returns:** an int64 array `C` of shape `(K, K)`: `C[i, j]` is the number of samples of
    class `i` predicted as class `j` (rows true, columns predicted, as in scikit-learn).

    ```python
    confusion_matrix([0, 1, 1], [0, 1, 0])     # [[1, 0], [1, 1]]
    ```
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {t.shape}, {p.shape}.")
    for name, a in (("y_true", t), ("y_pred", p)):
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0:
            raise ValueError(f"{name} must hold class indices 0, 1, ...; got {a.dtype} {a[:5]}.")
    k = int(max(t.max(), p.max())) + 1 if n_classes is None else int(n_classes)
    if t.max() >= k or p.max() >= k:
        raise ValueError(f"class indices must be below n_classes={k}.")
    return np.bincount(t.astype(np.int64) * k + p, minlength=k * k).reshape(k, k)
