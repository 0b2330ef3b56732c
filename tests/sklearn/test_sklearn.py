"""The scikit-learn estimators: scikit-learn's own checks, then what users do with them."""

from __future__ import annotations

import inspect
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import jax.random as jr  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_iris, load_wine, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import eqx_ffn  # noqa: E402
from eqx_ffn.sklearn import FFNClassifier, FFNRegressor  # noqa: E402
from eqx_ffn.sklearn._rules import _epoch_means, _score_stop  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# -- scikit-learn's estimator checks -----------------------------------------------------------

_FLOAT32 = (
    "float32 arithmetic: fits on weighted and on repeated samples agree to ~1e-7 relative "
    "(float32 rounding), the check asks for rtol=1e-7 as for float64"
)


def _expected_failures(estimator) -> dict[str, str]:
    return {"check_sample_weight_equivalence_on_dense_data": _FLOAT32}


_checks_kwargs = {}
if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters:
    _checks_kwargs["xfail_strict"] = True  # a listed failure that passes is reported


@parametrize_with_checks(
    [
        FFNRegressor(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=1e-2),
        FFNClassifier(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=1e-2),
    ],
    expected_failed_checks=_expected_failures,
    **_checks_kwargs,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- data --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def fitted_clf(iris):
    x_tr, _, y_tr, _ = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    return FFNClassifier((16,), max_iter=40, learning_rate_init=1e-2, random_state=0).fit(
        x_tr, names[y_tr]
    )


def _regression(n=120, d=4, k=1, seed=0):
    x, y = make_regression(n_samples=n, n_features=d, n_targets=k, noise=1.0, random_state=seed)
    return x, y


# Tests share data and settings where they can: every new setting compiles a training program.
SMALL = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)  # full batch of 120
MINI = dict(hidden_layer_sizes=(8,), batch_size=32)  # 4 mini-batches an epoch of 120


# -- what users do -----------------------------------------------------------------------------


