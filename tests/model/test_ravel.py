from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eqx_ffn
from eqx_ffn import FFN


def test_ravel_is_the_lecture_vec_order(lecture1):
    _, _, p = lecture1
    model = FFN.from_params(p)
    flat, _ = eqx_ffn.ravel(model)
    # vec(W1, b1, W2, b2), each matrix row-major, built by hand
    expected = []
    for name in ["W1", "b1", "W2", "b2"]:
        arr = np.asarray(p[name])
        if arr.ndim == 2:
            for r in range(arr.shape[0]):
                expected.extend(arr[r, :].tolist())
        else:
            expected.extend(arr.tolist())
    assert flat.shape == (49,)
    np.testing.assert_array_equal(flat, np.asarray(expected, np.float32))


def test_unravel_rebuilds_a_working_model(lecture1):
    x, _, p = lecture1
    model = FFN.from_params(p)
    flat, unravel = eqx_ffn.ravel(model)
    moved = unravel(flat + 1.0)
    assert isinstance(moved, FFN)
    np.testing.assert_array_equal(moved.layers[0].bias, p["b1"] + 1.0)
    with pytest.raises(ValueError, match=r"shape \(49,\)"):
        unravel(jnp.ones(48))
    # works under jit and grad: the lecture's y = f(p, x)
    f = jax.jit(lambda q: jnp.sum(jax.vmap(unravel(q))(x)))
    assert jax.grad(f)(flat).shape == (49,)


@settings(max_examples=12, deadline=None)
@given(
    in_size=st.integers(1, 4),
    out_size=st.integers(1, 4),
    hidden=st.lists(st.integers(1, 6), max_size=3),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_unravel_ravel_round_trip(in_size, out_size, hidden, use_bias, seed):
    # layers from NumPy: no initialisation program to compile for each random architecture
    rng = np.random.default_rng(seed)
    sizes = (in_size, *hidden, out_size)
    layers = [
        eqx_ffn.Dense(
            rng.normal(size=(b, a)).astype(np.float32),
            rng.normal(size=b).astype(np.float32) if use_bias else None,
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    model = FFN.from_layers(layers)
    flat, unravel = eqx_ffn.ravel(model)
    assert flat.shape == (model.n_params,)
    back = unravel(flat)
    assert bool(eqx.tree_equal(back, model))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)
