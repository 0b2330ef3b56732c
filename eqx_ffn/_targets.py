"""The one rule for a classification target, shared by `eqx-ffn fit` and `FFNClassifier`.

A column of class labels holds text, or whole numbers; each class has several rows. Two kinds of
column are refused, with the numbers and the way out (a parameter, so that the command line can
say "pass --task regress" and the estimators "use FFNRegressor"):

- **continuous**: numbers that are not whole (or not finite), e.g. a measured quantity: one class
  per distinct value, a classifier that cannot generalise (test accuracy near 0);
- **an id column**: at least `MIN_CLASSES_FOR_ID_CHECK` classes, most of which occur on a single
  row (e.g. a row number or a name): there is nothing to learn about such a class.

Only NumPy is imported.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

__all__ = ["MIN_CLASSES_FOR_ID_CHECK", "check_classification_target", "class_counts"]

MIN_CLASSES_FOR_ID_CHECK = 3
"""The id-column rule applies from this many classes on (two rows of two classes is a toy problem,
not an id column)."""


def _numbers(labels: np.ndarray) -> np.ndarray | None:
    """`labels` as float64 when they are real numbers (not bools, not text), else `None`."""
    kind = labels.dtype.kind
    if kind in "iuf":
        return labels.astype(np.float64)
    if kind == "O" and labels.size:
        if all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
            for v in labels
        ):
            return labels.astype(np.float64)
    return None


def class_counts(y: Any) -> np.ndarray:
    """How many rows each distinct label of `y` (shape `(N,)` or `(N, 1)`) has, in no set order.

    Works for numbers, text, and object arrays mixing types (no sorting is needed).
    """
    labels = _labels(y, "y")
    if labels.dtype.kind == "O":
        return np.asarray(list(Counter(labels.tolist()).values()), dtype=np.int64)
    return np.unique(labels, return_counts=True)[1].astype(np.int64)


def _labels(y: Any, argument: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{argument} must hold one label per row, shape (N,) or (N, 1); got shape "
            f"{labels.shape}."
        )
    return labels


def check_classification_target(y: Any, *, argument: str = "y", how_to_regress: str) -> None:
    """Refuse a classification target that is clearly continuous or an id column.

    **Arguments:**

    - `y`: the labels, shape `(N,)` or `(N, 1)`: text, whole numbers, or anything hashable.
    - `argument`: how the message names `y`, e.g. `"y column 'price'"` or `"y"`.
    - `how_to_regress`: the way out, ending the message, e.g. `"to predict numbers, pass --task
      regress"` or `"to predict numbers, use FFNRegressor"`.

    **Returns:** `None`.

    **Raises:** `ValueError` naming `argument`, with the counts that decided (non-whole values,
    distinct labels, classes of a single row) and `how_to_regress`:

    - when `y` holds numbers of which at least one is not a whole number or not finite;
    - when `y` has at least `MIN_CLASSES_FOR_ID_CHECK` classes and more than half of them
      occur on a single row.
    """
    labels = _labels(y, argument)
    n = labels.shape[0]
    numbers = _numbers(labels)
    if numbers is not None:
        bad = ~(np.isfinite(numbers) & (numbers == np.round(numbers)))
        n_bad = int(bad.sum())
        if n_bad:
            k = np.unique(numbers).size
            example = float(numbers[np.argmax(bad)])
            raise ValueError(
                f"{argument} looks continuous, not like class labels: {n_bad:,} of its {n:,} "
                f"values are not whole numbers (the first is {example:g}) and it holds {k:,} "
                f"distinct values; {how_to_regress}"
            )
    counts = class_counts(labels)
    k = counts.size
    singles = int((counts == 1).sum())
    if k >= MIN_CLASSES_FOR_ID_CHECK and 2 * singles > k:
        raise ValueError(
            f"{argument} looks like an id column, not class labels: {k:,} distinct labels in "
            f"{n:,} rows, {singles:,} of them on a single row (a classifier needs several rows "
            f"of each class); {how_to_regress}"
        )
