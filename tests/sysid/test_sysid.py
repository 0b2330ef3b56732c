"""sysid's models, fits, predictions, metrics, files, figures and data sets."""

from __future__ import annotations

import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from matplotlib.figure import Figure
from synthetic import tank_like

import eqx_ffn.sysid as sysid

SILVERBOX = Path("/work/shared/data/SNLS80mV.csv")
if not SILVERBOX.exists():
    SILVERBOX = Path(__file__).resolve().parents[3] / "shared" / "data" / "SNLS80mV.csv"


@pytest.fixture(scope="module")
def records():
    return tank_like(120, 0), tank_like(120, 1, x0=1.5)


@pytest.fixture(scope="module")
def nss():
    return sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0))


@pytest.fixture(scope="module")
def narx():
    return sysid.NARX(1, 1, na=2, nb=2, nk=1, hidden_sizes=(8,), key=jr.key(1))


def test_two_experiments_learn_two_initial_states(nss, records):
    model, x0, history = sysid.fit(nss, list(records), optimizer="lm", steps=30)
    assert x0.shape == (2, 2)
    assert not np.allclose(x0[0], x0[1])
    assert history.loss[-1] < 0.05 * history.loss[0]
    for rec, x in zip(records, x0):
        y = sysid.simulate(model, rec.u, x)
        assert sysid.rmse(rec.y, y)[0] < 0.2 * np.std(rec.y)


def test_simulate_emits_y_before_the_update(nss):
    u = np.linspace(0, 1, 6, dtype=np.float32)[:, None]
    x0 = jnp.array([0.5, -0.5])
    y, xs = sysid.simulate(nss, u, x0, return_states=True)
    x, ys = x0, []
    for k in range(6):
        np.testing.assert_allclose(xs[k], x, rtol=1e-6)
        x, yk = nss.step(x, jnp.asarray(u[k]))
        ys.append(yk)
    np.testing.assert_allclose(y, np.stack(ys), rtol=1e-6)


def test_narx_one_step_fit_and_k_step_equals_a_loop(narx, records):
    rec = records[0]
    model, x0, history = sysid.fit(narx, rec, criterion="one_step", optimizer="lm", steps=20)
    assert x0.shape == (narx.n_x,) and history.loss[-1] < 0.05 * history.loss[0]
    k = 3
    y_hat = sysid.predict(model, rec, k=k)
    sc = model.scaler
    u_n, y_n = sc.u_in(jnp.asarray(rec.u)), sc.y_in(jnp.asarray(rec.y))
    for t in (model.lag + k - 1, 40, rec.T - 1):
        s = t - k + 1
        x = jnp.concatenate([y_n[s - 1], y_n[s - 2], u_n[s - 1], u_n[s - 2]])  # na=2; nk+nb-1=2
        for j in range(k):
            x, y = model.step(x, u_n[s + j])
        np.testing.assert_allclose(y_hat[t], sc.y_out(y), rtol=1e-5)
    assert np.isnan(y_hat[: model.lag + k - 1]).all()
    one = sysid.predict(model, rec, k=1)
    assert sysid.rmse(rec.y, one, skip=model.lag)[0] < 0.2 * np.std(rec.y)


def test_state_space_k_step_equals_a_loop(nss, records):
    rec = records[0]
    k, n_init = 2, 5
    y_hat = sysid.predict(nss, rec, k=k, n_init=n_init)
    sc = nss.scaler
    for t in (n_init + k - 1, 60):
        s = t - k + 1
        window = sysid.Experiment(rec.u[s - n_init : s + k], rec.y[s - n_init : s + k])
        x = sysid.estimate_initial_state(nss, window, n_init, x0_guess=np.zeros(2))
        y = sysid.simulate(nss, window.u, x)
        np.testing.assert_allclose(y_hat[t], y[-1], rtol=1e-4, atol=1e-5 * float(sc.y_std[0]))


def test_estimate_initial_state_recovers_it(nss):
    u = np.sin(np.arange(80) / 5.0)[:, None].astype(np.float32)
    x_true = jnp.array([0.7, -0.4])
    y = sysid.simulate(nss, u, x_true)
    rec = sysid.Experiment(u, y, n_init=30)
    x = sysid.estimate_initial_state(nss, rec)
    np.testing.assert_allclose(sysid.simulate(nss, u, x), y, atol=1e-4)


