"""The estimators' checks of what `fit` and `predict` are given: `X`, `y`, `sample_weight`."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import _check_sample_weight, validate_data

__all__ = ["sample_weight", "validated"]


def validated(estimator: Any, X: Any, y: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """`validate_data` for `fit`: float64 or float32 `X`, and `y`.

    Sets the estimator's `n_features_in_` and `feature_names_in_`.

    **Arguments:** `estimator`, `X`, `y`, and `validate_data`'s keywords.

    **Returns:** `(x, y)` as NumPy arrays.
    """
    x, y = validate_data(estimator, X, y, dtype=(np.float64, np.float32), **kwargs)
    return np.asarray(x), np.asarray(y)


def sample_weight(weight: Any, x: np.ndarray) -> np.ndarray | None:
    """`sample_weight` as float64 of shape (N,), or None: >= 0 and not zero everywhere.

    **Arguments:** `weight` (None, a number or an array-like of N values), `x` (N, d).

    **Returns:** float64 array (N,), or None for None.
    """
    if weight is None:
        return None
    w = _check_sample_weight(weight, x, dtype=np.float64)
    if np.any(w < 0):
        raise ValueError("sample_weight must be >= 0.")
    if not np.any(w > 0):
        raise ValueError("sample_weight is zero everywhere: nothing to fit.")
    return w
