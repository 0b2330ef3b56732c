"""The estimators' checks of what `fit` and `predict` are given: `X`, `y`, `sample_weight`.

scikit-learn's `validate_data` does the work; these add what a user needs to fix their data:
the column of `X` that holds text, a regression target that holds text, labels that mix
numbers and text.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, validate_data

from .._validation import ArgumentTypeError

__all__ = [
    "check_finite_target",
    "check_labels",
    "check_numeric_target",
    "sample_weight",
    "validated",
    "validated_x",
]

_TEXT = "could not convert string to float"  # NumPy's words for text where a number was needed
_ENCODE = (
    "the network needs numbers: encode it first (e.g. sklearn.preprocessing.OneHotEncoder in a "
    "sklearn.compose.ColumnTransformer, or pandas.get_dummies), or drop it"
)


def validated(estimator: Any, X: Any, y: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """`validate_data` for `fit`: float64 or float32 `X`, and `y`.

    Sets the estimator's `n_features_in_` and `feature_names_in_`.

    **Arguments:** `estimator`, `X`, `y`, and `validate_data`'s keywords.

    **Returns:** `(x, y)` as NumPy arrays.

    **Raises:** scikit-learn's errors; a `ValueError` naming the column of `X` that holds text
    (or, in a DataFrame, dates or other values that are not numbers).
    """
    try:
        x, y = validate_data(estimator, X, y, dtype=(np.float64, np.float32), **kwargs)
    except (TypeError, ValueError) as e:
        _raise_text_column(X, e)
        raise
    return np.asarray(x), np.asarray(y)


def validated_x(estimator: Any, X: Any) -> np.ndarray:
    """`validate_data` for `predict`: `X` checked against the fit's features, as a NumPy array.

    **Raises:** scikit-learn's errors; a `ValueError` naming the column of `X` that holds text.
    """
    try:
        x = validate_data(estimator, X, reset=False, dtype=(np.float64, np.float32))
    except (TypeError, ValueError) as e:
        _raise_text_column(X, e)
        raise
    return np.asarray(x)


def _not_a_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return True
    return False


def _raise_text_column(X: Any, error: Exception) -> None:
    """Re-raise NumPy's "could not convert string to float" (or, for a DataFrame, any failure
    to convert a column to numbers) naming the column of `X` at fault and the fix."""
    frame = hasattr(X, "columns") and hasattr(X, "dtypes")
    if _TEXT not in str(error) and not frame:
        return
    if frame:  # a DataFrame: the column by its name
        for i, (name, dtype) in enumerate(zip(X.columns, X.dtypes, strict=True)):
            kind = getattr(dtype, "kind", "O")
            if kind in "biufc":
                continue
            column = np.asarray(X.iloc[:, i], dtype=object)
            example = next((v for v in column if _not_a_number(v)), None)
            if example is None:
                continue
            if kind in "mM":
                raise ValueError(
                    f"X's column {name!r} holds dates or durations ({example!r}, dtype {dtype}); "
                    "the network needs numbers: convert it first (e.g. to seconds since the "
                    "first row), or drop it."
                ) from error
            what = "text" if isinstance(example, str) else "values that are not numbers"
            raise ValueError(
                f"X's column {name!r} holds {what} ({example!r}, dtype {dtype}); {_ENCODE}."
            ) from error
        return
    try:
        array = np.asarray(X, dtype=object)
    except (TypeError, ValueError):
        return
    if array.ndim != 2:
        return
    for j in range(array.shape[1]):
        example = next((v for v in array[:, j] if _not_a_number(v)), None)
        if example is not None:
            raise ValueError(
                f"X's column {j} (counting from 0) holds text ({example!r}); {_ENCODE}."
            ) from error


def _first_text_and_number(y: Any) -> tuple[Any, Any]:
    """The first text value and the first number among `y`'s values (None where absent)."""
    dtype = getattr(y, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "O") in "biufc":
        return None, 0  # numbers only
    try:
        values = np.asarray(y, dtype=object).ravel()
    except (TypeError, ValueError):
        return None, None  # ragged: scikit-learn says so
    text = next((v for v in values if isinstance(v, str)), None)
    number = next(
        (v for v in values if isinstance(v, numbers.Number) and not isinstance(v, bool)), None
    )
    return text, number


