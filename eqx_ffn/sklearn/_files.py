"""`save` and `load` for the estimators: one `eqx_ffn` model file with the estimator's record."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from sklearn.utils.validation import check_is_fitted

from ..io._model_file import ModelFileError
from ..io._model_file import load as _load_model
from ..io._model_file import read_header as _read_header
from ..io._model_file import save as _save_model
from ._classifier import FFNClassifier
from ._record import RecordError, restore
from ._regressor import FFNRegressor

__all__ = ["load", "save"]

_ESTIMATORS = {"FFNRegressor": FFNRegressor, "FFNClassifier": FFNClassifier}
_KEY = "eqx_ffn.sklearn"  # the record's key in the file's metadata


def save(path: str | os.PathLike, estimator: FFNRegressor | FFNClassifier) -> Path:
    """Save a fitted estimator to one `eqx_ffn` model file.

    The file is the one `eqx_ffn.save(path, estimator.model_)` writes (so `eqx_ffn.load` reads
    the network), with the estimator's parameters, classes, feature names and training record
    in its metadata (under `"eqx_ffn.sklearn"`). A parameter that JSON cannot hold (an optax
    solver, a `RandomState`) is left out; `load` then gives it its default and says so.

    **Arguments:** `path`; `estimator`, a fitted `FFNRegressor` or `FFNClassifier`.

    **Returns:** the path written.

    **Raises:** `TypeError` for another object; scikit-learn's `NotFittedError` for an estimator
    that is not fitted (nothing is written).

    ```python
    eqx_ffn.sklearn.save("clf.eqx", clf)
    same = eqx_ffn.sklearn.load("clf.eqx")    # predicts as clf does
    ```
    """
    if not isinstance(estimator, (FFNRegressor, FFNClassifier)):
        raise TypeError(
            f"save expects a fitted FFNRegressor or FFNClassifier; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    model, metadata = estimator.__eqx_ffn_save__()
    return _save_model(path, model, metadata=metadata)


def load(path: str | os.PathLike) -> FFNRegressor | FFNClassifier:
    """Load an estimator written by `eqx_ffn.sklearn.save`: fitted, ready to predict.

    The file is treated as untrusted, as `eqx_ffn.load` treats it: the network is read and
    checked, then every field of the estimator record is checked, against the network where the
    network implies it (its kind, inputs, outputs, hidden layers and activation), before the
    estimator is built.

    **Arguments:** `path`, the file.

    **Returns:** the `FFNRegressor` or `FFNClassifier` that was saved, fitted.

    **Raises:** `eqx_ffn.ModelFileError` (a `ValueError`) if the file holds a network without an
    estimator's record (load it with `eqx_ffn.load`), or a record that is invalid or disagrees
    with its network (the message names the file, the field, what it holds and what the network
    implies); otherwise as `eqx_ffn.load` does.
    """
    path = Path(path)
    metadata = _read_header(path).get("metadata")
    if not isinstance(metadata, dict) or _KEY not in metadata:
        raise ModelFileError(
            f"{path} holds a network but no scikit-learn estimator: load it with eqx_ffn.load."
        )
    raw = metadata[_KEY]
    model = _load_model(path)
    try:
        estimator = restore(raw, model, _ESTIMATORS)
    except RecordError as e:
        raise ModelFileError(f"Cannot load {path}: {e}.") from None
    left_out = raw["left_out"]
    if left_out:
        warnings.warn(
            f"{path}: the parameter(s) {', '.join(left_out)} could not be stored and have their "
            "default values; the network itself is the saved one.",
            UserWarning,
            stacklevel=2,
        )
    return estimator
