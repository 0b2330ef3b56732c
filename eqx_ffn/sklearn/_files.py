"""`save` and `load` for the estimators: one `eqx_ffn` model file with the estimator's record."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..io._model_file import load as _load_model
from ..io._model_file import read_header as _read_header
from ..io._model_file import save as _save_model
from ..model._standardize import Standardized
from ._classifier import FFNClassifier
from ._regressor import FFNRegressor

__all__ = ["load", "save"]

_ESTIMATORS = {"FFNRegressor": FFNRegressor, "FFNClassifier": FFNClassifier}


def save(path: str | os.PathLike, estimator: FFNRegressor | FFNClassifier) -> Path:
    """Save a fitted estimator to one `eqx_ffn` model file.

    The file is the one `eqx_ffn.save(path, estimator.model_)` writes (so `eqx_ffn.load` reads
    the network), with the estimator's parameters, classes, feature names and training record
    in its metadata (under `"eqx_ffn.sklearn"`). A parameter that JSON cannot hold (an optax
    solver, a `RandomState`) is left out; `load` then gives it its default and says so.

    **Arguments:** `path`; `estimator`, a fitted `FFNRegressor` or `FFNClassifier`.

    **Returns:** the path written.

    ```python
    eqx_ffn.sklearn.save("clf.eqx", clf)
    same = eqx_ffn.sklearn.load("clf.eqx")    # predicts as clf does
    ```
    """
    if not isinstance(estimator, (FFNRegressor, FFNClassifier)):
        raise TypeError(
            f"save expects a fitted FFNRegressor or FFNClassifier; got {type(estimator).__name__}."
        )
    model, metadata = estimator.__eqx_ffn_save__()
    return _save_model(path, model, metadata=metadata)


def load(path: str | os.PathLike) -> FFNRegressor | FFNClassifier:
    """Load an estimator written by `eqx_ffn.sklearn.save`: fitted, ready to predict.

    **Raises:** `ValueError` if the file holds a network without an estimator's record (load it
    with `eqx_ffn.load`); `eqx_ffn.ModelFileError` as `eqx_ffn.load` does.
    """
    record = _read_header(path).get("metadata", {}).get("eqx_ffn.sklearn")
    if not isinstance(record, dict) or record.get("estimator") not in _ESTIMATORS:
        raise ValueError(
            f"{path} holds a network but no scikit-learn estimator: load it with eqx_ffn.load."
        )
    cls = _ESTIMATORS[record["estimator"]]
    params = dict(record["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if record["left_out"]:
        warnings.warn(
            f"{path}: the parameter(s) {', '.join(record['left_out'])} could not be stored and "
            "have their default values; the network itself is the saved one.",
            UserWarning,
            stacklevel=2,
        )
    est = cls(**params)
    model = _load_model(path)
    assert isinstance(model, Standardized)
    est.model_ = model
    est.n_features_in_ = record["n_features_in"]
    if record["feature_names_in"] is not None:
        est.feature_names_in_ = np.asarray(record["feature_names_in"], dtype=object)
    est.n_iter_ = record["n_iter"]
    nan = float("nan")
    est.loss_curve_ = [nan if v is None else v for v in record["loss_curve"]]
    est.loss_ = nan if record["loss"] is None else record["loss"]
    est.best_loss_ = record["best_loss"]
    scores = record["validation_scores"]
    est.validation_scores_ = None if scores is None else [nan if v is None else v for v in scores]
    est.best_validation_score_ = record["best_validation_score"]
    if isinstance(est, FFNClassifier):
        est.classes_ = np.asarray(record["classes"], dtype=np.dtype(record["classes_dtype"]))
        est.n_outputs_ = 1
    else:
        est._y_ndim = record["y_ndim"]
        est.n_outputs_ = int(model.out_size)
    return est
