"""`warm_start` with scikit-learn's meaning: a second `fit` starts from the fitted network."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning

from eqx_ffn.sklearn import FFNClassifier, FFNRegressor


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * x[:, 2]
    return x, y


def _quiet_fit(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


def test_warm_start_continues_from_the_fitted_network():
    x, y = _data()
    kw = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0, learning_rate_init=1e-2)
    cold = _quiet_fit(FFNRegressor(**kw), x, y)
    warm = _quiet_fit(FFNRegressor(**kw, warm_start=True), x, y)
    first_curve = list(warm.loss_curve_)
    scalers = (warm.model_.x_scaler, warm.model_.y_scaler)
    _quiet_fit(warm, x * 1.01, y)  # other data: the scalers stay those of the first fit
    # the second fit starts where the first ended, far below a fresh network's first epoch
    assert warm.loss_curve_[0] < 0.5 * first_curve[0]
    assert warm.loss_curve_[0] < 2 * first_curve[-1]
    assert warm.model_.x_scaler is scalers[0] and warm.model_.y_scaler is scalers[1]
    # without warm_start a second fit starts afresh: the same as the first, bit for bit
    again = _quiet_fit(cold, x, y)
    for a, b in zip(jax.tree.leaves(again.model_), jax.tree.leaves(cold.model_), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cold.loss_curve_ == first_curve


def test_warm_start_refuses_another_shape_or_other_classes():
    x, y = _data()
    est = _quiet_fit(FFNRegressor(hidden_layer_sizes=(4,), max_iter=2, warm_start=True), x, y)
    with pytest.raises(ValueError, match="warm_start=True continues the fitted network"):
        est.fit(x[:, :2], y)
    est.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.fit(x, y)
    labels = (y > np.median(y)).astype(int)
    clf = _quiet_fit(FFNClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True), x, labels)
    _quiet_fit(clf, x, labels)  # the same classes: fine
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(x, labels + 1)
