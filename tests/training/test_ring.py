"""The ring guard of large networks (`Config.ring`, `_program.member_step`): the last finite
parameters kept without a copy a step, and every result the plain guard gives."""

from __future__ import annotations

import re
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn import FFN, fit
from eqx_ffn.training import _fit, _prepare, _program_cache, _schedule
from eqx_ffn.training._ensemble import fit_ensemble
from eqx_ffn.training._options import FitOptions


def _data(n=512):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1)).astype(np.float32)
    return x, np.sin(3 * x).astype(np.float32)


def _model(key=0):
    return FFN(1, 1, (32, 32), key=jr.key(key))  # its step is not small at N = 512


@pytest.fixture
def ring(monkeypatch, program_configs):
    """Every program with a step that is not small takes the ring guard; returns the configs
    of the programs the fits ran."""
    monkeypatch.setattr(_schedule, "RING_MIN_WEIGHTS", 0)
    return program_configs


def _flat(model):
    return np.asarray(eqx_ffn.ravel(model)[0])


def _nan_after(threshold, w00):
    """A loss that turns NaN once the first weight has moved by more than `threshold`."""

    def loss(model, xb, yb):
        w = model.layers[0].weight
        mse = jnp.mean((yb - jax.vmap(model)(xb)) ** 2)
        return jnp.where(jnp.abs(w[0, 0] - w00) > threshold, jnp.nan, mse)

    return loss


def test_large_networks_take_the_ring_guard():
    def schedule_of(model, x, y, **kw):
        prep = _prepare.Prepared(model, x, y, FitOptions(**{"progress": False, **kw}))
        return prep.schedule, prep.config(_fit.split_model(model)[2])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 784)).astype(np.float32)
    y = rng.integers(0, 10, 256).astype(np.int32)
    mnist = FFN(784, 10, (256, 256), activation="relu", key=jr.key(0))
    s, cfg = schedule_of(mnist, x, y, batch_size=128, loss="softmax_cross_entropy")
    assert s.ring and cfg.ring and s.chunk % 2 == 0 and s.unroll == 2
    s, cfg = schedule_of(mnist, x, y, batch_size=128, loss="softmax_cross_entropy", _unroll=1)
    assert not s.ring and not cfg.ring  # an odd unroll cannot rotate the buffers in place
    xs, ys = _data(200)
    s, cfg = schedule_of(FFN(1, 1, (16,), key=jr.key(0)), xs, ys)  # the lecture's: a copy is cheap
    assert not s.ring and not cfg.ring