def test_non_finite_guard_returns_the_last_good_model(records):
    model = sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(3), residual=False)
    with pytest.warns(sysid.NonFiniteSimulationWarning, match="non-finite"):
        fitted, _, history = sysid.fit(
            model, records[0], optimizer="sgd", learning_rate=1e8, steps=50
        )
    assert history.stop_reason == "non_finite_loss"
    assert history.steps < 50 and np.isfinite(history.loss).all()
    assert np.isfinite(history.final_loss)
    leaves = jax.tree.leaves(eqx.filter(fitted, eqx.is_array))
    assert all(np.isfinite(np.asarray(a)).all() for a in leaves)


def test_early_stopping_returns_the_best_validation_model(nss, records):
    train, val = records[0].split(0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, history = sysid.fit(
            nss, train, optimizer="lm", steps=60, validation=val, eval_every=5, patience=2
        )
    assert len(history.val_loss) >= 2
    assert history.stop_reason in ("early_stopping", "completed", "converged")
    assert history.data_loss is history.loss  # no l2: the loss is the data loss (history.csv)
    if history.best_step is not None:
        assert history.val_loss[list(history.val_steps).index(history.best_step)] == min(
            history.val_loss
        )


@pytest.mark.parametrize("which", ["nss", "narx"])
def test_save_load_round_trip(which, nss, narx, tmp_path):
    model = nss if which == "nss" else narx
    model = jax.tree.map(lambda a: a, model)
    x0 = np.arange(model.n_x, dtype=np.float32) / 10
    sysid.save(tmp_path / "m.eqx", model, x0)
    loaded, x0_loaded = sysid.load(tmp_path / "m.eqx")
    assert type(loaded) is type(model)
    for a, b in zip(
        jax.tree.leaves(eqx.filter(model, eqx.is_array)),
        jax.tree.leaves(eqx.filter(loaded, eqx.is_array)),
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x0_loaded, x0)
    u = np.ones((10, 1), np.float32)
    np.testing.assert_array_equal(
        sysid.simulate(model, u, x0), sysid.simulate(loaded, u, x0_loaded)
    )


def test_metrics_by_hand():
    y = np.array([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0], [5.0, 3.0]])
    y_hat = y + np.array([[9.0, 9.0], [0.5, -1.0], [-0.5, 1.0], [1.0, 0.0]])
    e = (y - y_hat)[1:]
    t = y[1:]
    np.testing.assert_allclose(sysid.rmse(y, y_hat, skip=1), np.sqrt((e**2).mean(0)))
    np.testing.assert_allclose(sysid.nrmse(y, y_hat, skip=1), np.sqrt((e**2).mean(0)) / t.std(0))
    fit = 100 * (1 - np.linalg.norm(e, axis=0) / np.linalg.norm(t - t.mean(0), axis=0))
    np.testing.assert_allclose(sysid.fit_percent(y, y_hat, skip=1), fit)
    r2 = 1 - (e**2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(sysid.r2(y, y_hat, skip=1), r2)


def test_plot_simulation(records):
    rec = records[0]
    fig = sysid.plot_simulation(rec, rec.y + 0.1, skip=10, unit="V")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "RMSE 0.1" in fig.axes[0].get_title()


def test_cascaded_tanks_shipped():
    train, test = sysid.datasets.cascaded_tanks()
    assert (train.T, test.T, train.n_u, train.n_y, test.n_init, train.ts) == (
        1024,
        1024,
        1,
        1,
        50,
        4.0,
    )
    assert train.u[0, 0] == pytest.approx(3.2567) and test.y[0, 0] == pytest.approx(4.9728)


@pytest.mark.skipif(not SILVERBOX.exists(), reason="Silverbox data not present")
def test_silverbox_splits():
    train, tests = sysid.datasets.silverbox(SILVERBOX)
    assert train.T == int(0.75 * (127400 - 40650))
    assert tests["multisine"].T == 127400 - 40650 - train.T
    assert tests["arrow_full"].T == 40575 - 100
    assert tests["arrow_no_extrapolation"].T == 32000
    assert all(t.n_init == 50 for t in tests.values())


def test_wheel_includes_the_data_file():
    import eqx_ffn.sysid.datasets as ds

    assert ds._TANKS.is_file() and ds._TANKS.parent.name == "data"


@pytest.mark.parametrize("optimizer", ["lbfgs", "optax"])
def test_lbfgs_and_an_optax_object(optimizer, records):
    import optax

    model = sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(0))
    opt = optax.adam(1e-2) if optimizer == "optax" else optimizer
    _, _, history = sysid.fit(model, records[0], optimizer=opt, steps=20)
    assert history.steps == 20 and history.loss[-1] < 0.8 * history.loss[0]
    with pytest.raises(ValueError, match="learning_rate"):
        sysid.fit(model, records[0], optimizer=opt, learning_rate=1e-2)
