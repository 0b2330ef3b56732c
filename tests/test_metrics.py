"""The scores in eqx_ffn/_metrics.py equal scikit-learn's on random data."""

from __future__ import annotations

import numpy as np
import pytest

from eqx_ffn._metrics import accuracy, confusion_matrix, mse, r2_per_output, r2_score

sk = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(1,), (40,), (40, 1), (40, 3)])
def test_regression_scores_equal_scikit_learn(seed, shape):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=shape) * rng.uniform(0.1, 100)
    pred = y + rng.normal(size=shape) * rng.uniform(0.01, 3)
    if shape == (1,):
        y, pred = np.r_[y, y + 1], np.r_[pred, pred]
    np.testing.assert_allclose(r2_score(y, pred), sk.r2_score(y, pred), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        r2_per_output(y, pred),
        np.atleast_1d(sk.r2_score(y, pred, multioutput="raw_values")),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(mse(y, pred), sk.mean_squared_error(y, pred), rtol=1e-12)


def test_r2_of_constant_columns_follows_scikit_learn():
    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    for pred in (y.copy(), y + 0.5):
        np.testing.assert_allclose(
            r2_per_output(y, pred), sk.r2_score(y, pred, multioutput="raw_values")
        )
    assert r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == 0.5


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 7])
def test_classification_scores_equal_scikit_learn(seed, k):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=60)
    pred = np.where(rng.random(60) < 0.7, y, rng.integers(0, k, size=60))
    assert accuracy(y, pred) == sk.accuracy_score(y, pred)
    np.testing.assert_array_equal(
        confusion_matrix(y, pred, k), sk.confusion_matrix(y, pred, labels=range(k))
    )
    names = np.array([f"c{i}" for i in range(k)])
    assert accuracy(names[y], names[pred]) == sk.accuracy_score(names[y], names[pred])


def test_confusion_matrix_shape_and_errors():
    np.testing.assert_array_equal(confusion_matrix([0, 1, 1], [0, 1, 0]), [[1, 0], [1, 1]])
    assert confusion_matrix([0, 0], [0, 0], 3).shape == (3, 3)  # classes never seen still count
    with pytest.raises(ValueError, match="class indices 0, 1"):
        confusion_matrix([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="below n_classes=2"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="same shape"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match=r"same shape \(N,\) or \(N, k\)"):
        r2_score(np.zeros((3, 2)), np.zeros((3, 1)))
