"""`FFNClassifier`: a feedforward network classifier with scikit-learn's estimator interface."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from .._targets import check_classification_target
from ._base import _FFNEstimator
from ._docs import ATTRIBUTES_DOC, PARAMETERS_DOC, PARTIAL_FIT_DOC
from ._inputs import check_labels, validated
from ._partial import stochastic_only

__all__ = ["FFNClassifier"]


def _label_codes(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The index in `classes` (sorted) of each label of `y`.

    **Raises:** `ValueError` naming the labels of `y` that are not in `classes`.
    """
    kinds = {classes.dtype.kind, y.dtype.kind}
    if kinds <= set("biuf") or kinds <= set("US"):
        pos = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        found = classes[pos] == y
    else:  # object arrays: compare as Python values (1 and "1" are different labels)
        index = {v: i for i, v in enumerate(classes.tolist())}
        pos = np.array([index.get(v, -1) for v in y.tolist()], dtype=np.int64)
        found = pos >= 0
    if not np.all(found):
        unseen = list(dict.fromkeys(y[~np.asarray(found)].tolist()))
        raise ValueError(
            f"y holds labels that are not in classes_ {classes.tolist()}: {unseen[:5]}"
            f"{' ...' if len(unseen) > 5 else ''}. partial_fit's first call fixes the classes "
            "(its `classes` argument): pass every label there, or call fit to start anew."
        )
    return pos.astype(np.int32)


def _check_classes(classes: Any) -> np.ndarray:
    """`partial_fit`'s `classes`, as scikit-learn's sorted unique labels (at least 2).

    **Raises:** `ValueError` naming `classes`.
    """
    try:
        out = np.asarray(unique_labels(np.asarray(classes)))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"classes must be an array of class labels of one type (all numbers or all text), "
            f"e.g. np.unique(y_all); got {classes!r} ({e})."
        ) from None
    if len(out) < 2:
        raise ValueError(f"classes must hold at least 2 labels; got {out.tolist()}.")
    return out


def _check_target(y: np.ndarray) -> None:
    """Refuse a target that is not class labels: scikit-learn's rule, and the one `eqx-ffn fit
    --task classify` applies (`eqx_ffn._targets`: clearly continuous, or an id column).

    **Raises:** `ValueError`; for a continuous target it begins with scikit-learn's words
    ("Unknown label type: continuous"), followed by the counts and the way out.
    """
    text = bool(y.size) and isinstance(y[0], str)
    way_out = (
        "check that y is the column of class labels"
        if text
        else "to predict numbers, use FFNRegressor"
    )
    try:
        check_classification_target(y, argument="y", how_to_regress=way_out)
    except ValueError as e:
        kind = type_of_target(y, input_name="y")
        if kind.startswith("continuous"):
            raise ValueError(f"Unknown label type: {kind}. {e}") from None
        raise
    check_classification_targets(y)


