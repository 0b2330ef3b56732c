"""Bad input to the Python API: every case gets a clear error that names the argument and what
was expected, before anything is compiled. (Files: test_bad_input_files.py; the command line:
test_bad_input_cli.py.)"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqx_ffn
from eqx_ffn import FFN, fit
from eqx_ffn.training import _program_cache as _engine

X = np.linspace(-1, 1, 40, dtype=np.float32)[:, None]
Y = np.sin(3 * X)
LABELS = (X[:, 0] > 0).astype(np.int32)


class NoSizes(eqx.Module):
    w: jax.Array

    def __call__(self, x):
        return self.w * x


class WordSizes(eqx.Module):
    w: jax.Array
    in_size: str = "two"
    out_size: int = 1

    def __call__(self, x):
        return self.w * x


def _vector_loss(model, x, y):
    return (jax.vmap(model)(x) - y)[:, 0] ** 2  # forgot the mean


def _two_arg_loss(model, x):
    return jnp.mean(jax.vmap(model)(x))


def _int_loss(model, x, y):
    return jnp.sum(x > 0)


FIT_CASES = [
    # learning rates
    ({"learning_rate": float("inf")}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": -1e-3}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": "0.1"}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": np.ones(2)}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": True}, ValueError, "learning_rate must be a finite number > 0"),
    (
        {"optimizer": optax.adam(1e-2), "learning_rate": 1e-3},
        ValueError,
        "learning_rate is only used with an optimizer given by name",
    ),
    # data: values
    (
        {"x": np.full((40, 1), 1e39)},
        ValueError,
        "x has values too large for float32 .first at row 0",
    ),
    ({"y": np.full((40, 1), -1e300)}, ValueError, "y has values too large for float32"),
    ({"x": np.r_[X[:5], [[np.nan]], X[6:]]}, ValueError, r"x contains NaN or inf \(first at row 5"),
    ({"y": np.r_[Y[:3], [[np.inf]], Y[4:]]}, ValueError, r"y contains NaN or inf \(first at row 3"),
    ({"x": np.zeros((0, 1)), "y": np.zeros((0, 1))}, ValueError, "x is empty"),
    ({"x": np.array([["a"]] * 40)}, TypeError, "x must hold real numbers; got dtype <U1"),
    ({"x": np.array([[object()]] * 40)}, TypeError, "x must hold real numbers; got dtype object"),
    ({"x": {"a": 1}}, TypeError, "x must be an array of numbers"),
    ({"x": None}, TypeError, "x must be an array of numbers"),
    ({"x": "data"}, TypeError, "x must be an array of numbers"),
    ({"y": [[1, 2], [3]]}, TypeError, "y must be an array of numbers"),
    (
        {"x": np.ones((40, 1, 1))},
        ValueError,
        r"x must have shape \(N, in_size\) = \(N, 1\); got \(40, 1, 1\)",
    ),
    (
        {"x": np.ones((40, 3))},
        ValueError,
        r"x must have shape \(N, in_size\) = \(N, 1\); got \(40, 3\)",
    ),
    ({"x": np.ones(40)}, ValueError, r"got \(40,\). Reshape it with x\[:, None\]"),
    ({"y": np.ones((39, 1))}, ValueError, "x and y must have the same number of rows"),
    ({"y": np.ones(39)}, ValueError, "x and y must have the same number of rows"),
    ({"y": np.ones((40, 2))}, ValueError, r"y must have shape \(N, out_size\) = \(40, 1\)"),
    # classification labels
    (
        {"y": LABELS + 5, "loss": "softmax_cross_entropy"},
        ValueError,
        r"labels must lie in \[0, 1\)",
    ),
    (
        {"y": LABELS - 1, "loss": "softmax_cross_entropy"},
        ValueError,
        r"labels must lie in \[0, 1\)",
    ),
    ({"y": LABELS + 0.5, "loss": "softmax_cross_entropy"}, TypeError, "integer class labels"),
    (
        {"y": LABELS[:, None], "loss": "softmax_cross_entropy"},
        ValueError,
        r"one integer class label per sample, shape \(40,\)",
    ),
    # sample weights
    ({"sample_weight": -np.ones(40)}, ValueError, "sample_weight must be >= 0"),
    ({"sample_weight": np.full(40, np.nan)}, ValueError, "sample_weight contains NaN or inf"),
    ({"sample_weight": np.zeros(40)}, ValueError, "sample_weight is zero everywhere"),
    ({"sample_weight": np.ones(39)}, ValueError, r"sample_weight must have shape \(N,\) = \(40,\)"),
    (
        {"sample_weight": np.ones(40), "loss": lambda m, x, y: jnp.mean(x)},
        ValueError,
        "sample_weight needs a named loss",
    ),
    # batches and steps
    ({"batch_size": 41}, ValueError, r"batch_size=41 is larger than the data \(N=40 samples\)"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 3.0}, TypeError, "batch_size must be an int or None"),
    ({"batch_size": True}, TypeError, "batch_size must be an int or None"),
    (
        {"batch_size": 30, "drop_last": True, "x": X[:20], "y": Y[:20]},
        ValueError,
        "batch_size=30 is larger",
    ),
    ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
    ({"steps": 2**31}, ValueError, "steps must be an integer >= 1 and <= 2147352576"),
    ({"steps": 1.5}, ValueError, "steps must be an integer >= 1"),
    ({"steps": True}, ValueError, "steps must be an integer >= 1"),
    ({"eval_every": 0, "validation": (X, Y)}, ValueError, "eval_every must be an integer >= 1"),
    ({"patience": 3}, ValueError, "patience needs validation"),
    ({"patience": 0, "validation": (X, Y)}, ValueError, "patience must be an integer >= 1"),
    ({"sampling": "bootstrap"}, ValueError, "Unknown sampling 'bootstrap'"),
    (
        {"optimizer": "lbfgs", "batch_size": 8},
        ValueError,
        "works on the full batch; use batch_size=None",
    ),
    # validation data
    ({"validation": (X,)}, TypeError, r"validation must be a pair \(x_val, y_val\)"),
    ({"validation": X}, TypeError, r"validation must be a pair \(x_val, y_val\)"),
    (
        {"validation": (np.ones((5, 2)), np.ones((5, 1)))},
        ValueError,
        r"validation x must have shape \(N, in_size\) = \(N, 1\)",
    ),
    (
        {"validation": (np.ones((5, 1)), np.ones((4, 1)))},
        ValueError,
        "validation y must have shape",
    ),
    (
        {"validation": (np.ones((5, 1)), np.full((5, 1), np.nan))},
        ValueError,
        "validation y contains NaN or inf",
    ),
    # penalties and tolerance
    ({"l2": -1.0}, ValueError, "l2 must be a finite number >= 0"),
    ({"l2": float("inf")}, ValueError, "l2 must be a finite number >= 0"),
    ({"l1": float("nan")}, ValueError, "l1 must be a finite number >= 0"),
    ({"l1": "a lot"}, ValueError, "l1 must be a finite number >= 0"),
    ({"l2": np.ones(3)}, ValueError, "l1 and l2 must be scalars in fit"),
    ({"tol": -1e-6}, ValueError, "tol must be a finite number >= 0"),
    ({"tol": float("nan")}, ValueError, "tol must be a finite number >= 0"),
    ({"tol": "small"}, ValueError, "tol must be a finite number >= 0"),
    ({"tol": "0.1"}, ValueError, "tol must be a finite number >= 0"),
    ({"l2": "0.1"}, ValueError, "l2 must be a finite number >= 0"),
    # names and types
    ({"optimizer": "adan"}, ValueError, "Unknown optimizer 'adan'. Valid names are 'adam'"),
    ({"optimizer": 3}, TypeError, "optimizer must be a name"),
    ({"loss": "mse2"}, ValueError, "Unknown loss 'mse2'. Valid names are 'mse', 'mae'"),
    ({"loss": 3}, TypeError, "loss must be a name or a callable"),
    ({"loss": _two_arg_loss}, TypeError, r"called as loss\(model, x_batch, y_batch\)"),
    ({"loss": _vector_loss}, TypeError, r"must return a scalar .* it returned shape \(40,\)"),
    ({"loss": _int_loss}, TypeError, "must return a floating scalar"),
    ({"compute_dtype": jnp.int32}, ValueError, "compute_dtype must be a floating dtype"),
    ({"compute_dtype": "half-ish"}, TypeError, "compute_dtype must be a floating dtype"),
    ({"compute_dtype": jnp.float64}, ValueError, "compute_dtype=float64 needs"),
    ({"precision": "fast"}, ValueError, "Unknown precision 'fast'"),
    # keys
    ({"key": 3}, TypeError, "key must be a jax.random key"),
    (
        {"key": jnp.zeros(3)},
        TypeError,
        r"key must be a jax.random key .* dtype float32 and shape \(3,\)",
    ),
    (
        {"key": jr.split(jr.key(0), 4)},
        ValueError,
        r"key must be ONE jax.random key .* shape \(4,\)",
    ),
    # placement
    ({"mesh": "ab"}, TypeError, "mesh must be a jax.sharding.Mesh or a list of devices"),
    (
        {"mesh": [jax.devices()[0], jax.devices()[0]]},
        ValueError,
        "mesh lists a device more than once",
    ),
    ({"mesh": [1, 2]}, TypeError, "mesh must be a jax.sharding.Mesh or a non-empty list"),
    ({"mesh": jax.devices(), "device": "cpu"}, ValueError, "Pass mesh= or device=, not both"),
    ({"device": "tpu9"}, ValueError, "device='tpu9': no such JAX platform here"),
    ({"device": 3}, TypeError, "device must be None, a platform name"),
]


@pytest.mark.parametrize("kwargs, exc, match", FIT_CASES)
def test_fit_refuses_bad_input_before_compiling(kwargs, exc, match):
    args = {"x": X, "y": Y, "steps": 2, "progress": False} | kwargs
    if args.get("loss") == "softmax_cross_entropy":
        model = FFN(1, 1, (4,), key=jr.key(0))
    else:
        model = FFN(1, 1, (4,), key=jr.key(0))
    before = _engine.compile_count
    with pytest.raises(exc, match=match):
        fit(model, **args)
    assert _engine.compile_count == before


@pytest.mark.parametrize(
    "model, exc, match",
    [
        (NoSizes(jnp.ones(1)), TypeError, "model must have in_size and out_size"),
        (WordSizes(jnp.ones(1)), TypeError, "model.in_size and model.out_size must be integers"),
        (eqx.nn.Linear(1, 1, key=jr.key(0)), TypeError, "model must have in_size and out_size"),
    ],
)
def test_fit_refuses_models_without_sizes(model, exc, match):
    with pytest.raises(exc, match=match):
        fit(model, X, Y, steps=1)


@pytest.mark.parametrize(
    "learning_rate", [np.float32(0.01), jnp.asarray(0.01), np.float64(0.01), 1]
)
def test_fit_accepts_numpy_and_jax_scalars(learning_rate):
    _, h = fit(
        FFN(1, 1, (4,), key=jr.key(0)), X, Y, learning_rate=learning_rate, steps=3, progress=False
    )
    assert h.steps == 3


def test_fit_accepts_dataframes_lists_and_1d_targets():
    pd = pytest.importorskip("pandas")
    model = FFN(1, 1, (4,), key=jr.key(0))
    _, ref = fit(model, X, Y, steps=5, progress=False)
    frame = pd.DataFrame({"u": X[:, 0]})
    _, h = fit(model, frame, pd.Series(Y[:, 0]), steps=5, progress=False)
    np.testing.assert_array_equal(h.loss, ref.loss)
    _, h = fit(model, X.tolist(), Y[:, 0], steps=5, progress=False)
    np.testing.assert_array_equal(h.loss, ref.loss)


def test_diverging_rmsprop_stops_and_warns():
    x, y = X * 10, Y * 100
    model = FFN(1, 1, (8,), key=jr.key(0))
    with pytest.warns(eqx_ffn.DivergenceWarning, match="diverged at step"):
        out, h = fit(model, x, y, optimizer="rmsprop", learning_rate=1e8, steps=200, progress=False)
    assert h.stop_reason == "diverged" and h.steps < 200
    assert np.all(np.isfinite(h.loss))
    mse = float(jnp.mean((jax.vmap(out)(x) - y) ** 2))
    np.testing.assert_allclose(mse, h.loss[-1], rtol=1e-4)  # the last model before the blow-up


MODEL = FFN(1, 2, (4,), key=jr.key(0))


@pytest.mark.parametrize("fn", [eqx_ffn.predict, eqx_ffn.predict_proba])
@pytest.mark.parametrize(
    "x, exc, match",
    [
        (np.ones((5, 2)), ValueError, r"x must have shape \(N, in_size\) = \(N, 1\); got \(5, 2\)"),
        (np.full((5, 1), np.nan), ValueError, "x contains NaN or inf"),
        (np.full((5, 1), 1e39), ValueError, "x has values too large for float32"),
        (np.zeros((0, 1)), ValueError, "x is empty"),
        (np.array([["1"]]), TypeError, "x must hold real numbers"),
        ("x", TypeError, "x must be an array of numbers"),
    ],
)
def test_predict_refuses_bad_input(fn, x, exc, match):
    with pytest.raises(exc, match=match):
        fn(MODEL, x)


def test_predict_refuses_a_non_model():
    with pytest.raises(TypeError, match="model must have in_size and out_size"):
        eqx_ffn.predict(lambda x: x, X)


@pytest.fixture(scope="module")
def ensemble():
    return eqx.filter_vmap(lambda k: FFN(1, 1, (4,), key=k))(jr.split(jr.key(0), 3))


@pytest.mark.parametrize(
    "which, x, exc, match",
    [
        ("plain", X, ValueError, "models must be a stacked ensemble as fit_ensemble returns it"),
        ("stacked", np.r_[X[:3], [[np.nan]]], ValueError, "x contains NaN or inf"),
        ("stacked", np.ones((4, 2)), ValueError, r"x must have shape \(N, in_size\) = \(N, 1\)"),
        ("stacked", X[:, 0], ValueError, r"Reshape it with x\[:, None\]"),
    ],
)
def test_ensemble_predict_refuses_bad_input(ensemble, which, x, exc, match):
    models = ensemble if which == "stacked" else FFN(1, 1, (4,), key=jr.key(0))
    with pytest.raises(exc, match=match):
        eqx_ffn.ensemble_predict(models, x)


@pytest.mark.parametrize("i", [3, -4])
def test_ensemble_member_index(ensemble, i):
    with pytest.raises(IndexError, match="out of range for an ensemble of 3"):
        eqx_ffn.ensemble_member(ensemble, i)


@pytest.mark.parametrize("i", [1.0, "0", True])
def test_ensemble_member_index_must_be_an_integer(ensemble, i):
    with pytest.raises(TypeError, match=r"i must be an integer index, 0 <= i < 3"):
        eqx_ffn.ensemble_member(ensemble, i)


def test_fit_ensemble_wants_a_function_not_a_model():
    with pytest.raises(TypeError, match="make_model must be a function that builds one model"):
        eqx_ffn.fit_ensemble(FFN(1, 1, (4,), key=jr.key(0)), X, Y, keys=jr.split(jr.key(0), 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: eqx_ffn.jacobian(m, X),
        lambda m: eqx_ffn.linearize(m, X[0]),
        lambda m: eqx_ffn.predict(m, X),
        lambda m: eqx_ffn.fit(m, X, Y, steps=1, progress=False),
    ],
)
def test_a_stacked_ensemble_is_named_where_one_model_is_expected(ensemble, call):
    with pytest.raises(ValueError, match="stacked ensemble of 3 members.*ensemble_member"):
        call(ensemble)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"keys": jr.key(0)}, ValueError, "keys must be a 1-D array of K >= 1 jax.random keys"),
        ({"keys": jnp.zeros(4)}, ValueError, "keys must be a 1-D array"),
        (
            {"learning_rate": jnp.ones(3)},
            ValueError,
            r"learning_rate must be a number or an array of shape \(4,\)",
        ),
        ({"learning_rate": -jnp.ones(4)}, ValueError, "learning_rate must be finite and >= 0"),
        (
            {"optimizer": "lbfgs", "learning_rate": jnp.ones(4)},
            ValueError,
            "need an optimizer given by name",
        ),
        ({"l2": np.array([0.1, -1, 0, 0])}, ValueError, "l2 must be finite and >= 0"),
    ],
)
def test_fit_ensemble_refuses_bad_arguments(kwargs, exc, match):
    args = {"keys": jr.split(jr.key(0), 4), "steps": 1, "progress": False} | kwargs
    with pytest.raises(exc, match=match):
        eqx_ffn.fit_ensemble(lambda k: FFN(1, 1, (4,), key=k), X, Y, **args)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"loss_fn": "hinge"}, ValueError, "Unknown loss 'hinge'"),
        ({"optimizer": "adan"}, ValueError, "Unknown optimizer 'adan'"),
        ({"compute_dtype": jnp.int8}, ValueError, "compute_dtype must be a floating dtype"),
        ({"precision": "max"}, ValueError, "Unknown precision 'max'"),
    ],
)
def test_make_step_refuses_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        eqx_ffn.make_step(**kwargs)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])  # read in place / cast first
def test_jax_arrays_with_nan_or_inf_are_refused(dtype):
    x = np.linspace(-1, 1, 40, dtype=np.float32)[:, None]
    bad_x, bad_y = x.copy(), x**2
    bad_x[7] = np.nan
    bad_y[3] = np.inf
    model = FFN(1, 1, (4,), key=jr.key(0))
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 7"):
        eqx_ffn.fit(model, jnp.asarray(bad_x, dtype), jnp.asarray(x**2), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"y contains NaN or inf \(first at row 3"):
        eqx_ffn.fit(model, jnp.asarray(x, dtype), jnp.asarray(bad_y), steps=1, progress=False)


def test_a_dataframe_text_column_is_named():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(8.0), "color": ["red"] * 8})
    with pytest.raises(TypeError, match=r"column 'color' holds .* values.*get_dummies"):
        fit(FFN(2, 1, key=jr.key(0)), df, np.ones(8), steps=1, progress=False)
    with pytest.raises(TypeError, match=r"y must hold real numbers.*'target' holds"):
        fit(FFN(1, 1, key=jr.key(0)), X, pd.Series(["x"] * 40, name="target"), steps=1)
