"""Two inputs, two outputs: fitting, simulation, k-step prediction, metrics and figures."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from synthetic import two_by_two

import eqx_ffn.sysid as sysid


@pytest.fixture(scope="module")
def record():
    return two_by_two(150, 0)


def test_state_space_learns_a_two_by_two_system(record):
    model = sysid.NeuralStateSpace(2, 3, 2, (8,), key=jr.key(0))
    fitted, x0, history = sysid.fit(model, record, optimizer="lm", steps=40)
    assert x0.shape == (3,) and history.loss[-1] < 0.1 * history.loss[0]
    y = sysid.simulate(fitted, record.u, x0)
    assert y.shape == (150, 2)
    scores = sysid.rmse(record.y, y)
    assert scores.shape == (2,) and (scores < 0.35 * record.y.std(0)).all()
    assert sysid.fit_percent(record.y, y).shape == (2,)
    fig = sysid.plot_simulation(record, y, skip=0, unit="m")
    assert len(fig.axes) == 4


def test_two_by_two_narx_k_step_equals_a_loop(record):
    narx = sysid.NARX(2, 2, na=2, nb=1, nk=1, hidden_sizes=(8,), key=jr.key(1))
    model, _, history = sysid.fit(narx, record, criterion="one_step", optimizer="lm", steps=15)
    assert history.loss[-1] < 0.1 * history.loss[0]
    k = 3
    y_hat = sysid.predict(model, record, k=k)
    sc = model.scaler
    u_n, y_n = sc.u_in(jnp.asarray(record.u)), sc.y_in(jnp.asarray(record.y))
    for t in (model.lag + k - 1, 77, record.T - 1):
        s = t - k + 1
        x = jnp.concatenate([y_n[s - 1], y_n[s - 2]])  # na=2 outputs of 2 channels; nk+nb-1=1
        x = jnp.concatenate([x, u_n[s - 1]])
        for j in range(k):
            x, y = model.step(x, u_n[s + j])
        np.testing.assert_allclose(y_hat[t], sc.y_out(y), rtol=1e-5, atol=1e-6)
    assert y_hat.shape == (150, 2) and np.isnan(y_hat[: model.lag + k - 1]).all()
