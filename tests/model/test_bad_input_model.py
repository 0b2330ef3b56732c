"""Bad input to the networks: FFN and Dense refuse wrong settings and arrays with a clear error."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN, Dense

FFN_CASES = [
    ({"in_size": 0}, ValueError, "in_size must be an integer >= 1; got 0"),
    ({"in_size": "two"}, TypeError, "in_size must be an integer >= 1; got 'two'"),
    ({"in_size": 2.5}, TypeError, "in_size must be an integer >= 1; got 2.5"),
    ({"in_size": True}, TypeError, "in_size must be an integer >= 1; got True"),
    ({"out_size": -1}, ValueError, "out_size must be an integer >= 1; got -1"),
    ({"hidden_sizes": (16, 0)}, ValueError, r"hidden_sizes\[1\] must be an integer >= 1"),
    ({"hidden_sizes": "16"}, TypeError, "hidden_sizes must be a sequence of ints"),
    ({"hidden_sizes": (2**62,)}, ValueError, r"hidden_sizes\[0\] must be an integer <= 2147483647"),
    (
        {"in_size": 10**6, "out_size": 10**6, "hidden_sizes": ()},
        ValueError,
        "GiB .* more than this device's",
    ),
    ({"hidden_sizes": (10**5, 10**5)}, ValueError, "more than this device's"),
    ({"dtype": "bad"}, TypeError, "dtype must be a floating dtype such as jnp.float32"),
    ({"dtype": jnp.int32}, ValueError, "dtype must be a floating-point dtype"),
    ({"dtype": jnp.float64}, ValueError, "dtype=float64 needs 64-bit JAX"),
    ({"use_bias": "false"}, TypeError, "use_bias must be True or False; got 'false'"),
    ({"use_bias": 0}, TypeError, "use_bias must be True or False; got 0"),
    ({"key": 42}, TypeError, "key must be a jax.random key"),
    ({"key": jnp.zeros(3)}, TypeError, "key must be a jax.random key"),
    ({"init": "xavier"}, ValueError, "Unknown init 'xavier'"),
    ({"activation": "swishy"}, ValueError, "Unknown activation 'swishy'"),
    (
        {"precision": "fast"},
        ValueError,
        "precision must be one of None, 'default', 'high', 'highest'",
    ),
]


@pytest.mark.parametrize("kwargs, exc, match", FFN_CASES)
def test_ffn_refuses_bad_settings(kwargs, exc, match):
    args = {"in_size": 1, "out_size": 1, "key": jr.key(0)} | kwargs
    with pytest.raises(exc, match=match):
        FFN(**args)


@pytest.mark.parametrize(
    "weight, bias, exc, match",
    [
        (np.ones(3), None, ValueError, r"Dense weight must have shape \(out_size, in_size\)"),
        (np.ones((0, 3)), None, ValueError, "both sizes >= 1"),
        (np.ones((2, 3), np.int32), None, TypeError, "Dense weight must be a floating-point array"),
        (np.ones((2, 3)), np.ones(3), ValueError, r"Dense bias must have shape \(2,\)"),
        (np.ones((2, 3)), np.ones(2, np.int32), TypeError, "Dense bias must be a floating-point"),
    ],
)
def test_dense_refuses_bad_arrays(weight, bias, exc, match):
    with pytest.raises(exc, match=match):
        Dense(weight, bias)


def test_summary_names_a_stacked_ensemble():
    import equinox as eqx

    from eqx_ffn import summary

    models = eqx.filter_vmap(lambda k: FFN(2, 1, (4,), key=k))(jr.split(jr.key(0), 3))
    assert "a stacked ensemble of 3 members" in summary(models)
    assert "stacked" not in summary(FFN(2, 1, (4,), key=jr.key(0)))
