from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn import FFN, ensemble_member, ensemble_predict, fit, fit_ensemble


def make(k):
    return FFN(1, 1, (16,), init="glorot_normal", key=k)


KEYS = jr.split(jr.key(0), 8)


@pytest.fixture(scope="module")
def ensemble(lecture1):
    x, y, _ = lecture1
    return fit_ensemble(make, x, y, keys=KEYS, steps=200, batch_size=50, progress=False)


def test_members_equal_separate_fits(ensemble, lecture1):
    x, y, _ = lecture1
    models, histories = ensemble
    assert len(histories) == 8
    assert models.layers[0].weight.shape == (8, 16, 1)
    for i in range(8):
        model_key, fit_key = jr.split(KEYS[i])
        single, h = fit(
            make(model_key), x, y, steps=200, batch_size=50, key=fit_key, progress=False
        )
        np.testing.assert_allclose(histories[i].loss, h.loss, rtol=1e-4)
        np.testing.assert_allclose(histories[i].final_loss, h.final_loss, rtol=1e-4)
        got, _ = eqx_ffn.ravel(ensemble_member(models, i))
        want, _ = eqx_ffn.ravel(single)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    # members differ from each other
    assert not np.allclose(histories[0].loss, histories[1].loss)


def test_ensemble_predict(ensemble, lecture1):
    x, _, _ = lecture1
    models, _ = ensemble
    mean, std = ensemble_predict(models, x)
    preds = np.stack([jax.vmap(ensemble_member(models, i))(x) for i in range(8)])
    np.testing.assert_allclose(mean, preds.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, preds.std(0), rtol=1e-4, atol=1e-6)
    # spread grows away from the data on [-1, 1]
    far = jnp.array([[3.0], [-3.0]])
    assert ensemble_predict(models, far)[1].mean() > std.mean()
    with pytest.raises(ValueError, match=r"x must have shape \(N, in_size\) = \(N, 1\)"):
        ensemble_predict(models, x[:, 0])


def test_per_member_learning_rates_and_guard(lecture1):
    x, y, _ = lecture1
    lrs = jnp.array([1e-2, 1e3])
    with pytest.warns(eqx_ffn.NonFiniteLossWarning, match="Ensemble member 1"):
        models, hs = fit_ensemble(
            make, x, y, keys=KEYS[:2], optimizer="sgd", learning_rate=lrs, steps=100, progress=False
        )
    assert hs[0].stop_reason == "completed"
    assert hs[1].stop_reason in ("diverged", "non_finite_loss")
    assert hs[0].steps == 100 and hs[1].steps < 100
    assert np.all(np.isfinite(eqx_ffn.ravel(models)[0]))
    model_key, fit_key = jr.split(KEYS[0])
    _, h = fit(
        make(model_key),
        x,
        y,
        optimizer="sgd",
        learning_rate=1e-2,
        steps=100,
        key=fit_key,
        progress=False,
    )
    np.testing.assert_allclose(hs[0].loss, h.loss, rtol=1e-5)


def test_per_member_l2_and_early_stopping(lecture1):
    x, y, _ = lecture1
    xv, yv = x[:50], -0.2 * y[:50]
    models, hs = fit_ensemble(
        make,
        x,
        y,
        keys=KEYS[:3],
        l2=jnp.array([0.0, 0.01, 1.0]),
        steps=600,
        validation=(xv, yv),
        eval_every=10,
        patience=3,
        progress=False,
    )
    assert len({h.steps for h in hs}) >= 2 or all(h.stop_reason == "early_stopping" for h in hs)
    for i, h in enumerate(hs):
        if h.stop_reason == "early_stopping":
            best = int(np.argmin(h.val_loss))
            member = ensemble_member(models, i)
            val = jnp.mean((jax.vmap(member)(xv) - yv) ** 2)
            np.testing.assert_allclose(val, h.val_loss[best], rtol=1e-4)


def test_bad_ensemble_arguments(lecture1):
    x, y, _ = lecture1
    with pytest.raises(
        ValueError, match=r"learning_rate must be a number or an array of shape \(8,\)"
    ):
        fit_ensemble(make, x, y, keys=KEYS, learning_rate=jnp.ones(3), steps=1)
    with pytest.raises(ValueError, match="keys must be a 1-D array"):
        fit_ensemble(make, x, y, keys=jr.key(0), steps=1)
    with pytest.raises(ValueError, match="need an optimizer given by name"):
        fit_ensemble(make, x, y, keys=KEYS, optimizer="lbfgs", learning_rate=jnp.ones(8), steps=1)