def _named(y: Any) -> str:
    name = getattr(y, "name", None)
    return f"y ({name!r})" if isinstance(name, str) else "y"


def check_numeric_target(y: Any, estimator: str) -> None:
    """Refuse a regression target that holds text which is not a number.

    **Arguments:** `y` (as given to `fit`), `estimator` (its name, for the message).

    **Raises:** `ValueError` naming `y`, the text, and the way out (a classifier for labels,
    a conversion for numbers stored as text).
    """
    if y is None:
        return
    text, number = _first_text_and_number(y)
    if text is None or not _not_a_number(text):
        return
    try:
        values = np.asarray(y, dtype=object).ravel()
    except (TypeError, ValueError):  # pragma: no cover - _first_text_and_number read it
        return
    bad = next(v for v in values if isinstance(v, str) and _not_a_number(v))
    mixed = f" mixed with numbers such as {number!r}" if number is not None else ""
    raise ValueError(
        f"{estimator} needs a numeric target, but {_named(y)} holds text such as {bad!r}{mixed}. "
        "To predict class labels, use FFNClassifier; for numbers stored as text, convert them "
        "first (e.g. y.astype(float))."
    )


def check_labels(y: Any) -> None:
    """Refuse class labels that mix numbers and text (`1` and `'1'` would be one class or two
    depending on how they were stored).

    **Raises:** `ArgumentTypeError` (a `TypeError` and a `ValueError`) naming `y`, one label of
    each type, and the fix.
    """
    if y is None:
        return
    text, number = _first_text_and_number(y)
    if text is not None and number is not None:
        raise ArgumentTypeError(
            f"{_named(y)} mixes numbers and text as class labels (e.g. {number!r} and {text!r}); "
            "make them one type: all text (e.g. y.astype(str)) or all numbers."
        )


def sample_weight(weight: Any, x: np.ndarray) -> np.ndarray | None:
    """`sample_weight` as float64 of shape (N,), or None: finite, >= 0, not zero everywhere.

    (scikit-learn's private `_check_sample_weight`, written with its public `check_array`.)

    **Arguments:** `weight` (None, a number or an array-like of N values), `x` (N, d).

    **Returns:** float64 array (N,), or None for None.
    """
    if weight is None:
        return None
    n = x.shape[0]
    if isinstance(weight, numbers.Number):  # one weight for every sample
        w = np.full(n, weight, dtype=np.float64)
    else:
        float64: Any = np.float64  # check_array's annotation says str; it takes a type
        try:
            w = check_array(
                weight, ensure_2d=False, dtype=float64, order="C", input_name="sample_weight"
            )
        except ValueError as e:
            if _TEXT not in str(e):
                raise
            raise ValueError(
                f"sample_weight holds text ({str(e).rsplit(': ', 1)[-1]}); expected numbers >= 0, "
                "one per sample."
            ) from e
        if w.ndim != 1:
            raise ValueError(
                f"sample_weight must be a number or hold one weight per sample, shape ({n},); "
                f"got shape {w.shape}."
            )
        if w.shape[0] != n:
            raise ValueError(
                f"sample_weight holds {w.shape[0]} weights for {n} samples; expected shape ({n},)."
            )
    if np.any(w < 0):
        raise ValueError("sample_weight must be >= 0.")
    if not np.any(w > 0):
        raise ValueError("sample_weight is zero everywhere: nothing to fit.")
    return w


def check_finite_target(y: np.ndarray) -> None:
    """Refuse a numeric regression target with missing or non-finite values (scikit-learn's
    `validate_data` lets a `None` in an object `y` through as NaN).

    **Raises:** `ValueError` naming `y`, how many values and the first row, and the fix.
    """
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(y), -1).any(axis=1))
        raise ValueError(
            f"y holds {int(bad.sum())} missing or non-finite value(s) (the first in row "
            f"{int(rows[0])}); drop those rows or fill them in first."
        )
