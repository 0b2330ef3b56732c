"""Each initialisation's empirical variance against its formula, on a wide layer."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN

FAN_IN, FAN_OUT = 400, 600

EXPECTED_VAR = {
    "normal": 1.0,
    "glorot_uniform": 2.0 / (FAN_IN + FAN_OUT),
    "glorot_normal": 2.0 / (FAN_IN + FAN_OUT),
    "kaiming_uniform": 2.0 / FAN_IN,
    "kaiming_normal": 2.0 / FAN_IN,
    "lecun_normal": 1.0 / FAN_IN,
    "equinox": 1.0 / (3 * FAN_IN),  # uniform on ±1/sqrt(fan_in)
}


@pytest.mark.parametrize("init", sorted(EXPECTED_VAR))
def test_weight_variance_matches_formula(init):
    model = FFN(FAN_IN, FAN_OUT, (), init=init, key=jr.key(3))
    w = np.asarray(model.layers[0].weight)
    assert w.shape == (FAN_OUT, FAN_IN)
    # 240,000 draws: the sample variance is within ~0.6% (3 sigma) of the truth
    np.testing.assert_allclose(w.var(), EXPECTED_VAR[init], rtol=0.02)
    assert abs(w.mean()) < 0.01 * np.sqrt(EXPECTED_VAR[init]) * 10


@pytest.mark.parametrize("init", ["glorot_uniform", "kaiming_uniform", "equinox"])
def test_uniform_bounds(init):
    w = np.asarray(FFN(FAN_IN, FAN_OUT, (), init=init, key=jr.key(4)).layers[0].weight)
    bound = np.sqrt(3 * EXPECTED_VAR[init])
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * bound


@pytest.mark.parametrize(
    "init", ["glorot_uniform", "glorot_normal", "kaiming_normal", "lecun_normal"]
)
def test_biases_zero_for_scaled_schemes(init):
    model = FFN(3, 2, (5,), init=init, key=jr.key(0))
    for layer in model.layers:
        np.testing.assert_array_equal(layer.bias, jnp.zeros_like(layer.bias))


def test_normal_biases_are_standard_normal():
    bias = np.asarray(FFN(2, 20000, (), key=jr.key(5)).layers[0].bias)
    np.testing.assert_allclose(bias.var(), 1.0, rtol=0.05)


def test_equinox_init_is_eqx_nn_linear():
    key = jr.key(9)
    model = FFN(3, 4, (), init="equinox", key=key)
    (layer_key,) = jr.split(key, 1)
    lin = eqx.nn.Linear(3, 4, key=layer_key)
    np.testing.assert_array_equal(model.layers[0].weight, lin.weight)
    np.testing.assert_array_equal(model.layers[0].bias, lin.bias)


@pytest.mark.parametrize(
    ("init", "sizes", "use_bias", "raw_key"),
    [
        ("normal", (3, 7, 5, 2), True, False),
        ("normal", (10, 1, 10), False, True),
        ("glorot_uniform", (64, 100, 10), True, False),
        ("kaiming_uniform", (3, 7, 5, 2), False, True),
    ],
)
def test_one_batched_draw_equals_the_layer_by_layer_draws(init, sizes, use_bias, raw_key):
    # FFN draws these schemes for all layers in one vmapped jr.normal / jr.uniform (a program a
    # third the size): bit for bit what init_dense (jax.nn.initializers) draws layer by layer
    import jax

    from eqx_ffn.model._init import init_dense

    key = jr.PRNGKey(5) if raw_key else jr.key(3)
    pairs = list(zip(sizes[:-1], sizes[1:]))

    @jax.jit
    def layer_by_layer(key):
        keys = jr.split(key, len(pairs))
        return [init_dense(init, a, b, use_bias, jnp.float32, key=k)
                for k, (a, b) in zip(keys, pairs)]  # fmt: skip

    model = FFN(sizes[0], sizes[-1], sizes[1:-1], init=init, use_bias=use_bias, key=key)
    for layer, (w, b) in zip(model.layers, layer_by_layer(key), strict=True):
        np.testing.assert_array_equal(layer.weight, w)
        if use_bias:
            np.testing.assert_array_equal(layer.bias, b)
        else:
            assert layer.bias is None and b is None


def test_models_built_under_vmap_draw_in_one_program_and_equal_their_own_draws():
    # vmap over keys (what fit_ensemble does) runs one batched draw program, not one per op;
    # under an outer jit the draw is inlined (compiler options are refused there)
    import equinox as eqx
    import jax

    from eqx_ffn.model import _ffn

    keys = jr.split(jr.key(8), 3)
    _ffn._jitted_draw.cache_clear()
    batched = eqx.filter_vmap(lambda k: FFN(2, 1, (5,), key=k))(keys)
    assert _ffn._jitted_draw.cache_info().misses == 1
    jitted = eqx.filter_jit(eqx.filter_vmap(lambda k: FFN(2, 1, (5,), key=k)))(keys)
    assert _ffn._jitted_draw.cache_info().misses == 1  # inlined, not the top-level program
    for i, key in enumerate(keys):
        alone = FFN(2, 1, (5,), key=key)
        for a, b, c in zip(alone.layers, batched.layers, jitted.layers, strict=True):
            np.testing.assert_array_equal(a.weight, b.weight[i])
            np.testing.assert_array_equal(a.bias, c.bias[i])
    assert jax.numpy.shape(batched.layers[0].weight) == (3, 5, 2)
