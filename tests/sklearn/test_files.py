"""Estimator files: `eqx_ffn.sklearn.save` / `load`, and a tampered record refused field by field."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import NotFittedError

import eqx_ffn
from eqx_ffn.sklearn import FFNClassifier, FFNRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def clf():
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])
    return FFNClassifier((8,), max_iter=5, random_state=0).fit(x, names[y])


@pytest.fixture(scope="module")
def reg():
    x, y = make_regression(n_samples=60, n_features=4, n_targets=1, random_state=0)
    return FFNRegressor((8,), max_iter=5, random_state=0).fit(x, y)


def _tampered(tmp_path, estimator, change, network=None):
    """A model file holding the estimator's network (or `network`) and its record after
    `change(record)`, written by eqx_ffn.save as any file could be."""
    model, metadata = estimator.__eqx_ffn_save__()
    metadata = copy.deepcopy(metadata)
    change(metadata["eqx_ffn.sklearn"])
    return eqx_ffn.save(tmp_path / "tampered.eqx", network or model, metadata=metadata)


def _set(field, value):
    def change(record):
        record[field] = value

    return change


def _param(name, value):
    def change(record):
        record["params"][name] = value

    return change


def _drop(field):
    def change(record):
        del record[field]

    return change


# (which estimator, the change, words the message must hold: the field, what it holds, what the
# network implies)
CASES = {
    "more classes than outputs": (
        "clf",
        _set("classes", ["setosa", "versicolor", "virginica", "other"]),
        ["'classes'", "4 labels", "3 outputs"],
    ),
    "fewer classes than outputs": (
        "clf",
        _set("classes", ["setosa", "versicolor"]),
        ["'classes'", "2 labels", "3 outputs"],
    ),
    "the same class twice": (
        "clf",
        _set("classes", ["setosa", "setosa", "virginica"]),
        ["'classes'", "'setosa' twice"],
    ),
    "labels of mixed types": (
        "clf",
        _set("classes", ["setosa", 1, "virginica"]),
        ["'classes'", "all text or all numbers"],
    ),
    "n_features_in unlike the network's inputs": (
        "reg",
        _set("n_features_in", 5),
        ["'n_features_in'", "holds 5", "4 inputs"],
    ),
    "feature names unlike the network's inputs": (
        "reg",
        _set("feature_names_in", ["a", "b"]),
        ["'feature_names_in'", "4 names"],
    ),
    "a y rank of 7": ("reg", _set("y_ndim", 7), ["'y_ndim'", "holds 7", "1 or 2"]),
    "an unknown parameter name": (
        "reg",
        _param("momentum", 0.9),
        ["'params'", "'momentum'", "no such parameter"],
    ),
    "an invalid parameter value": (
        "reg",
        _param("alpha", -1.0),
        ["'params.alpha'", "-1.0", "'alpha' parameter"],
    ),
    "an invalid compute dtype name": (
        "reg",
        _param("compute_dtype", "float99"),
        ["'params.compute_dtype'", "'float99'", "compute_dtype must be"],
    ),
    "an invalid classes dtype name": (
        "clf",
        _set("classes_dtype", "<X9"),
        ["'classes_dtype'", "'<X9'", "NumPy dtype"],
    ),
    "a classes dtype that truncates the labels": (
        "clf",
        _set("classes_dtype", "<U3"),
        ["'classes_dtype'", "'<U3'", "do not fit"],
    ),
    "hidden layers unlike the network's": (
        "reg",
        _param("hidden_layer_sizes", [9]),
        ["'params'", "[9]", "hidden layers are [8]"],
    ),
    "an activation unlike the network's": (
        "reg",
        _param("activation", "tanh"),
        ["'params'", "'tanh'", "activation is 'relu'"],
    ),
    "a missing field": ("reg", _drop("n_iter"), ["'n_iter'", "missing"]),
    "a missing parameter": (
        "clf",
        lambda r: r["params"].pop("alpha"),
        ["'params'", "'alpha'", "left_out"],
    ),
    "a parameter left out twice": (
        "reg",
        lambda r: [r["params"].pop("random_state"), r.update(left_out=["random_state"] * 2)],
        ["'left_out'", "'random_state' twice"],
    ),
    "an unknown field": ("reg", _set("classes", ["a"]), ["'classes'", "no such field"]),
    "an unknown estimator": ("reg", _set("estimator", "MLPRegressor"), ["'estimator'"]),
    "a regressor's record on a classifier's network": (
        "clf",
        lambda r: [r.pop("classes"), r.pop("classes_dtype"), r.update(estimator="FFNRegressor")],
        ["'y_ndim'", "missing"],
    ),
    "a loss curve longer than n_iter": (
        "reg",
        _set("n_iter", 2),
        ["'loss_curve'", "5 values", "n_iter is 2"],
    ),
    "a loss that is not a number": ("reg", _set("loss", "low"), ["'loss'", "'low'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_record_is_refused(case, request, tmp_path):
    which, change, words = CASES[case]
    estimator = request.getfixturevalue(which)
    path = _tampered(tmp_path, estimator, change)
    with pytest.raises(eqx_ffn.ModelFileError) as info:
        eqx_ffn.sklearn.load(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message


def test_a_record_on_a_network_of_the_wrong_kind_is_refused(reg, tmp_path):
    # the record on the bare FFN (no scalers): an estimator's network is a Standardized FFN
    path = _tampered(tmp_path, reg, lambda r: None, network=reg.model_.model)
    with pytest.raises(eqx_ffn.ModelFileError, match=re.escape(str(path))) as info:
        eqx_ffn.sklearn.load(path)
    assert "'estimator'" in str(info.value) and "Standardized FFN" in str(info.value)


def test_a_classifier_record_on_a_scaled_output_is_refused(clf, reg, tmp_path):
    model = clf.model_
    y_scaler = eqx_ffn.Standardizer(np.zeros(3, np.float32), np.ones(3, np.float32))
    scaled = eqx_ffn.Standardized(model.model, model.x_scaler, y_scaler)
    path = _tampered(tmp_path, clf, lambda r: None, network=scaled)
    with pytest.raises(eqx_ffn.ModelFileError, match="y scaler"):
        eqx_ffn.sklearn.load(path)


def test_an_untampered_record_loads(clf, reg, tmp_path):
    for est in (clf, reg):
        path = _tampered(tmp_path, est, lambda r: None)
        same = eqx_ffn.sklearn.load(path)
        assert type(same) is type(est) and same.get_params() == est.get_params()


def test_saving_an_unfitted_estimator_says_so(tmp_path):
    for est in (FFNRegressor(), FFNClassifier()):
        with pytest.raises(NotFittedError):
            eqx_ffn.sklearn.save(tmp_path / "unfitted.eqx", est)
    assert not (tmp_path / "unfitted.eqx").exists()