class FFNClassifier(ClassifierMixin, _FFNEstimator):
    """A feedforward network classifier with scikit-learn's estimator interface.

    Trains an `eqx_ffn.FFN` with one output per class on the softmax cross-entropy with
    `eqx_ffn.fit`; labels may be any values scikit-learn accepts (strings, integers, ...), two
    classes or more. `predict_proba` is the softmax of the network's outputs (two columns for
    two classes).
    """

    __doc__ = (
        (__doc__ or "")
        + PARAMETERS_DOC
        + ATTRIBUTES_DOC.format(
            what="the logits",
            scores="the negative validation log-loss per epoch, which early stopping watches "
            "(scikit-learn's MLPClassifier watches accuracy)",
            extra=", `classes_`, `n_outputs_`",
        )
        + PARTIAL_FIT_DOC
        + """
    ```python
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from eqx_ffn.sklearn import FFNClassifier

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0, stratify=y)
    clf = FFNClassifier(random_state=0).fit(x_train, y_train)
    print(clf.score(x_test, y_test), clf.predict_proba(x_test[:2]).sum(axis=1))   # 1.0 [1. 1.]
    ```
    """
    )

    _classifier = True
    _record_name: ClassVar[str] = "FFNClassifier"
    _record_keys: ClassVar[tuple[str, ...]] = ("classes", "classes_dtype")
    classes_: np.ndarray

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FFNClassifier:
        """Train on `X` (N, n_features) and labels `y` (N,).

        **Arguments:** `X` (array-like or DataFrame), `y` (N,) labels of any type scikit-learn
        accepts, `sample_weight` (N,) >= 0 or None.

        **Returns:** `self`, fitted.
        """
        self._validate_params()
        check_labels(y)
        x, y_arr = validated(self, X, y)
        y_arr = np.asarray(column_or_1d(y_arr, warn=True))
        _check_target(y_arr)
        encoder = LabelEncoder().fit(y_arr)
        previous = getattr(self, "classes_", None) if hasattr(self, "model_") else None
        if self.warm_start and previous is not None:
            if not np.array_equal(previous, np.asarray(encoder.classes_)):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {previous}, `y` has "
                    f"{encoder.classes_}"
                )
        self.classes_ = np.asarray(encoder.classes_)
        if len(self.classes_) < 2:
            raise ValueError(
                f"FFNClassifier needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r})."
            )
        self.n_outputs_ = 1
        codes = encoder.transform(y_arr).astype(np.int32)
        return self._fit(x, codes, sample_weight, len(self.classes_))

    @stochastic_only
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> FFNClassifier:
        """Train one epoch on `X` (N, n_features) and labels `y` (N,), continuing from the
        current network and the optimizer's state (scikit-learn's `partial_fit`).

        The first call on an unfitted estimator initialises it from these data as `fit` would
        (`n_features_in_`, the scalers, the network) and needs `classes`: every label any
        call's `y` will hold (e.g. `np.unique(y_all)`), which become `classes_`; `y` need not
        hold them all. Later calls may omit `classes` (if given, it must equal `classes_`);
        their labels must be in `classes_`. Stochastic solvers only (an `AttributeError` for
        `solver="lbfgs"`); no early stopping. See the class docstring.

        **Arguments:** `X` (array-like or DataFrame), `y` (N,) labels, `sample_weight` (N,)
        >= 0 or None, `classes` (array-like of labels, or None after the first call).

        **Returns:** `self`.
        """
        self._validate_params()
        first = not hasattr(self, "model_")
        if classes is None and first:
            raise ValueError(
                "classes must be passed on the first call to partial_fit: every label the "
                "calls' y will hold, e.g. classes=np.unique(y_all)."
            )
        wanted = None if classes is None else _check_classes(classes)
        if wanted is not None and not first and not np.array_equal(wanted, self.classes_):
            raise ValueError(
                f"classes={wanted.tolist()} is not the same as the estimator's classes_ "
                f"{self.classes_.tolist()} (set by the first partial_fit or by fit). Call fit "
                "to train a new network."
            )
        check_labels(y)
        x, y_arr = validated(self, X, y, reset=first)
        y_arr = np.asarray(column_or_1d(y_arr, warn=True))
        check_classification_targets(y_arr)
        known = wanted if first else self.classes_
        assert known is not None
        codes = _label_codes(known, y_arr)
        self.classes_, self.n_outputs_ = known, 1
        return self._partial_fit(x, codes, sample_weight, len(known))

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        return -np.asarray(val_loss, np.float64)  # scikit-learn's "neg_log_loss"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities for `X` (N, n_features): shape (N, n_classes), columns in the
        order of `classes_`, rows summing to 1 (float64)."""
        logits = self._raw_predict(X)
        exp_shifted = np.exp(logits - np.max(logits, axis=1, keepdims=True))
        return exp_shifted / np.sum(exp_shifted, axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of `predict_proba`, computed stably: shape (N, n_classes)."""
        logits = self._raw_predict(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class for each row of `X`: shape (N,), values from `classes_`."""
        logits = self._raw_predict(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(logits, axis=1)]

    def _record_fields(self) -> dict[str, Any]:
        classes = self.classes_
        dtype = classes.dtype.str if classes.dtype != object else "object"
        return {"classes": classes.tolist(), "classes_dtype": dtype}
