"""The estimator record a model file keeps besides the network (JSON values).

`eqx_ffn.sklearn.save` writes it in the file's metadata under `"eqx_ffn.sklearn"`: the
estimator's kind and parameters, its feature names, its training record, and its classes
(classifier) or the number of dimensions of `y` (regressor).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax.numpy as jnp
import numpy as np

__all__ = ["json_param", "record"]


def json_param(value: Any) -> tuple[bool, Any]:
    """`(storable, JSON value)` for an estimator parameter."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, numbers.Integral):
        return True, int(value)
    if isinstance(value, numbers.Real):
        return math.isfinite(value), float(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value):
        return True, [int(v) for v in value]
    if isinstance(value, (np.dtype, type)):
        try:
            return True, jnp.dtype(value).name
        except TypeError:
            return False, None
    return False, None


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def record(estimator: Any) -> dict[str, Any]:
    """The record of a fitted estimator.

    **Arguments:** `estimator`, a fitted `FFNRegressor` or `FFNClassifier`.

    **Returns:** a dict of JSON values; a parameter JSON cannot hold is named in `"left_out"`.
    """
    params, left_out = {}, []
    for name, value in estimator.get_params(deep=False).items():
        ok, stored = json_param(value)
        if ok:
            params[name] = stored
        else:
            left_out.append(name)
    scores = estimator.validation_scores_
    out: dict[str, Any] = {
        "estimator": estimator._record_name,
        "params": params,
        "left_out": left_out,
        "n_features_in": int(estimator.n_features_in_),
        "n_iter": int(estimator.n_iter_),
        "loss_curve": [_finite_or_none(v) for v in estimator.loss_curve_],
        "loss": _finite_or_none(estimator.loss_),
        "best_loss": _finite_or_none(estimator.best_loss_),
        "validation_scores": None if scores is None else [_finite_or_none(v) for v in scores],
        "best_validation_score": _finite_or_none(estimator.best_validation_score_),
    }
    names = getattr(estimator, "feature_names_in_", None)
    out["feature_names_in"] = None if names is None else [str(v) for v in names]
    out.update(estimator._record_fields())
    return out
