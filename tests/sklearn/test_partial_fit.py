"""`partial_fit` with scikit-learn's meaning: one epoch a call, the optimizer's state kept."""

from __future__ import annotations

import pickle

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from eqx_ffn.sklearn import FFNClassifier, FFNRegressor
from eqx_ffn.training import _program_cache

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# One data size and one setting for the regression tests: they share two compiled programs
# (partial_fit's epoch and fit's loop). 150 rows in batches of 32: 5 steps an epoch, the last
# batch smaller.
N = 150
KW = dict(hidden_layer_sizes=(8,), batch_size=32, learning_rate_init=1e-2, random_state=0)


def _batch(seed: int, n: int = N):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * x[:, 2]
    return x, y


def _same_network(a, b) -> None:
    for p, q in zip(jax.tree.leaves(a.model_), jax.tree.leaves(b.model_), strict=True):
        np.testing.assert_array_equal(p, q)


def test_calls_on_the_same_data_are_the_epochs_of_one_fit():
    # Call k draws epoch k's batches from the estimator's key and continues Adam's moments and
    # step count: 3 calls are fit's 3 epochs, bit for bit (fit's stopping rule cannot stop it
    # within 3 epochs: it needs more than n_iter_no_change=10).
    x, y = _batch(0)
    est = FFNRegressor(**KW)
    for _ in range(3):
        assert est.partial_fit(x, y) is est
    ref = FFNRegressor(**KW, max_iter=3).fit(x, y)
    _same_network(est, ref)
    assert est.loss_curve_ == ref.loss_curve_
    np.testing.assert_array_equal(est.history_.loss, ref.history_.loss[-5:])  # the last epoch
    assert est.loss_ == ref.loss_ and est.best_loss_ == ref.best_loss_
    # scikit-learn's counters: n_iter_ is the call's epochs, t_ the samples seen
    assert est.n_iter_ == 1 and ref.n_iter_ == 3
    assert est.t_ == ref.t_ == 3 * N
    assert est.n_features_in_ == 3 and est.predict(x[:4]).shape == (4,)


def test_a_stream_lowers_the_loss_without_compiling_per_call():
    est = FFNRegressor(**KW).partial_fit(*_batch(100))
    before = _program_cache.compile_count
    for k in range(1, 8):  # a fresh batch of the same size each call
        est.partial_fit(*_batch(100 + k))
    assert _program_cache.compile_count == before
    curve = est.loss_curve_
    assert len(curve) == 8 and est.t_ == 8 * N
    assert curve[-1] < 0.5 * curve[0]
    # the scalers are those of the first batch: later batches do not move them
    first = FFNRegressor(**KW).partial_fit(*_batch(100))
    np.testing.assert_array_equal(est.model_.x_scaler.mean, first.model_.x_scaler.mean)
    np.testing.assert_array_equal(est.model_.y_scaler.scale, first.model_.y_scaler.scale)


def test_deterministic_and_picklable_between_calls():
    x, y = _batch(1)
    a = FFNRegressor(**KW).partial_fit(x, y)
    b = FFNRegressor(**KW).partial_fit(x, y)
    b = pickle.loads(pickle.dumps(b))  # the optimizer's state travels with the estimator
    a.partial_fit(x, y)
    b.partial_fit(x, y)
    _same_network(a, b)
    assert a.loss_curve_ == b.loss_curve_


def test_fit_after_partial_fit_starts_afresh_unless_warm_start():
    x, y = _batch(2)
    fresh = FFNRegressor(**KW, max_iter=2).fit(x, y)
    est = FFNRegressor(**KW, max_iter=2).partial_fit(x, y).partial_fit(x, y)
    est.fit(x, y)
    _same_network(est, fresh)
    assert est.loss_curve_ == fresh.loss_curve_ and est.t_ == 2 * N
    warm = FFNRegressor(**KW, max_iter=2, warm_start=True).partial_fit(x, y).partial_fit(x, y)
    curve_before = list(warm.loss_curve_)
    warm.fit(x, y)  # from the partially fitted network
    assert warm.loss_curve_[0] < curve_before[0]
    # partial_fit after fit continues the fitted network (with a fresh optimizer state)
    fresh.partial_fit(x, y)
    assert len(fresh.loss_curve_) == 3 and fresh.t_ == 3 * N and fresh.n_iter_ == 1
    assert fresh.loss_ < fresh.loss_curve_[0]


def test_bad_calls_say_what_is_wrong():
    x, y = _batch(3)
    with pytest.raises(ValueError, match="early_stopping"):
        FFNRegressor(**KW, early_stopping=True).partial_fit(x, y)
    lbfgs = FFNRegressor(solver="lbfgs")
    assert not hasattr(lbfgs, "partial_fit")  # as scikit-learn's available_if
    with pytest.raises(AttributeError, match="only available for stochastic.*'lbfgs'"):
        lbfgs.partial_fit(x, y)
    assert not hasattr(FFNClassifier(solver="lbfgs"), "partial_fit")
    est = FFNRegressor(**KW).partial_fit(x, y)
    with pytest.raises(ValueError, match="X has 2 features, but FFNRegressor is expecting 3"):
        est.partial_fit(x[:, :2], y)
    with pytest.raises(ValueError, match="y has 2 output"):
        est.partial_fit(x, np.c_[y, y])
    est.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="partial_fit continues the fitted network"):
        est.partial_fit(x, y)


def test_classifier_classes():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 3))
    names = np.array(["a", "b", "c"])
    y = names[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)]
    clf = FFNClassifier(hidden_layer_sizes=(8,), learning_rate_init=1e-2, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(x, y)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(x, y, classes=["a", "b"])
    clf.partial_fit(x, y, classes=["c", "a", "b"])
    np.testing.assert_array_equal(clf.classes_, names)
    for _ in range(9):
        clf.partial_fit(x, y)  # classes may be left out after the first call
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.predict_proba(x[:2]).shape == (2, 3) and set(clf.predict(x)) <= set(names)
    with pytest.raises(ValueError, match="not the same as the estimator's classes_"):
        clf.partial_fit(x, y, classes=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"not in classes_.*\['e'\]"):
        clf.partial_fit(x, np.where(y == "a", "e", y))
    clf.partial_fit(x[y != "c"], y[y != "c"])  # a call's y need not hold every class
    assert len(clf.loss_curve_) == 11
