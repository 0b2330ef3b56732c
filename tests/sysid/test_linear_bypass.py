"""NeuralStateSpace(linear=True): the linear bypass `A [x; u]` starts at zero (the model equals the
one without it), is trained by every fit, and travels through files, checkpoints and ensembles.

Kept cheap: test_checkpoint_sysid.py's small records and fit settings (4-step program calls)."""

from __future__ import annotations

import os
import signal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from synthetic import TRUNCATED as SMALL
from synthetic import tank_like

import eqx_ffn.sysid as sysid
from eqx_ffn.sysid import _fit as fit_module
from eqx_ffn.sysid._files import read_header

RECORDS = [tank_like(200, 0), tank_like(150, 1, x0=1.5)]
TRUNCATED = dict(SMALL, steps=20, _chunk=4)


def _model(linear: bool = True, **options):
    return sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0), linear=linear, **options)


def _leaves_equal(a, b) -> bool:
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb))


@pytest.fixture(scope="module")
def fitted():
    return sysid.fit(_model(), RECORDS, **TRUNCATED)


@pytest.mark.parametrize("residual", [True, False])
def test_starts_equal_to_the_model_without_it(residual):
    plain, lin = _model(False, residual=residual), _model(residual=residual)
    assert lin.linear and not plain.linear and plain.bypass is None
    assert lin.bypass is not None and lin.bypass.hidden_sizes == ()
    np.testing.assert_array_equal(lin.bypass.layers[0].weight, np.zeros((2, 3)))
    assert lin.bypass.layers[0].bias is None
    u = np.linspace(-1, 1, 30, dtype=np.float32)[:, None]
    x0 = jnp.array([0.3, -0.2])
    np.testing.assert_array_equal(sysid.simulate(lin, u, x0), sysid.simulate(plain, u, x0))
    with pytest.raises(TypeError, match="linear"):
        _model(linear="yes")  # type: ignore[arg-type]


def test_step_adds_the_bypass():
    m = _model()
    a = jr.normal(jr.key(5), (2, 3))
    with_a = eqx.tree_at(lambda n: n.bypass.layers[0].weight, m, a)
    x, u = jnp.array([0.5, -1.0]), jnp.array([2.0])
    x_next, y = with_a.step(x, u)
    x_plain, y_plain = m.step(x, u)
    np.testing.assert_allclose(x_next, x_plain + a @ jnp.concatenate([x, u]), rtol=1e-6)
    np.testing.assert_array_equal(y, y_plain)


def test_a_fit_trains_it_and_a_file_keeps_it(fitted, tmp_path):
    model, x0, history = fitted
    assert history.steps == 20 and model.encoder is not None
    assert np.abs(np.asarray(model.bypass.layers[0].weight)).max() > 1e-3  # trained
    sysid.save(tmp_path / "m.eqx", model, x0)
    header, _ = read_header(tmp_path / "m.eqx")
    assert header["config"]["linear"] is True
    loaded, x0_loaded = sysid.load(tmp_path / "m.eqx")
    assert loaded.linear and _leaves_equal(loaded, model)
    np.testing.assert_array_equal(x0_loaded, x0)
    rec = RECORDS[0]
    xa = sysid.estimate_initial_state(model, rec, 8)
    xb = sysid.estimate_initial_state(loaded, rec, 8)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(
        sysid.simulate(model, rec.u, xa), sysid.simulate(loaded, rec.u, xb)
    )


def test_ctrl_c_then_resume_is_bit_identical(fitted, tmp_path, monkeypatch):
    real = fit_module.compiled
    calls = [0]

    def fake(name, fn, static, dyn):
        program, seconds = real(name, fn, static, dyn)

        def wrapped(d):
            out = program(d)
            calls[0] += 1
            if name == "truncated" and calls[0] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        return wrapped, seconds

    monkeypatch.setattr(fit_module, "compiled", fake)
    path = tmp_path / "fit.ckpt"
    _, _, h = sysid.fit(_model(), RECORDS, checkpoint=path, checkpoint_every=0, **TRUNCATED)
    assert (h.stop_reason, h.steps) == ("interrupted", 8)
    monkeypatch.undo()
    with pytest.raises(ValueError):  # the checkpoint of a model with the bypass
        sysid.fit(_model(False), RECORDS, resume=path, **TRUNCATED)
    model, x0, h = sysid.fit(_model(), RECORDS, resume=path, **TRUNCATED)
    assert _leaves_equal(model, fitted[0])
    np.testing.assert_array_equal(x0, fitted[1])
    np.testing.assert_array_equal(h.loss, fitted[2].loss)


def test_an_lm_ensemble_trains_it():
    rec = tank_like(120, 0, x0=0.5)
    models = [sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(i), linear=True) for i in range(2)]
    fitted, x0s, histories = sysid.fit_ensemble(models, rec, optimizer="lm", steps=5)
    assert len(x0s) == 2 and x0s[0].shape == (2,)
    for m, h in zip(fitted, histories):
        assert m.linear and np.abs(np.asarray(m.bypass.layers[0].weight)).max() > 1e-3
        assert h.loss[-1] < h.loss[0]
