from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import TypeCheckError

import eqx_ffn
from eqx_ffn import FFN, Dense


@pytest.mark.parametrize(
    "fixture, at10, mse", [("lecture1", 1.5116649, 8.191615), ("lecture2", 0.7192471, 12.46754)]
)
def test_from_params_reproduces_lecture_figures(request, batched, fixture, at10, mse):
    x, y, params = request.getfixturevalue(fixture)
    model = FFN.from_params(params, precision="highest")  # full float32, also on a GPU
    assert model.precision == "highest"
    np.testing.assert_allclose(model(x[10]), [at10], rtol=1e-6)
    y_hat = jax.vmap(model)(x)
    np.testing.assert_allclose(jnp.mean((y - y_hat) ** 2), mse, rtol=1e-6)
    # exactly the lecture's function, vmapped the lecture's way
    with jax.default_matmul_precision("highest"):
        np.testing.assert_array_equal(y_hat, batched(params, x))
    # vmap equals a Python loop of single calls
    loop = jnp.stack([model(xi) for xi in x[:20]])
    np.testing.assert_allclose(y_hat[:20], loop, rtol=1e-6, atol=1e-6)


def test_to_params_round_trip(lecture2):
    _, _, params = lecture2
    back = FFN.from_params(params).to_params()
    assert list(back) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])


@pytest.mark.parametrize("hidden", [(), (16,), (16, 8), (4, 5, 6)])
@pytest.mark.parametrize("in_size, out_size", [(1, 1), (3, 2)])
def test_shapes_any_depth_and_mimo(hidden, in_size, out_size):
    model = FFN(in_size, out_size, hidden, key=jr.key(0))
    assert model.hidden_sizes == hidden
    assert len(model.layers) == len(hidden) + 1
    assert model(jnp.ones(in_size)).shape == (out_size,)
    assert jax.vmap(model)(jnp.ones((7, in_size))).shape == (7, out_size)
    sizes = (in_size, *hidden, out_size)
    assert model.n_params == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def test_affine_map_is_exact():
    model = FFN(2, 3, (), key=jr.key(1))
    (layer,) = model.layers
    x = jnp.array([0.5, -2.0])
    np.testing.assert_allclose(model(x), layer.weight @ x + layer.bias, rtol=1e-6)


def test_hidden_sizes_int_and_no_bias():
    model = FFN(1, 1, 8, use_bias=False, key=jr.key(0))
    assert model.hidden_sizes == (8,)
    assert all(layer.bias is None for layer in model.layers)
    assert model.n_params == 16
    assert list(model.to_params()) == ["W1", "W2"]
    again = FFN.from_params(model.to_params())
    np.testing.assert_array_equal(again(jnp.ones(1)), model(jnp.ones(1)))


def test_batch_input_error_says_vmap():
    model = FFN(1, 1, key=jr.key(0))
    with pytest.raises(ValueError, match=r"shape \(1,\).*got shape \(200, 1\).*jax\.vmap"):
        model(jnp.ones((200, 1)))
    with pytest.raises(
        ValueError, match=r"expects one sample `x` of shape \(1,\).*got shape \(3,\)"
    ):
        model(jnp.ones(3))


def test_errors_under_jit_and_vmap_too():
    model = FFN(2, 1, key=jr.key(0))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        eqx.filter_jit(model)(jnp.ones(3))
    with pytest.raises(ValueError, match=r"got shape \(4,\)"):
        jax.vmap(model)(jnp.ones((5, 4)))


def test_non_array_and_integer_input():
    model = FFN(1, 1, key=jr.key(0))
    with pytest.raises(TypeError, match=r"JAX or NumPy array of shape \(1,\); got list"):
        model([1.0])
    with pytest.raises(TypeError, match="floating-point"):
        model(jnp.ones(1, dtype=jnp.int32))
    # NumPy input is accepted
    np.testing.assert_allclose(model(np.ones(1, np.float32)), model(jnp.ones(1)))


