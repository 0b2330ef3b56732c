"""scikit-learn's `MLPRegressor` started from the lecture's initial parameters.

Imports only NumPy and scikit-learn (the whole-process benchmark runs it in a bare process).
Starting from the same standard-normal parameters as every other runner makes the final MSEs
comparable; it relies on `warm_start=True`, which continues from `coefs_` / `intercepts_`. No L2
penalty (`alpha=0`), as in the lecture. scikit-learn's loss is `mean((y - pred)**2) / 2`, so its
reported losses are doubled to give the MSE.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np


def make(solver: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray, max_iter: int) -> Any:
    """An `MLPRegressor(hidden_layer_sizes=(16,), activation="tanh")` set to the lecture's init.

    `solver="adam"`: learning rate 1e-2, full batch (one step per epoch), no early stop, so it
    runs exactly `max_iter` epochs = steps. `solver="lbfgs"`: at most `max_iter` iterations,
    `tol=0` (scipy's own `ftol` still stops it once the loss stalls).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    n = x.shape[0]
    hidden = int(np.shape(params["W1"])[0])
    est = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        activation="tanh",
        solver=solver,
        alpha=0.0,
        batch_size=n,
        learning_rate_init=1e-2,
        max_iter=1,
        shuffle=False,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=0,
        warm_start=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y.ravel())  # creates coefs_ and the rest; overwritten just below
    est.coefs_ = [
        np.asarray(params["W1"], np.float64).T.copy(),
        np.asarray(params["W2"], np.float64).T.copy(),
    ]
    est.intercepts_ = [
        np.asarray(params["b1"], np.float64).copy(),
        np.asarray(params["b2"], np.float64).copy(),
    ]
    if hasattr(est, "loss_curve_"):
        est.loss_curve_ = []
    est.max_iter = int(max_iter)
    return est


def train(est: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float, int, np.ndarray | None]:
    """Fit; returns `(seconds, final MSE, iterations, per-epoch MSE curve or None)`."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(x, y.ravel())
        seconds = time.perf_counter() - t0
    pred = est.predict(x).reshape(y.shape)
    mse = float(np.mean((np.asarray(y, np.float64) - pred) ** 2))
    curve = getattr(est, "loss_curve_", None)
    curve = None if curve is None or len(curve) == 0 else 2.0 * np.asarray(curve)
    return seconds, mse, int(est.n_iter_), curve


def lbfgs_iterations_to(
    params: dict[str, Any], x: np.ndarray, y: np.ndarray, threshold: float, cap: int, refine: bool
) -> tuple[int | None, int]:
    """Fewest L-BFGS iterations (`max_iter`) that reach MSE <= threshold.

    scikit-learn records no per-iteration loss for L-BFGS, so this refits with a doubling
    `max_iter` (then bisects when `refine`). Returns `(iterations or None, fits run)`.
    """

    def reaches(m: int) -> bool:
        return train(make("lbfgs", params, x, y, m), x, y)[1] <= threshold

    fits = 0
    lo, hi = 0, 16
    while True:
        fits += 1
        if reaches(hi):
            break
        lo = hi
        if hi >= cap:
            return None, fits
        hi = min(2 * hi, cap)
    while refine and hi - lo > 1:
        mid = (lo + hi) // 2
        fits += 1
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return hi, fits
