"""scikit-learn's stopping rules, applied to the losses `eqx_ffn.fit` records.

`_score_stop` is `MLPRegressor` / `MLPClassifier`'s early-stopping rule on validation scores;
`_epoch_means` turns per-step batch losses into scikit-learn's per-epoch `loss_curve_`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["_epoch_means", "_score_stop"]


def _score_stop(
    scores: Iterable[float], tol: float, n_iter_no_change: float
) -> tuple[int | None, int]:
    """scikit-learn's early-stopping rule on validation scores (higher is better).

    The score must beat `best + tol` to reset the count; the best model is the one of the
    highest score so far.

    **Arguments:** `scores` (one per epoch), `tol`, `n_iter_no_change` (an int or `inf`).

    **Returns:** `(stop_epoch or None, best_epoch)`, both 1-based.
    """
    best, best_epoch, count = -math.inf, 0, 0
    for i, score in enumerate(scores):
        count = count + 1 if score < best + tol else 0
        if score > best:
            best, best_epoch = score, i + 1
        if count > n_iter_no_change:
            return i + 1, best_epoch
    return None, best_epoch


def _epoch_means(step_losses: np.ndarray, n: int, batch_size: int) -> np.ndarray:
    """Per epoch, the mean of the batch losses weighted by batch length (scikit-learn's `loss_`).

    An epoch is `ceil(n / batch_size)` steps, the last batch the remainder; a last, partial
    epoch is dropped.

    **Arguments:** `step_losses` (one per step), `n` (samples), `batch_size`.

    **Returns:** float64 array, one mean per complete epoch.
    """
    spe = -(-n // batch_size)
    lens = np.full(spe, batch_size, dtype=np.float64)
    lens[-1] = n - (spe - 1) * batch_size
    epochs = len(step_losses) // spe
    per_step = np.asarray(step_losses[: epochs * spe], np.float64).reshape(epochs, spe)
    return per_step @ lens / n
