"""Bad data given to the estimators: each error names the argument or the column, and the fix."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from eqx_ffn.sklearn import FFNClassifier, FFNRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize(
    "y, text",
    [
        (np.array(["low", "high"] * 10), "y holds text such as 'low'."),
        (["low", "high"] * 10, "y holds text such as 'low'."),
        (
            np.array([1.5, "high"] * 10, dtype=object),
            "y holds text such as 'high' mixed with numbers such as 1.5.",
        ),
    ],
    ids=["array", "list", "mixed"],
)
def test_a_text_target_to_the_regressor_points_at_the_classifier(y, text):
    with pytest.raises(ValueError, match="FFNRegressor needs a numeric target") as info:
        FFNRegressor(max_iter=1).fit(X, y)
    message = str(info.value)
    assert text in message, message
    assert "use FFNClassifier" in message and "y.astype(float)" in message, message


def test_a_text_target_series_is_named():
    pd = pytest.importorskip("pandas")
    y = pd.Series(["low", "high"] * 10, name="grade")
    with pytest.raises(ValueError, match=r"y \('grade'\) holds text such as 'low'"):
        FFNRegressor(max_iter=1).fit(X, y)


def test_numbers_stored_as_text_still_fit_a_regressor():
    reg = FFNRegressor((4,), max_iter=1, random_state=0).fit(X, np.array(["1.5", "2"] * 10))
    assert reg.predict(X).shape == (20,)


@pytest.mark.parametrize(
    "y",
    [[1, "a"] * 10, np.array([1, "a"] * 10, dtype=object)],
    ids=["list", "object array"],
)
def test_labels_mixing_numbers_and_text_are_refused(y):
    # a list used to become the text labels '1' and 'a' without a word (predict gave '1', not 1)
    with pytest.raises(ValueError, match="y mixes numbers and text as class labels") as info:
        FFNClassifier(max_iter=1).fit(X, y)
    message = str(info.value)
    assert "1 and 'a'" in message and "y.astype(str)" in message, message
    assert isinstance(info.value, TypeError)  # as scikit-learn's encoders raise it


def test_a_dataframe_text_column_is_named_with_the_fix():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["colour"] = ["red", "blue"] * 10
    for est, y in ((FFNRegressor(max_iter=1), np.arange(20.0)), (FFNClassifier(), [0, 1] * 10)):
        with pytest.raises(ValueError, match="X's column 'colour' holds text") as info:
            est.fit(frame, y)
        assert "'red'" in str(info.value) and "OneHotEncoder" in str(info.value)
    with pytest.raises(ValueError, match="X's column 'colour' holds text"):
        FFNRegressor(max_iter=1).fit(frame.astype({"colour": "category"}), np.arange(20.0))


def test_a_text_column_at_predict_is_named():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    reg = FFNRegressor((4,), max_iter=1, random_state=0).fit(frame, np.arange(20.0))
    bad = frame.assign(c=["red", "blue"] * 10)
    with pytest.raises(ValueError, match="X's column 'c' holds text"):
        reg.predict(bad)


def test_a_text_cell_in_an_array_is_located():
    x = X.astype(object)
    x[3, 1] = "red"
    with pytest.raises(ValueError, match=r"X's column 1 \(counting from 0\) holds text \('red'\)"):
        FFNRegressor(max_iter=1).fit(x, np.arange(20.0))


# -- the classification rule the CLI applies too (eqx_ffn._targets) --------------------------


def test_an_id_column_is_not_class_labels():
    # 20 classes of one row each: nothing to learn about any of them
    with pytest.raises(ValueError, match="y looks like an id column") as info:
        FFNClassifier(max_iter=1).fit(X, np.arange(20))
    assert "20 distinct labels in 20 rows" in str(info.value)
    assert str(info.value).endswith("to predict numbers, use FFNRegressor")
    names = np.array([f"row {i}" for i in range(20)])
    with pytest.raises(ValueError, match="y looks like an id column") as info:
        FFNClassifier(max_iter=1).fit(X, names)
    assert "check that y is the column of class labels" in str(info.value)


def test_a_continuous_target_gives_the_counts_and_the_way_out():
    with pytest.raises(ValueError, match="Unknown label type: continuous") as info:
        FFNClassifier(max_iter=1).fit(X, X[:, 0])
    message = str(info.value)
    assert "y looks continuous" in message and "20 of its 20 values" in message, message
    assert message.endswith("to predict numbers, use FFNRegressor"), message


def test_few_rows_of_each_class_still_fit():
    # 10 classes of 2 rows: no class of a single row
    clf = FFNClassifier((4,), max_iter=1, random_state=0).fit(X, np.arange(20) // 2)
    assert len(clf.classes_) == 10


# -- beyond the list: what a careful user tried next ----------------------------------


def test_a_dataframe_date_column_is_named_with_the_fix():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(day=pd.date_range("2020", periods=20))
    with pytest.raises(ValueError, match="X's column 'day' holds dates or durations") as info:
        FFNRegressor(max_iter=1).fit(frame, np.arange(20.0))
    assert "convert it first" in str(info.value)


def test_a_missing_regression_target_is_refused_before_training():
    # None in an object y used to pass scikit-learn's check as NaN and fail in the scaler
    with pytest.raises(ValueError, match=r"y holds 10 missing or non-finite value\(s\)") as info:
        FFNRegressor(max_iter=1).fit(X, [None, 1.0] * 10)
    assert "first in row 0" in str(info.value) and "drop those rows" in str(info.value)


def test_text_sample_weights_are_named():
    with pytest.raises(ValueError, match=r"sample_weight holds text \('heavy'\)"):
        FFNRegressor(max_iter=1).fit(X, np.arange(20.0), sample_weight=["heavy"] * 20)
