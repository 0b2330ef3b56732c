"""Scores of a simulation or prediction against the measured output, per output channel."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int

__all__ = ["fit_percent", "nrmse", "r2", "rmse"]


def _pair(y: Any, y_hat: Any, skip: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y, dtype=np.float64)
    p = np.asarray(y_hat, dtype=np.float64)
    t = t[:, None] if t.ndim == 1 else t
    p = p[:, None] if p.ndim == 1 else p
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(
            f"y and y_hat must have the same shape (T,) or (T, n_y); got {np.shape(y)} and "
            f"{np.shape(y_hat)}."
        )
    skip = check_int(skip, "skip", 0)
    if t.shape[0] - skip < 1:
        raise ValueError(f"skip={skip} leaves no sample of {t.shape[0]} to score.")
    t, p = t[skip:], p[skip:]
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError(
            "y and y_hat must be finite after the skipped samples (a k-step prediction's first "
            "samples are NaN: raise skip)."
        )
    return t, p


def rmse(y: Any, y_hat: Any, skip: int = 0) -> np.ndarray:
    """Root mean squared error per output, `sqrt(mean((y - y_hat)²))`, over samples `skip:`.

    **Arguments:** `y` (measured) and `y_hat` (simulated or predicted), shape `(T,)` or
    `(T, n_y)`; `skip`: samples left out at the start (the initialisation window).

    **Returns:** an array of shape `(n_y,)`, in the units of `y`.
    """
    t, p = _pair(y, y_hat, skip)
    return np.sqrt(np.mean((t - p) ** 2, axis=0))


def nrmse(y: Any, y_hat: Any, skip: int = 0) -> np.ndarray:
    """RMSE divided by the standard deviation of the measured `y`, per output (deepSI's NRMS)."""
    t, p = _pair(y, y_hat, skip)
    return np.sqrt(np.mean((t - p) ** 2, axis=0)) / np.std(t, axis=0)


def fit_percent(y: Any, y_hat: Any, skip: int = 0) -> np.ndarray:
    """MATLAB `compare`'s fit, `100 (1 - ||y - y_hat|| / ||y - mean(y)||)`, per output."""
    t, p = _pair(y, y_hat, skip)
    return 100.0 * (
        1.0 - np.linalg.norm(t - p, axis=0) / np.linalg.norm(t - t.mean(axis=0), axis=0)
    )


def r2(y: Any, y_hat: Any, skip: int = 0) -> np.ndarray:
    """Coefficient of determination `1 - SS_res / SS_tot`, per output."""
    t, p = _pair(y, y_hat, skip)
    return 1.0 - np.sum((t - p) ** 2, axis=0) / np.sum((t - t.mean(axis=0)) ** 2, axis=0)
