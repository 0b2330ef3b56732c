"""`eqx-ffn fit`'s choices about the table: regression or classification, and the row split."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import UsageError, defer

MAX_CLASSES = 1000
MAX_AUTO_CLASSES = 20
"""`--task auto` classifies whole numbers of at most this many values (and one per 5 rows)."""


def split_rows(
    n: int, test_fraction: float, validation_fraction: float, seed: int
) -> tuple[Any, Any, Any]:
    """`eqx-ffn fit`'s split of `n` rows: `(train, validation, test)` row indices.

    The rows are shuffled with `numpy.random.default_rng(seed)`; the first
    `round(test_fraction * n)` form the test set, the next `round(validation_fraction * rest)`
    the validation set, the others the training set (in shuffled order).
    """
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(test_fraction * n)
    n_val = round(validation_fraction * (n - n_test))
    n_train = n - n_test - n_val
    if n_test < 1 or n_train < 1 or (validation_fraction > 0 and n_val < 1):
        raise UsageError(
            f"the table has {n} rows: --test-fraction {test_fraction} and --validation-fraction "
            f"{validation_fraction} leave {n_train} training, {n_val} validation and {n_test} "
            "test rows; training and test need at least one row each (and validation one when "
            "its fraction is > 0). Use more rows or other fractions."
        )
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def _class_value(v: Any) -> Any:
    """A numeric class label as JSON keeps it: an int when it is whole, else a float."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _way_out(text: bool) -> str:
    if text:
        return "name the column of class labels with --y-cols"
    return "to predict numbers, pass --task regress (or name the label column with --y-cols)"


def _check_classes(labels: Any, name: str, values: list[Any], text: bool) -> None:
    """Refuse labels of one class, of more than `MAX_CLASSES`, continuous or an id column (the
    rule `FFNClassifier` applies too): `UsageError`, one line."""
    from .._targets import check_classification_target

    k = len(values)
    if k < 2:
        raise UsageError(
            f"y column {name!r} holds a single class ({values[0]!r}); classification needs at "
            "least two"
        )
    if k > MAX_CLASSES:
        raise UsageError(
            f"y column {name!r} holds {k:,} distinct labels, more than {MAX_CLASSES} classes; "
            "is it the right column? (--task regress fits numbers)"
        )
    try:
        check_classification_target(
            labels, argument=f"y column {name!r}", how_to_regress=_way_out(text)
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _could_classify(labels: Any, classes: Any) -> bool:
    """Whether numbers regressed by `--task auto` were a close choice: whole numbers of 2 to
    `2 * MAX_AUTO_CLASSES` values that the shared rule accepts as classes (then a note says how
    to choose the other way; 200 values of 2 rows each are not close)."""
    import numpy as np

    from .._targets import check_classification_target

    if not 2 <= len(classes) <= 2 * MAX_AUTO_CLASSES or not np.all(classes == np.round(classes)):
        return False
    try:
        check_classification_target(labels, how_to_regress="")
    except ValueError:
        return False
    return True


def decide_task(args: argparse.Namespace, table: Any) -> tuple[str, Any, list[Any]]:
    """`(task, y, classes)`: `y` the integer class codes `(N,)` for classification.

    `--task auto` classifies text labels, and whole numbers of at most `MAX_AUTO_CLASSES`
    values (at most one per 5 rows); else it regresses. A note says which for text and whole
    numbers, and for a regression only where the choice was close (`_could_classify`); a
    classification that the shared rule (`eqx_ffn._targets`) refuses stops with one line.
    """
    import numpy as np

    y = table.y
    name = table.y_names[0] if table.y_names else "y"
    if args.task == "regress":
        return "regress", y, []
    if not table.text_labels and y.shape[1] != 1:
        if args.task == "classify":
            raise UsageError(
                f"--task classify takes one label column; --y-cols names {y.shape[1]} "
                f"({', '.join(table.y_names)})"
            )
        return "regress", y, []
    labels = y[:, 0]
    classes, codes = np.unique(labels, return_inverse=True)
    k = len(classes)
    if table.text_labels:
        values: list[Any] = [str(c) for c in classes]
        why = f"y column {name!r} holds text labels"
    else:
        values = [_class_value(c) for c in classes]
        whole = bool(np.all(classes == np.round(classes)))
        few = k <= min(MAX_AUTO_CLASSES, max(2, table.n_rows // 5))
        if args.task == "auto" and not (whole and few and k >= 2):
            if _could_classify(labels, classes):
                defer(
                    args,
                    f"note: regression: y column {name!r} holds {k} distinct whole numbers "
                    "(pass --task classify to treat them as class labels)",
                )
            return "regress", y, []
        why = f"y column {name!r} holds {k} distinct integers"
    _check_classes(labels, name, values, bool(table.text_labels))
    if args.task == "auto":
        defer(args, f"note: classification: {why} ({k} classes; pass --task regress to override)")
    return "classify", codes.astype(np.int32), values
