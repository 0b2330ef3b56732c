"""The one classification-target rule (eqx_ffn/_targets.py): continuous and id columns refused."""

from __future__ import annotations

import numpy as np
import pytest

from eqx_ffn._targets import check_classification_target, class_counts

WAY_OUT = "to predict numbers, use FFNRegressor"


def test_a_continuous_target_is_refused_with_the_numbers():
    y = np.random.default_rng(0).normal(size=200)
    with pytest.raises(
        ValueError,
        match=r"^y looks continuous.*200 of its 200 values are not "
        r"whole numbers.*200 distinct values; to predict numbers, use FFNRegressor$",
    ):
        check_classification_target(y, how_to_regress=WAY_OUT)


def test_one_non_whole_or_non_finite_value_is_enough():
    y = np.r_[np.zeros(50), np.ones(49), 0.5]
    with pytest.raises(
        ValueError,
        match=r"1 of its 100 values are not whole numbers \(the first "
        r"is 0.5\)",
    ):
        check_classification_target(y, argument="labels", how_to_regress=WAY_OUT)
    with pytest.raises(ValueError, match="not whole numbers"):
        check_classification_target(np.r_[np.zeros(50), np.nan], how_to_regress=WAY_OUT)


@pytest.mark.parametrize("labels", [np.arange(1000), np.asarray([f"id{i}" for i in range(1000)])])
def test_an_id_column_is_refused(labels):
    with pytest.raises(
        ValueError,
        match=r"y column 'id' looks like an id column.*1,000 distinct "
        r"labels in 1,000 rows, 1,000 of them on a single row.*--task regress$",
    ):
        check_classification_target(
            labels, argument="y column 'id'", how_to_regress="pass --task regress"
        )


@pytest.mark.parametrize(
    "labels",
    [
        np.repeat([0, 1, 2], 20),
        np.repeat([0.0, 1.0, 2.0], 20),  # whole floats, as a CSV reader gives integers
        np.repeat(["cat", "dog"], 3),
        np.asarray([1, "a", 1, "a", 2.0, 2.0], dtype=object),  # mixed types need no sorting
        np.asarray([True, False, True]),
        np.asarray([0, 1]),  # a toy problem: two classes of one row each
        np.r_[np.repeat([0, 1, 2, 3], 10), 4, 5, 6][:, None],  # a few rare classes; (N, 1)
    ],
)
def test_legitimate_classes_are_accepted(labels):
    check_classification_target(labels, how_to_regress=WAY_OUT)


def test_class_counts_and_shapes():
    assert sorted(class_counts(np.asarray(["a", "b", "a"]))) == [1, 2]
    assert sorted(class_counts(np.asarray([1, "a", 1], dtype=object))) == [1, 2]
    with pytest.raises(ValueError, match=r"y must hold one label per row.*\(3, 2\)"):
        check_classification_target(np.zeros((3, 2)), how_to_regress=WAY_OUT)
