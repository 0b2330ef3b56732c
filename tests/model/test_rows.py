"""`apply_rows`: a batch of rows through a model, feature-major for an `FFN` on a CPU; and the
fits that use it."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN, Dense, Standardized, fit
from eqx_ffn.model._rows import FEATURE_MAJOR_MAX_WEIGHT, apply_rows, feature_major_ok
from eqx_ffn.training import _prepare
from eqx_ffn.training._options import FitOptions

X = np.random.default_rng(0).standard_normal((37, 3)).astype(np.float32)
Y = np.sin(X[:, :1]) + 0.1 * X[:, 1:2]


def _vmapped(model, x):
    return jax.vmap(model.__call__)(x)


@pytest.mark.parametrize(
    "model",
    [
        FFN(3, 2, (8, 5), key=jr.key(0)),
        FFN(3, 2, (6,), activation="relu", final_activation="sigmoid", use_bias=False,
            precision="highest", key=jr.key(1)),
        Standardized.around(FFN(3, 1, (8,), key=jr.key(4)), X, Y),
    ],
    ids=["tanh", "relu-sigmoid-no-bias", "standardized"],
)  # fmt: skip
def test_feature_major_agrees_with_vmap(model):
    assert feature_major_ok(model)
    got = eqx.filter_jit(lambda m, x: apply_rows(m, x, feature_major=True))(model, X)
    want = _vmapped(model, jnp.asarray(X))
    assert got.shape == want.shape == (37, model.out_size)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)

    # and the gradient with respect to every weight
    def loss(m, rows):
        return jnp.sum(jnp.sin(rows(m)))

    g_fm = eqx.filter_grad(loss)(model, lambda m: apply_rows(m, jnp.asarray(X), feature_major=True))
    g_vm = eqx.filter_grad(loss)(model, lambda m: _vmapped(m, jnp.asarray(X)))
    for a, b in zip(jax.tree.leaves(g_fm), jax.tree.leaves(g_vm), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_other_models_are_vmapped_unchanged():
    wide = int(np.sqrt(FEATURE_MAJOR_MAX_WEIGHT)) + 1
    custom = FFN(3, 2, (8,), activation=lambda v: v / (1 + jnp.abs(v)), key=jr.key(0))
    big = FFN(3, 1, (wide, wide), key=jr.key(0))
    for model in (custom, big):
        assert not feature_major_ok(model)
        got = apply_rows(model, jnp.asarray(X), feature_major=True)
        np.testing.assert_array_equal(got, _vmapped(model, jnp.asarray(X)))
    # without the flag, every model is vmapped
    small = FFN(3, 2, (8,), key=jr.key(0))
    np.testing.assert_array_equal(apply_rows(small, jnp.asarray(X)), _vmapped(small, X))


def test_an_ffn_with_a_layer_of_its_own_is_vmapped():
    class Scaled(eqx.Module):
        inner: Dense

        def __call__(self, x):
            return 2.0 * self.inner(x)

    model = FFN(3, 2, (8,), key=jr.key(0))
    edited = eqx.tree_at(lambda m: m.layers[1], model, Scaled(model.layers[1]))
    assert not feature_major_ok(edited)
    got = apply_rows(edited, jnp.asarray(X), feature_major=True)
    np.testing.assert_array_equal(got, _vmapped(edited, jnp.asarray(X)))
    np.testing.assert_allclose(got, 2.0 * _vmapped(model, jnp.asarray(X)), rtol=1e-6)


def test_the_non_array_part_decides():
    model = FFN(3, 2, (8,), key=jr.key(0))
    _, static = eqx.partition(model, eqx.is_inexact_array)
    assert feature_major_ok(static)
    assert not feature_major_ok(object())


def _config(model, **kw):
    base = dict(steps=3, progress=False, key=jr.key(0), optimizer="adam")
    base.update(kw)
    prep = _prepare.Prepared(model, X, Y, FitOptions.of(base))
    return prep.config(eqx.partition(model, eqx.is_inexact_array)[1])


def test_cpu_fits_of_small_ffns_run_feature_major():
    assert _config(FFN(3, 1, (8,), key=jr.key(0))).feature_major
    assert not _config(FFN(3, 1, (8,), key=jr.key(0)), optimizer="lm").feature_major
    wide = int(np.sqrt(FEATURE_MAJOR_MAX_WEIGHT)) + 1
    assert not _config(FFN(3, 1, (wide, wide), key=jr.key(0))).feature_major


def test_a_feature_major_fit_tracks_the_vmapped_one(monkeypatch):
    model = Standardized.around(FFN(3, 1, (16,), key=jr.key(0)), X, Y)
    kw = dict(steps=300, learning_rate=1e-2, progress=False, key=jr.key(1))
    fm, h_fm = fit(model, X, Y, **kw)
    again, _ = fit(model, X, Y, **kw)
    for a, b in zip(jax.tree.leaves(fm), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)  # deterministic
    monkeypatch.setattr(_prepare, "feature_major_ok", lambda static: False)
    _, h_vm = fit(model, X, Y, **kw)
    np.testing.assert_allclose(h_fm.loss, h_vm.loss, rtol=1e-4)
    assert h_fm.loss[-1] < 0.2 * h_fm.loss[0]