@pytest.mark.parametrize("stops", [(0.0031, 0.0042)])  # the NaN at steps 4 and 5: both slots
def test_ring_guard_returns_the_last_finite_model(ring, stops):
    x, y = _data()
    w00 = float(_model().layers[0].weight[0, 0])
    kw = dict(steps=200, learning_rate=1e-3, progress=False)
    parities = set()
    for threshold in stops:
        loss = _nan_after(threshold, w00)
        with pytest.warns(eqx_ffn.NonFiniteLossWarning, match="non-finite at step"):
            model, h = fit(_model(), x, y, loss=loss, **kw)
        assert ring[-1].ring and ring[-1].unroll == 2
        assert h.stop_reason == "non_finite_loss" and 0 < h.steps < 200
        parities.add(h.steps % 2)
        # the model whose loss was recorded last, bit for bit the fit that stops just before
        mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
        np.testing.assert_allclose(mse, h.loss[-1], rtol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", eqx_ffn.NonFiniteLossWarning)
            before, hb = fit(_model(), x, y, loss=loss, **{**kw, "steps": h.steps})
        np.testing.assert_array_equal(_flat(before), _flat(model))
        np.testing.assert_array_equal(hb.loss, h.loss)
    assert parities == {0, 1}  # a pair's first and second step


def test_ring_guard_agrees_with_the_plain_guard(ring, monkeypatch):
    # completed fits of an odd and an even length: the same models as the plain guard's
    # program, to float32 rounding (the two programs' kernels differ). Plain gradient descent:
    # Adam's first steps move every weight by about the learning rate whatever its gradient's
    # size, so a rounding difference in a near-zero gradient would show at that size
    x, y = _data()
    runs = [dict(steps=7, optimizer="sgd", learning_rate=0.05), dict(steps=8, optimizer="sgd")]
    got = [fit(_model(), x, y, progress=False, **kw) for kw in runs]
    assert all(cfg.ring for cfg in ring)
    monkeypatch.setattr(_schedule, "RING_MIN_WEIGHTS", 1 << 60)
    plain = [fit(_model(), x, y, progress=False, **kw) for kw in runs]
    assert not ring[-1].ring
    for (m, h), (mp, hp) in zip(got, plain, strict=True):
        assert h.steps == hp.steps and h.stop_reason == hp.stop_reason == "completed"
        np.testing.assert_allclose(_flat(m), _flat(mp), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(h.loss, hp.loss, rtol=1e-5)


def test_ring_guard_plateau_stop_returns_the_model_of_its_step(ring):
    x, y = _data()
    m, h = fit(_model(), x, y, progress=False, steps=400, tol=1e-2, n_iter_no_change=3)
    assert ring[-1].ring and h.stop_reason == "converged" and h.steps < 400
    again, _ = fit(_model(), x, y, progress=False, steps=h.steps)
    np.testing.assert_array_equal(_flat(again), _flat(m))


def test_ring_guard_in_an_ensemble_keeps_each_members_last_finite_model(ring):
    x, y = _data()
    lrs = jnp.array([1e-2, 1e3])
    with pytest.warns(eqx_ffn.NonFiniteLossWarning, match="Ensemble member 1"):
        models, hs = fit_ensemble(
            lambda k: FFN(1, 1, (32, 32), key=k), x, y, keys=jr.split(jr.key(0), 2),
            optimizer="sgd", learning_rate=lrs, steps=60, progress=False,
        )  # fmt: skip
    assert ring[-1].ring and ring[-1].ensemble
    assert hs[0].stop_reason == "completed" and hs[1].stop_reason in ("diverged", "non_finite_loss")
    # the completed member returns its last parameters, the diverged one its last finite ones
    for j, expected in ((0, hs[0].final_loss), (1, hs[1].loss[-1])):
        member = jax.tree.map(lambda a, j=j: a[j] if eqx.is_array(a) else a, models)
        mse = jnp.mean((y - jax.vmap(member)(x)) ** 2)
        np.testing.assert_allclose(mse, expected, rtol=1e-4)


def test_ring_guard_callbacks_see_the_trained_model(ring):
    x, y = _data()
    seen = {}

    def watch(info):
        seen[info.step] = _flat(info.model)

    kw = dict(learning_rate=1e-2, progress=False)
    fit(_model(), x, y, steps=12, callbacks=[watch], callback_every=4, **kw)
    assert ring[-1].ring and len(seen) >= 2
    for step, flat in seen.items():
        ref, _ = fit(_model(), x, y, steps=step, **kw)
        np.testing.assert_array_equal(_flat(ref), flat)


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="XLA CPU's buffer assignment")
def test_ring_guard_copies_no_parameters_a_step(ring, monkeypatch):
    x, y = _data()

    n = _flat(_model()).size  # the trained parameters, as one vector or as the hidden weights

    def copies() -> int:  # copies of the parameters outside the entry computation
        text = list(_program_cache._programs.entries.values())[-1].as_text()
        body = text.split("\nENTRY ")[0]
        return len(re.findall(rf"= f32\[({n}|32,32)\]\S* copy\(", body))

    fit(_model(), x, y, steps=10, progress=False)
    ring_copies = copies()
    monkeypatch.setattr(_schedule, "RING_MIN_WEIGHTS", 1 << 60)
    fit(_model(), x, y, steps=10, progress=False)
    assert ring_copies < copies()
