"""`Standardizer` and `Standardized`: what they compute (bad arguments are in
test_bad_input_files.py)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqx_ffn import FFN, Dense, Standardized, Standardizer


def test_fit_gives_column_means_and_spreads():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[3.0, -200.0], scale=[0.5, 40.0], size=(500, 2))
    s = Standardizer.fit(x)
    assert s.mean.dtype == jnp.float32 and s.scale.dtype == jnp.float32  # JAX's default float
    np.testing.assert_allclose(s.mean, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s.scale, x.std(axis=0), rtol=1e-6)
    z = s.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5)
    one = s.transform(x[0])  # one sample (d,) works as a batch does
    np.testing.assert_allclose(one, z[0], rtol=1e-6)


def test_constant_columns_get_scale_one_and_map_to_zero():
    # 0.1 sums to 0.30000000000000004: a naive mean leaves a tiny spread, and the constant
    # column would map to -1 or 1 instead of 0.
    x = np.array([[0.1, 5.0, -7.25], [0.1, 6.0, -7.25], [0.1, 7.0, -7.25]])
    s = Standardizer.fit(x)
    np.testing.assert_array_equal(np.asarray(s.scale)[[0, 2]], [1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(s.mean)[[0, 2]], np.float32([0.1, -7.25]))
    np.testing.assert_array_equal(np.asarray(s.transform(x))[:, [0, 2]], 0.0)


def test_fit_does_not_overflow_near_the_top_of_the_range():
    # float32 data whose squares overflow float32: a naive std is inf, so every z would be 0.
    x = np.array([[0.0, 1e30], [1e20, -1e30]], np.float32)
    s = Standardizer.fit(x)
    np.testing.assert_allclose(s.scale, [5e19, 1e30], rtol=1e-6)
    np.testing.assert_allclose(s.transform(x), [[-1.0, 1.0], [1.0, -1.0]], rtol=1e-6)


def test_fit_accepts_integers_booleans_and_one_column():
    s = Standardizer.fit(np.array([1, 2, 3]))
    assert s.size == 1 and s.mean.dtype == jnp.float32
    np.testing.assert_allclose(s.mean, [2.0])
    b = Standardizer.fit(np.array([[True], [False]]))
    np.testing.assert_allclose((b.mean, b.scale), ([0.5], [0.5]))


def test_integer_arguments_become_the_default_float():
    s = Standardizer(np.array([0, 1]), np.array([1, 2]))
    assert s.mean.dtype == s.scale.dtype == jnp.float32
    s16 = Standardizer(jnp.zeros(2, jnp.float16), jnp.ones(2, jnp.float32))
    assert s16.mean.dtype == s16.scale.dtype == jnp.float32  # one common dtype


def test_traced_scalers_are_built_without_values():
    """Inside jit / eval_shape there are no values to check; building must still work."""
    shape = eqx.filter_eval_shape(lambda: Standardizer(jnp.zeros(3), jnp.zeros(3)))
    assert shape.mean.shape == (3,)

    @jax.jit
    def make_and_apply(mean, scale, x):
        return Standardizer(mean, scale).transform(x)

    np.testing.assert_allclose(make_and_apply(jnp.ones(2), 2 * jnp.ones(2), jnp.ones(2)), 0.0)


def test_standardized_predicts_in_physical_units():
    net = FFN.from_layers([Dense(np.array([[2.0]], np.float32), np.array([0.5], np.float32))])
    x = np.array([[1.0], [3.0]])
    y = np.array([[10.0], [30.0]])
    model = Standardized.around(net, x, y)
    # x -> (x - 2) / 1 -> 2 z + 0.5 -> * 10 + 20
    np.testing.assert_allclose(jax.vmap(model)(jnp.asarray(x, jnp.float32)), [[5.0], [45.0]])
    assert Standardized(net).x_scaler is None


@pytest.mark.parametrize("edit", ["mean", "scale"])
def test_standardized_rechecks_edited_scalers(edit):
    s = Standardizer.fit(np.arange(4.0).reshape(2, 2))
    bad = eqx.tree_at(lambda t: getattr(t, edit), s, jnp.array([jnp.nan, 1.0]))
    net = FFN.from_layers([Dense(np.ones((2, 2), np.float32), None)])
    with pytest.raises(ValueError, match=rf"Standardized: y_scaler.{edit} must be finite"):
        Standardized(net, s, bad)