def test_typechecker_is_active_on_return_shape():
    """The jaxtyping annotation is enforced by beartype, not only our pre-check."""

    class Broken(FFN):
        def __call__(self, x):  # returns the wrong size through the checked Dense path
            return super().__call__(x)

    model = FFN(1, 2, key=jr.key(0))
    bad_layer = Dense(jnp.ones((3, 16)), jnp.ones(3))
    broken = eqx.tree_at(lambda m: m.layers[-1], model, bad_layer)
    with pytest.raises(TypeCheckError):
        broken(jnp.ones(1))  # layer gives (3,), annotation promises (out_size=2,)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"Unknown activation 'swishy'.*'tanh'.*'relu'"):
        FFN(1, 1, activation="swishy", key=jr.key(0))
    with pytest.raises(ValueError, match=r"Unknown final_activation 'nope'"):
        FFN(1, 1, final_activation="nope", key=jr.key(0))
    with pytest.raises(ValueError, match=r"Unknown init 'xavier'.*'glorot_uniform'"):
        FFN(1, 1, init="xavier", key=jr.key(0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_size": 0}, "in_size must be an integer >= 1"),
        ({"out_size": 2.5}, "out_size must be an integer >= 1"),
        ({"hidden_sizes": (16, 0)}, r"hidden_sizes\[1\] must be an integer >= 1"),
        ({"hidden_sizes": "16"}, "hidden_sizes must be a sequence of ints"),
        ({"dtype": jnp.int32}, "dtype must be a floating-point dtype"),
    ],
)
def test_bad_settings(kwargs, match):
    args = {"in_size": 1, "out_size": 1, "key": jr.key(0)} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        FFN(**args)


def test_key_is_required_and_checked():
    with pytest.raises(TypeError, match="key must be a jax.random key"):
        FFN(1, 1, key=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(eqx_ffn.ACTIVATIONS))
def test_activations_by_name(name):
    model = FFN(1, 1, (4,), activation=name, key=jr.key(0))
    x = jnp.array([0.3])
    layer1, layer2 = model.layers
    h = eqx_ffn.ACTIVATIONS[name](layer1.weight @ x + layer1.bias)
    np.testing.assert_allclose(model(x), layer2.weight @ h + layer2.bias, rtol=1e-6)
    assert model.activation_name == name


def test_callable_activation_and_final_activation():
    model = FFN(1, 2, (4,), activation=jnp.sin, final_activation="sigmoid", key=jr.key(0))
    assert model.activation_name is None
    out = model(jnp.array([0.1]))
    assert jnp.all((out > 0) & (out < 1))


def test_from_params_errors():
    w = jnp.ones((16, 1))
    with pytest.raises(ValueError, match="consecutive weights W1..W2"):
        FFN.from_params({"W1": w, "W3": jnp.ones((1, 16))})
    with pytest.raises(ValueError, match=r"params\['b1'\] must have shape \(16,\)"):
        FFN.from_params({"W1": w, "b1": jnp.ones(3)})
    with pytest.raises(ValueError, match="do not chain"):
        FFN.from_params({"W1": w, "W2": jnp.ones((1, 8))})
    with pytest.raises(ValueError, match="Unexpected key 'w1'"):
        FFN.from_params({"w1": w})


def test_float64_in_subprocess():
    from conftest import run_python

    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import jax.numpy as jnp, jax.random as jr, eqx_ffn\n"
        "m = eqx_ffn.FFN(2, 1, (8,), init='glorot_normal', key=jr.key(0))\n"
        "assert m.dtype == jnp.float64, m.dtype\n"
        "y = jax.vmap(m)(jnp.ones((3, 2)))\n"
        "assert y.dtype == jnp.float64, y.dtype\n"
        "m32 = eqx_ffn.FFN(2, 1, (8,), dtype=jnp.float32, key=jr.key(0))\n"
        "assert m32.dtype == jnp.float32\n"
        "p, un = eqx_ffn.ravel(m); assert p.dtype == jnp.float64\n"
        "print('ok')\n"
    )
    assert run_python(code, timeout=120).strip() == "ok"


def test_dtype_argument():
    model = FFN(1, 1, key=jr.key(0), dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(model.to_params()))


def test_same_key_same_model_and_different_key_differs():
    a = FFN(3, 2, (8, 8), init="kaiming_uniform", key=jr.key(7))
    b = FFN(3, 2, (8, 8), init="kaiming_uniform", key=jr.key(7))
    c = FFN(3, 2, (8, 8), init="kaiming_uniform", key=jr.key(8))
    pa, pb, pc = (eqx_ffn.ravel(m)[0] for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)


def test_summary():
    text = eqx_ffn.summary(FFN(1, 1, (16,), key=jr.key(0)))
    assert "FFN 1 -> [16] -> 1, activation=tanh" in text
    assert "(16, 1)" in text and "(1, 16)" in text
    assert text.splitlines()[-1].split() == ["total", "49"]
