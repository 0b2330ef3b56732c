"""The estimator record a model file keeps besides the network (JSON values), and its check.

`eqx_ffn.sklearn.save` writes it in the file's metadata under `"eqx_ffn.sklearn"`: the
estimator's kind and parameters, its feature names, its training record, and its classes
(classifier) or the number of dimensions of `y` (regressor). `restore` treats a record read from
a file as untrusted: every field is checked, against the network where the network implies
it, before the estimator is built.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..model._ffn import FFN
from ..model._standardize import Standardized

__all__ = ["RecordError", "json_param", "record", "restore"]

COMMON_FIELDS: tuple[str, ...] = (
    "estimator",
    "params",
    "left_out",
    "n_features_in",
    "n_iter",
    "loss_curve",
    "loss",
    "best_loss",
    "validation_scores",
    "best_validation_score",
    "feature_names_in",
)
"""The fields of every record; each estimator class adds its `_record_keys`."""

_MAX_LABEL = 1024  # characters in a stored class label's dtype (a '<U' itemsize / 4)


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


# -- reading a record back ---------------------------------------------------------------------


class RecordError(ValueError):
    """A field of an estimator record that is invalid or disagrees with its network."""

    def __init__(self, field: str, holds: str, implies: str):
        super().__init__(f"the estimator record's field {field!r} holds {holds}, but {implies}")


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def restore(raw: Any, model: Any, estimators: Mapping[str, type]) -> Any:
    """The fitted estimator a record read from a file describes, around its network `model`.

    **Arguments:** `raw` (the record as read), `model` (the network the file holds),
    `estimators` (record name -> estimator class).

    **Returns:** the estimator, fitted.

    **Raises:** `RecordError` naming the first field that is missing, unknown, invalid, or
    disagrees with the network (the network's kind, inputs, outputs and hidden layers).
    """
    if not isinstance(raw, dict):
        raise RecordError("eqx_ffn.sklearn", _show(raw), "expected a JSON object")
    name = raw.get("estimator")
    if not isinstance(name, str) or name not in estimators:
        kinds = " or ".join(repr(k) for k in estimators)
        raise RecordError("estimator", _show(name), f"expected {kinds}")
    cls = estimators[name]
    fields = COMMON_FIELDS + cls._record_keys
    for field in fields:
        if field not in raw:
            raise RecordError(
                field, "nothing (the field is missing)", f"every {name} record has it"
            )
    for field in raw:
        if field not in fields:
            raise RecordError(field, _show(raw[field]), f"{name} records have no such field")
    ffn = _network(model, name, classifier=cls._classifier)
    est = _parameters(cls, raw["params"], raw["left_out"])
    _matches_network(est, model, ffn)
    n_in = _features(raw["n_features_in"], raw["feature_names_in"], ffn.in_size)
    _training(raw)
    if cls._classifier:
        classes = _classes(raw["classes"], raw["classes_dtype"], ffn.out_size)
        est.classes_ = classes
        est.n_outputs_ = 1
    else:
        y_ndim = raw["y_ndim"]
        if not _is_int(y_ndim) or y_ndim not in (1, 2):
            raise RecordError("y_ndim", _show(y_ndim), "expected 1 or 2 (a 1-D or 2-D y)")
        if y_ndim == 1 and ffn.out_size != 1:
            raise RecordError(
                "y_ndim", "1 (a 1-D y)", f"the network has {ffn.out_size} outputs (y is 2-D)"
            )
        est._y_ndim = y_ndim
        est.n_outputs_ = int(ffn.out_size)

    nan = math.nan
    est.model_ = model
    est.n_features_in_ = n_in
    if raw["feature_names_in"] is not None:
        est.feature_names_in_ = np.asarray(raw["feature_names_in"], dtype=object)
    est.n_iter_ = raw["n_iter"]
    est.loss_curve_ = [nan if v is None else float(v) for v in raw["loss_curve"]]
    est.loss_ = nan if raw["loss"] is None else float(raw["loss"])
    best = raw["best_loss"]
    est.best_loss_ = None if best is None else float(best)
    scores = raw["validation_scores"]
    est.validation_scores_ = None if scores is None else [nan if v is None else v for v in scores]
    best = raw["best_validation_score"]
    est.best_validation_score_ = None if best is None else float(best)
    return est


def _network(model: Any, name: str, classifier: bool) -> FFN:
    """The FFN inside the `Standardized` network every estimator saves."""
    if not isinstance(model, Standardized) or not isinstance(model.model, FFN):
        kind = f"a bare {type(model).__name__}"
        if isinstance(model, Standardized):
            kind = f"a Standardized {type(model.model).__name__}"
        raise RecordError(
            "estimator",
            repr(name),
            f"the network is {kind}; an estimator's network is a Standardized FFN",
        )
    if classifier and model.y_scaler is not None:
        raise RecordError(
            "estimator",
            repr(name),
            "the network scales its outputs (a y scaler), which a classifier's logits never have",
        )
    if model.model.final_activation_name != "identity":
        raise RecordError(
            "estimator",
            repr(name),
            f"the network's final activation is {model.model.final_activation_name!r}; an "
            "estimator's network has none (identity)",
        )
    return model.model


ADDED_PARAMETERS = frozenset({"warm_start"})
"""Estimator parameters newer than the record format: a record without them loads with their
defaults."""


def _parameters(cls: type, params: Any, left_out: Any) -> Any:
    """An estimator of class `cls` with the stored parameters (each checked)."""
    names = set(cls().get_params(deep=False))
    if not isinstance(left_out, list) or not all(isinstance(n, str) for n in left_out):
        raise RecordError("left_out", _show(left_out), "expected a list of parameter names")
    for i, n in enumerate(left_out):
        if n not in names:
            raise RecordError("left_out", _show(left_out), f"{n!r} is not a parameter")
        if n in left_out[:i]:
            raise RecordError("left_out", _show(left_out), f"expected distinct names ({n!r} twice)")
    if not isinstance(params, dict):
        raise RecordError("params", _show(params), "expected a JSON object of parameters")
    for n, value in params.items():
        if n not in names:
            raise RecordError(
                "params", f"{n!r} = {_show(value)}", f"{cls.__name__} has no such parameter"
            )
        if n in left_out:
            raise RecordError("params", repr(n), "left_out says it could not be stored")
    # parameters added after a file was written take their defaults
    lacking = sorted(names - set(params) - set(left_out) - ADDED_PARAMETERS)
    if lacking:
        raise RecordError(
            "params", f"no {lacking[0]!r}", "each parameter is stored or named in left_out"
        )
    values = dict(params)
    if isinstance(values.get("hidden_layer_sizes"), list):
        values["hidden_layer_sizes"] = tuple(values["hidden_layer_sizes"])
    for n, value in values.items():  # one at a time, so that the message names it
        try:
            alone = cls(**{n: value})
            alone._validate_params()
            alone._hidden_sizes()
            alone._compute_dtype()
        except (TypeError, ValueError) as e:
            reason = str(e).rstrip(".")
            raise RecordError(
                f"params.{n}", _show(value), reason[:1].lower() + reason[1:]
            ) from None
    return cls(**values)


def _matches_network(est: Any, model: Standardized, ffn: FFN) -> None:
    """The parameters that shape the network agree with the network."""
    hidden = est._hidden_sizes()
    if hidden != tuple(ffn.hidden_sizes):
        raise RecordError(
            "params",
            f"hidden_layer_sizes = {list(hidden)}",
            f"the network's hidden layers are {list(ffn.hidden_sizes)}",
        )
    if est._network_activation() != ffn.activation_name:
        raise RecordError(
            "params",
            f"activation = {est.activation!r}",
            f"the network's activation is {ffn.activation_name!r}",
        )
    scaled = model.x_scaler is not None
    if bool(est.standardize) != scaled:
        raise RecordError(
            "params",
            f"standardize = {est.standardize!r}",
            "the network " + ("scales" if scaled else "does not scale") + " its inputs",
        )


def _features(n_features: Any, names: Any, n_in: int) -> int:
    if not _is_int(n_features) or n_features != n_in:
        raise RecordError("n_features_in", _show(n_features), f"the network has {n_in} inputs")
    if names is None:
        return n_features
    if (
        not isinstance(names, list)
        or len(names) != n_in
        or not all(isinstance(n, str) for n in names)
    ):
        raise RecordError(
            "feature_names_in",
            _show(names),
            f"the network has {n_in} inputs (expected null or {n_in} names)",
        )
    if len(set(names)) != len(names):
        raise RecordError("feature_names_in", _show(names), "expected distinct names")
    return n_features


def _training(raw: dict[str, Any]) -> None:
    """The training record: iterations, losses and scores."""
    n_iter = raw["n_iter"]
    if not _is_int(n_iter) or n_iter < 0:
        raise RecordError("n_iter", _show(n_iter), "expected a count of epochs or iterations >= 0")
    for field in ("loss_curve", "validation_scores"):
        values = raw[field]
        if values is None and field == "validation_scores":
            continue
        if not isinstance(values, list) or not all(v is None or _is_number(v) for v in values):
            raise RecordError(field, _show(values), "expected a list of numbers (null: not finite)")
        if len(values) > n_iter:
            raise RecordError(
                field, f"{len(values)} values", f"n_iter is {n_iter} (one value an iteration)"
            )
    for field in ("loss", "best_loss", "best_validation_score"):
        if not (raw[field] is None or _is_number(raw[field])):
            raise RecordError(field, _show(raw[field]), "expected a number or null")


def _classes(classes: Any, dtype_name: Any, n_out: int) -> np.ndarray:
    """The classifier's `classes_`: one label per network output, distinct, of one type."""
    if not isinstance(classes, list):
        raise RecordError("classes", _show(classes), "expected a list of class labels")
    if len(classes) != n_out:
        raise RecordError(
            "classes",
            f"{len(classes)} labels {_show(classes)}",
            f"the network has {n_out} outputs (one per class)",
        )
    kinds = {
        "text" if isinstance(c, str) else "bool" if type(c) is bool else "number"
        for c in classes
        if isinstance(c, (str, bool, int, float))
    }
    if len(kinds) != 1 or not all(isinstance(c, (str, bool, int, float)) for c in classes):
        raise RecordError("classes", _show(classes), "expected labels all text or all numbers")
    if len(set(classes)) != len(classes):
        twice = next(c for i, c in enumerate(classes) if c in classes[:i])
        raise RecordError("classes", _show(classes), f"expected distinct labels ({twice!r} twice)")
    dtype = _classes_dtype(dtype_name)
    try:
        array = np.asarray(classes, dtype=dtype)
        same = array.tolist() == classes
    except (TypeError, ValueError, OverflowError):
        same = False
    if not same:
        raise RecordError(
            "classes_dtype", _show(dtype_name), f"the labels {_show(classes)} do not fit in it"
        )
    return array


def _classes_dtype(name: Any) -> np.dtype:
    if name == "object":
        return np.dtype(object)
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dtype = None
    if (
        dtype is None
        or dtype.kind not in "biufU"
        or (dtype.kind == "U" and dtype.itemsize > 4 * _MAX_LABEL)
    ):
        raise RecordError(
            "classes_dtype",
            _show(name),
            "expected the NumPy dtype of the labels: 'object', bool, integer, float or '<U' text "
            f"of at most {_MAX_LABEL} characters",
        )
    return dtype