def test_wine_accuracy_with_defaults():
    x, y = load_wine(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    clf = FFNClassifier(random_state=0).fit(x_tr, y_tr)
    assert clf.score(x_te, y_te) >= 0.9
    assert isinstance(clf.model_, eqx_ffn.Standardized)
    assert isinstance(clf.model_.model, eqx_ffn.FFN)
    assert clf.model_.model.hidden_sizes == (100,)
    assert clf.model_.model.activation_name == "relu"
    assert clf.n_iter_ == len(clf.loss_curve_) <= 200


def test_string_labels_and_probabilities(fitted_clf, iris):
    _, x_te, _, y_te = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    assert list(fitted_clf.classes_) == list(names)
    pred = fitted_clf.predict(x_te)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert np.mean(pred == names[y_te]) >= 0.85
    proba = fitted_clf.predict_proba(x_te)
    assert proba.shape == (len(x_te), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(fitted_clf.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.exp(fitted_clf.predict_log_proba(x_te)), proba, rtol=1e-9)


def test_binary_probabilities_have_two_columns(iris):
    x_tr, x_te, y_tr, _ = iris
    keep = y_tr < 2
    clf = FFNClassifier((8,), max_iter=20, learning_rate_init=1e-2, random_state=0)
    clf.fit(x_tr[keep], np.where(y_tr[keep] == 1, "yes", "no"))
    proba = clf.predict_proba(x_te)
    assert list(clf.classes_) == ["no", "yes"] and proba.shape == (len(x_te), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.model_.out_size == 2


def test_dataframes_and_feature_names():
    pd = pytest.importorskip("pandas")
    x, y = _regression()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    reg = FFNRegressor(**SMALL).fit(frame, pd.Series(y, name="t"))
    assert list(reg.feature_names_in_) == ["a", "b", "c", "d"] and reg.n_features_in_ == 4
    with pytest.warns(UserWarning, match="valid feature names"):
        np.testing.assert_array_equal(reg.predict(frame), reg.predict(x))
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(frame.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="valid feature names"):
        with pytest.raises(ValueError, match="4 features"):
            reg.predict(x[:, :3])


def test_target_shapes_are_kept():
    x, y = _regression(k=3)
    reg = FFNRegressor(**SMALL)
    pred = reg.fit(x, y).predict(x)
    assert pred.shape == (len(x), 3) and reg.n_outputs_ == 3 and pred.dtype == np.float64
    # each row's prediction does not depend on the other rows, bit for bit
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_array_equal(reg.predict(x[order]), pred[order])
    np.testing.assert_array_equal(reg.predict(x[5:12]), pred[5:12])
    assert reg.fit(x, y[:, 0]).predict(x).shape == (len(x),)
    assert reg.fit(x, y[:, :1]).predict(x).shape == (len(x), 1)
    assert reg.fit(x.tolist(), y[:, 0].tolist()).predict(x.tolist()).shape == (len(x),)


def test_cross_val_score_pipeline_and_grid_search():
    x, y = _regression()
    params = dict(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=1e-2, random_state=0)
    scores = cross_val_score(make_pipeline(StandardScaler(), FFNRegressor(**params)), x, y, cv=2)
    assert scores.shape == (2,) and np.all(scores > 0.5)
    grid = GridSearchCV(FFNRegressor(**params), {"alpha": [1e-4, 3.0]}, cv=2)
    grid.fit(x, y)
    assert grid.best_params_ == {"alpha": 1e-4}  # a strong penalty costs a well-posed fit
    assert grid.best_estimator_.n_iter_ == 20
    means = grid.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(means)) and means[0] > means[1]


def test_pickle_round_trip(fitted_clf, iris):
    _, x_te, _, _ = iris
    same = pickle.loads(pickle.dumps(fitted_clf))
    np.testing.assert_array_equal(same.predict_proba(x_te), fitted_clf.predict_proba(x_te))
    assert same.get_params() == fitted_clf.get_params()


def test_eqx_ffn_save_round_trip(fitted_clf, iris, tmp_path):
    _, x_te, _, _ = iris
    path = eqx_ffn.save(tmp_path / "net.eqx", fitted_clf.model_)
    net = eqx_ffn.load(path)
    np.testing.assert_array_equal(
        np.asarray(eqx_ffn.predict(net, x_te)), np.asarray(eqx_ffn.predict(fitted_clf.model_, x_te))
    )
    # the estimator: its network in the same file format, its labels in the metadata
    path = eqx_ffn.sklearn.save(tmp_path / "clf.eqx", fitted_clf)
    assert isinstance(eqx_ffn.load(path), eqx_ffn.Standardized)
    same = eqx_ffn.sklearn.load(path)
    assert type(same) is FFNClassifier and same.get_params() == fitted_clf.get_params()
    np.testing.assert_array_equal(same.predict(x_te), fitted_clf.predict(x_te))
    np.testing.assert_array_equal(same.classes_, fitted_clf.classes_)
    for name in ("n_iter_", "loss_curve_", "loss_", "best_loss_", "validation_scores_"):
        assert getattr(same, name) == getattr(fitted_clf, name)
    with pytest.raises(ValueError, match="eqx_ffn.load"):
        eqx_ffn.sklearn.load(tmp_path / "net.eqx")


def test_save_leaves_out_what_json_cannot_hold(tmp_path):
    x, y = _regression()
    reg = FFNRegressor(**SMALL).set_params(random_state=np.random.RandomState(0)).fit(x, y)
    path = eqx_ffn.sklearn.save(tmp_path / "reg.eqx", reg)
    with pytest.warns(UserWarning, match="random_state"):
        same = eqx_ffn.sklearn.load(path)
    assert same.random_state is None and same.hidden_layer_sizes == (8,)
    np.testing.assert_array_equal(same.predict(x), reg.predict(x))


def test_same_random_state_same_network_bit_for_bit():
    x, y = _regression()  # mini-batches: the batch order depends on the seed too
    a = FFNRegressor(**MINI, max_iter=4, random_state=7).fit(x, y).predict(x)
    b = FFNRegressor(**MINI, max_iter=4, random_state=7).fit(x, y).predict(x)
    c = FFNRegressor(**MINI, max_iter=4, random_state=8).fit(x, y).predict(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_parameters_say_what_is_wrong():
    x, y = _regression(n=20)
    cases = [
        (dict(activation="swish"), "activation"),
        (dict(solver="newton"), "solver"),
        (dict(alpha=-1.0), "alpha"),
        (dict(max_iter=0), "max_iter"),
        (dict(batch_size=0), "batch_size"),
        (dict(init="zeros"), "init"),
        (dict(validation_fraction=1.0), "validation_fraction"),
    ]
    for params, name in cases:
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            FFNRegressor(**params).fit(x, y)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must hold integers >= 1; got 0"):
        FFNRegressor(hidden_layer_sizes=(8, 0)).fit(x, y)
    with pytest.raises(ValueError, match="compute_dtype must be a floating-point dtype"):
        FFNRegressor(compute_dtype="int32").fit(x, y)
    with pytest.raises(NotFittedError):
        FFNClassifier().predict(x)
    with pytest.raises(ValueError, match="at least 2 classes"):
        FFNClassifier().fit(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="Unknown label type"):
        FFNClassifier().fit(x, y)


def test_compute_dtype_is_passed_on():
    x, y = _regression(n=40)
    reg = FFNRegressor((4,), max_iter=2, compute_dtype="bfloat16", random_state=0).fit(x, y)
    assert np.all(np.isfinite(reg.predict(x)))
    assert reg.model_.model.layers[0].weight.dtype == np.float32  # float32 master weights


def test_import_error_names_the_extra():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "try:\n    import eqx_ffn.sklearn\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "eqx_ffn[sklearn]"' in out.stdout, out.stderr


# -- the parameters mean what scikit-learn's mean --------------------------------------------


def _feed_sklearn_rule(losses, tol, n_iter_no_change):
    """The epoch at which MLPRegressor's own `_update_no_improvement_count` stops."""
    mlp = MLPRegressor(tol=tol, n_iter_no_change=n_iter_no_change)
    mlp.loss_curve_, mlp.best_loss_, mlp._no_improvement_count = [], np.inf, 0
    for i, value in enumerate(losses):
        mlp.loss_curve_.append(value)
        mlp._update_no_improvement_count(False, None, None, None)
        if mlp._no_improvement_count > n_iter_no_change:
            return i + 1
    return None


@pytest.mark.parametrize("tol, n_iter_no_change", [(1e-3, 2), (1e-2, 1), (3e-3, 4)])
def test_the_engines_plateau_rule_is_scikit_learns(tol, n_iter_no_change):
    # 120 samples in batches of 32 (the last of 24): the epoch loss weighs each batch by its size
    x, y = _regression()
    x = (x - x.mean(0)) / x.std(0)
    y = ((y - y.mean()) / y.std())[:, None]
    model = eqx_ffn.FFN(4, 1, (8,), key=jr.key(0))
    kw = dict(batch_size=32, steps=4 * 80, key=jr.key(1), learning_rate=1e-2, progress=False)
    _, full = eqx_ffn.fit(model, x, y, **kw)
    epochs = _epoch_means(full.loss, 120, 32)
    stop = _feed_sklearn_rule(epochs, tol, n_iter_no_change)
    _, h = eqx_ffn.fit(model, x, y, tol=tol, n_iter_no_change=n_iter_no_change, **kw)
    assert stop is not None and h.stop_reason == "converged" and h.steps == 4 * stop


def test_score_rule_matches_scikit_learns():
    rng = np.random.default_rng(1)
    for _ in range(200):
        scores = np.cumsum(rng.normal(0.01, 0.02, size=60))
        tol, n = float(rng.choice([0.0, 1e-4, 1e-2])), int(rng.integers(1, 6))
        mlp = MLPClassifier(tol=tol, n_iter_no_change=n)
        mlp.validation_scores_, mlp.best_validation_score_, mlp._no_improvement_count = (
            [],
            -np.inf,
            0,
        )
        mlp.coefs_, mlp.intercepts_ = [], []
        best_epoch, stop = 0, None
        for i, score in enumerate(scores):
            before = mlp.best_validation_score_
            mlp._score = lambda *a, s=score, **k: s
            mlp._update_no_improvement_count(True, None, None, None)
            if mlp.best_validation_score_ > before:
                best_epoch = i + 1
            if mlp._no_improvement_count > n:
                stop = i + 1
                break
        assert _score_stop(scores, tol, n) == (stop, best_epoch)


def test_epoch_means():
    # 10 samples in batches of 4: an epoch is 3 steps of 4, 4 and 2 samples
    steps = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # the last, partial epoch is dropped
    np.testing.assert_allclose(_epoch_means(steps, 10, 4), [(4 + 8 + 6) / 10, (16 + 20 + 12) / 10])


def test_tol_stops_and_returns_that_epochs_network():
    x, y = _regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it stops: no warning
        # a huge tol never counts as an improvement: stop after n_iter_no_change + 2 epochs
        early = FFNRegressor(**MINI, max_iter=50, tol=1e9, n_iter_no_change=2, random_state=3)
        early.fit(x, y)
    assert early.n_iter_ == 4 and len(early.loss_curve_) == 4
    assert early.history_.steps == 4 * 4  # four batches an epoch (3 x 32 + 24 samples)
    plain = FFNRegressor(**MINI, max_iter=4, random_state=3)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        plain.fit(x, y)
    np.testing.assert_array_equal(early.predict(x), plain.predict(x))
    np.testing.assert_array_equal(early.loss_curve_, plain.loss_curve_)


def test_early_stopping_returns_the_best_validation_score():
    x, y = _regression()
    reg = FFNRegressor(
        (8,),
        early_stopping=True,
        validation_fraction=0.2,
        max_iter=60,
        learning_rate_init=3e-2,
        n_iter_no_change=3,
        random_state=5,
    ).fit(x, y)
    assert reg.validation_scores_ is not None and len(reg.validation_scores_) == reg.n_iter_
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # the held-out part is scikit-learn's split with the same seed; the network returned is the
    # best one on it
    _, x_val, _, y_val = train_test_split(x, y, test_size=0.2, random_state=5)
    assert reg.score(x_val, y_val) == pytest.approx(reg.best_validation_score_, abs=1e-5)


def test_alpha_and_loss_are_scikit_learns_objective():
    # With standardize=False our network is scikit-learn's: its loss at our weights, penalty
    # included, is ours in scikit-learn's units.
    x, y = load_iris(return_X_y=True)
    x = x[:, :3]
    for est, mlp, target in (
        (FFNRegressor, MLPRegressor, x[:, 2] * 10),
        (FFNClassifier, MLPClassifier, y),
    ):
        ours = est((6,), activation="tanh", alpha=0.3, max_iter=10, standardize=False)
        ours.set_params(random_state=0, learning_rate_init=1e-2).fit(x, target)
        ffn = ours.model_.model
        mlp = mlp(hidden_layer_sizes=(6,), activation="tanh", alpha=0.3, max_iter=1).fit(x, target)
        mlp.coefs_ = [np.asarray(layer.weight, np.float64).T for layer in ffn.layers]
        mlp.intercepts_ = [np.asarray(layer.bias, np.float64) for layer in ffn.layers]
        yy = target[:, None] if est is FFNRegressor else np.eye(3)[target]
        acts = [x, None, None]
        loss, _, _ = mlp._backprop(x, yy, None, acts, [None] * 2, [None] * 2, [None] * 2)
        assert loss == pytest.approx(ours._loss_scale * ours.history_.final_loss, rel=1e-5)


def test_lbfgs_tol_is_scipys_gtol():
    x, y = _regression()
    # every gradient is below a huge tolerance: it stops before its first step
    stuck = FFNRegressor((), solver="lbfgs", tol=1e9, max_iter=200, random_state=0).fit(x, y)
    assert stuck.n_iter_ == 0
    # an affine model converges well before max_iter, without a ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        lin = FFNRegressor((), solver="lbfgs", max_iter=200, random_state=0).fit(x, y)
    assert 0 < lin.n_iter_ < 200 and lin.score(x, y) > 0.99


def test_solvers_by_name_and_optax():
    x, y = _regression()
    for solver in ("sgd", optax.adam(1e-2)):  # scikit-learn's SGD (Nesterov), an optax object
        reg = FFNRegressor(**SMALL, solver=solver).fit(x, y)
        assert np.all(np.isfinite(reg.predict(x))) and reg.n_iter_ == 5
    for solver in ("adamw", "rmsprop"):  # eqx_ffn.fit's names, passed on as they are
        FFNRegressor(solver=solver)._validate_params()


def test_zero_weights_are_missing_samples():
    # full batch: the weighted mean loss, the weighted scalers and alpha / (weight sum) are those
    # of the data without the zero-weight samples
    x, y = _regression()
    w = np.ones(len(x))
    w[::3] = 0
    keep = w > 0
    params = {**SMALL, "max_iter": 20, "learning_rate_init": 5e-2}
    a = FFNRegressor(**params).fit(x, y, sample_weight=w).predict(x)
    b = FFNRegressor(**params).fit(x[keep], y[keep]).predict(x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.std(y))
    c = FFNRegressor(**params).fit(x, y).predict(x)  # all samples: a different network
    assert np.max(np.abs(c - b)) > 1e-2 * np.std(y)


def test_docstring_examples_run():
    blocks = []
    for obj in (eqx_ffn.sklearn, FFNRegressor, FFNClassifier):
        blocks += re.findall(r"```python\n(.*?)```", inspect.getdoc(obj) or "", flags=re.S)
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "<docstring>", "exec"), {})


def test_readme_section_runs(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## scikit-learn") :]
    section = section[: section.index("\n## ", 1)]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    r2, epochs = lines[0].split()
    assert float(r2) > 0.3 and 1 <= int(epochs) <= 200
    assert float(lines[1].split()[0]) >= 0.9  # wine test accuracy
    assert isinstance(eqx_ffn.sklearn.load(tmp_path / "wine.eqx"), FFNClassifier)


# -- dependencies ------------------------------------------------------------------------------


def test_private_scikit_learn_names_are_one_module_and_pinned():
    # issue 24: only sklearn.utils._param_validation (no public twin) is private, and the extra
    # caps scikit-learn's version; SciPy is not imported (scikit-learn brings it)
    import ast

    private, scipy = set(), set()
    for path in Path(eqx_ffn.sklearn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                top, parts = node.module.split(".")[0], node.module.split(".")
                if top == "sklearn" and any(p.startswith("_") for p in parts):
                    private.add(node.module)
                if top == "sklearn":
                    private.update(
                        f"{node.module}.{a.name}" for a in node.names if a.name[0] == "_"
                    )
                if top == "scipy":
                    scipy.add(node.module)
            elif isinstance(node, ast.Import):
                scipy.update(a.name for a in node.names if a.name.split(".")[0] == "scipy")
    assert private == {"sklearn.utils._param_validation"} and not scipy, (private, scipy)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    cap = re.search(r'^sklearn = \["scikit-learn>=1\.6,<(\d+)\.(\d+)"\]', pyproject, flags=re.M)
    assert cap is not None
    installed = tuple(int(v) for v in sklearn.__version__.split(".")[:2])
    assert installed < (int(cap[1]), int(cap[2]))


def test_bad_sample_weights_say_what_is_wrong():
    x, y = _regression(n=20)
    reg = FFNRegressor(**SMALL)
    with pytest.raises(ValueError, match=r"sample_weight holds 19 weights for 20 samples"):
        reg.fit(x, y, sample_weight=np.ones(19))
    with pytest.raises(ValueError, match=r"one weight per sample, shape \(20,\); got shape"):
        reg.fit(x, y, sample_weight=np.ones((20, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        reg.fit(x, y, sample_weight=np.full(20, np.nan))
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        reg.fit(x, y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="zero everywhere"):
        reg.fit(x, y, sample_weight=0.0)
