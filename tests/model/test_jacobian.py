"""`jacobian` and `linearize`: the fitted map's input Jacobian and local linear model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN, Standardized
from eqx_ffn.model._jacobian import jacobian, linearize


@pytest.fixture(scope="module")
def net():
    return FFN(3, 2, (8,), key=jr.key(1))


@pytest.fixture(scope="module")
def points():
    return jr.normal(jr.key(2), (5, 3))


def test_one_sample_equals_jacfwd(net, points):
    with jax.default_matmul_precision("highest"):
        a = jacobian(net, points[0])
        ref = jax.jacfwd(net)(points[0])
    assert a.shape == (2, 3)
    np.testing.assert_allclose(a, ref, rtol=1e-6, atol=1e-7)


def test_batch_equals_jacfwd_per_sample(net, points):
    with jax.default_matmul_precision("highest"):
        a = jacobian(net, points)
        ref = jax.jit(jax.vmap(jax.jacfwd(net)))(points)
    assert a.shape == (5, 2, 3)
    np.testing.assert_allclose(a, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[3], jacobian(net, points[3]), rtol=1e-5, atol=1e-6)
    # NumPy input and more inputs than outputs (reverse mode) agree too
    wide = FFN(4, 1, (8,), key=jr.key(3))
    xs = np.asarray(jr.normal(jr.key(4), (3, 4)))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            jacobian(wide, xs), jax.vmap(jax.jacfwd(wide))(jnp.asarray(xs)), rtol=1e-6, atol=1e-7
        )


def test_linear_network_gives_its_weight_exactly(points):
    lin = FFN(3, 2, hidden_sizes=(), key=jr.key(5))
    w = lin.layers[0].weight
    np.testing.assert_array_equal(jacobian(lin, points[0]), w)
    np.testing.assert_array_equal(jacobian(lin, points), jnp.broadcast_to(w, (5, 2, 3)))
    y0, a = linearize(lin, points[1])
    np.testing.assert_array_equal(a, w)
    np.testing.assert_array_equal(y0, lin(points[1]))


def test_linearize_is_first_order_accurate(net, points):
    x0 = points[0]
    y0, a = linearize(net, x0)
    assert y0.shape == (2,) and a.shape == (2, 3)
    np.testing.assert_allclose(y0, net(x0), rtol=1e-6)
    direction = jnp.array([0.3, -0.5, 0.8])
    errors = []
    for h in (1e-1, 5e-2):
        dx = h * direction
        with jax.default_matmul_precision("highest"):
            errors.append(float(jnp.linalg.norm(net(x0 + dx) - (y0 + a @ dx))))
    # second order: halving dx quarters the error (a first-order error would only halve it)
    assert errors[1] < 0.3 * errors[0]
    assert errors[0] < 0.1


def test_linearize_batch_of_operating_points(net, points):
    y0, a = linearize(net, points)
    assert y0.shape == (5, 2) and a.shape == (5, 2, 3)
    np.testing.assert_allclose(y0, jax.vmap(net)(points), rtol=1e-6)
    np.testing.assert_allclose(a, jacobian(net, points), rtol=1e-6)


def test_standardized_model_is_in_physical_units():
    inner = FFN(1, 1, hidden_sizes=(), key=jr.key(6))
    x = np.linspace(0.0, 10.0, 11)[:, None]
    y = 100.0 + 5.0 * x
    model = Standardized.around(inner, x, y)
    # d/dx [y_scale * (w * (x - mx) / x_scale + b) + my] = w * y_scale / x_scale
    w = inner.layers[0].weight[0, 0]
    expected = w * model.y_scaler.scale[0] / model.x_scaler.scale[0]
    np.testing.assert_allclose(jacobian(model, jnp.array([3.0])), [[expected]], rtol=1e-6)
    with jax.default_matmul_precision("highest"):
        ref = jax.jacfwd(model)(jnp.array([3.0]))
    np.testing.assert_allclose(jacobian(model, x), jnp.broadcast_to(ref, (11, 1, 1)), rtol=1e-6)


def test_bad_inputs_give_clear_errors(net):
    with pytest.raises(ValueError, match=r"shape \(in_size,\) = \(3,\).*\(N, 3\).*got \(2,\)"):
        jacobian(net, jnp.zeros(2))
    with pytest.raises(ValueError, match=r"got \(4, 2\)"):
        jacobian(net, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"got \(2, 2, 3\)"):
        jacobian(net, jnp.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        jacobian(net, jnp.array([0.0, jnp.nan, 1.0]))
    with pytest.raises(TypeError, match="must be a JAX or NumPy array"):
        jacobian(net, 1.0)
    with pytest.raises(TypeError, match="in_size and out_size"):
        jacobian(lambda v: v, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"x0 must have shape.*Reshape it with x\[:, None\]"):
        linearize(FFN(1, 1, key=jr.key(0)), jnp.zeros(4))
