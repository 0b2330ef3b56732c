"""Bad input to sysid gets a clear error naming the argument."""

from __future__ import annotations

import jax.random as jr
import numpy as np
import pytest
from synthetic import tank_like

import eqx_ffn.sysid as sysid


@pytest.fixture(scope="module")
def nss():
    return sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(0))


def test_experiment_lengths_differ():
    with pytest.raises(ValueError, match="u and y must have the same number of samples"):
        sysid.Experiment(np.zeros(10), np.zeros(9))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_experiment_not_finite(bad):
    y = np.zeros(10)
    y[3] = bad
    with pytest.raises(ValueError, match=r"y must be finite .*y\[3, 0\]"):
        sysid.Experiment(np.zeros(10), y)


def test_experiment_too_short_and_wrong_shape():
    with pytest.raises(ValueError, match="at least 2 samples"):
        sysid.Experiment(np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match=r"u must have shape \(T,\) or \(T, channels\)"):
        sysid.Experiment(np.zeros((3, 2, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="u must hold real numbers"):
        sysid.Experiment(np.array(["a", "b"]), np.zeros(2))
    with pytest.raises(ValueError, match="n_init must be an integer"):
        sysid.Experiment(np.zeros(5), np.zeros(5), n_init=5)


def test_sizes_do_not_match_the_model(nss):
    rec = sysid.Experiment(np.zeros((20, 2)), np.zeros(20))
    with pytest.raises(ValueError, match=r"experiments\[0\] has n_u=2, n_y=1; the model has n_u=1"):
        sysid.fit(nss, rec, steps=1)
    with pytest.raises(ValueError, match="u must have 1 column"):
        sysid.simulate(nss, np.zeros((5, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        sysid.simulate(nss, np.zeros((5, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="experiment has n_u=2"):
        sysid.estimate_initial_state(nss, rec, 5)


def test_unknown_criterion_optimizer_and_one_step_for_state_space(nss):
    rec = tank_like(30)
    with pytest.raises(ValueError, match="Unknown criterion 'prediction'"):
        sysid.fit(nss, rec, criterion="prediction")
    with pytest.raises(ValueError, match="Unknown optimizer 'newton'"):
        sysid.fit(nss, rec, optimizer="newton")
    with pytest.raises(ValueError, match="criterion='one_step' needs a NARX"):
        sysid.fit(nss, rec, criterion="one_step")
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        sysid.fit(nss, rec, steps=-1)
    with pytest.raises(ValueError, match="learning_rate must be a number > 0"):
        sysid.fit(nss, rec, learning_rate=0.0)
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\) for one record"):
        sysid.fit(nss, rec, x0=np.zeros(3))
    with pytest.raises(TypeError, match="validation must be a sysid.Experiment"):
        sysid.fit(nss, rec, validation="val")


@pytest.mark.parametrize("lags", [dict(na=0, nb=1), dict(na=1, nb=0), dict(na=1, nb=1, nk=-1)])
def test_narx_lags(lags):
    name = next(k for k, v in lags.items() if v < 1 and (k != "nk" or v < 0))
    with pytest.raises(ValueError, match=f"{name} must be an integer >= "):
        sysid.NARX(1, 1, key=jr.key(0), **lags)


def test_record_shorter_than_lags_or_n_init(nss):
    narx = sysid.NARX(1, 1, na=4, nb=4, key=jr.key(0))
    short = sysid.Experiment(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="experiments\\[0\\] has 4 samples; the NARX lags"):
        sysid.fit(narx, short, steps=1)
    with pytest.raises(ValueError, match="fewer than the lags plus k"):
        sysid.predict(narx, short, k=1)
    with pytest.raises(ValueError, match="n_init must be an integer.*<= 4"):
        sysid.estimate_initial_state(nss, short, n_init=10)


def test_metrics_and_files_bad_input(tmp_path):
    with pytest.raises(ValueError, match="y and y_hat must have the same shape"):
        sysid.rmse(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="skip=5 leaves no sample"):
        sysid.rmse(np.zeros(5), np.zeros(5), skip=5)
    bad = tmp_path / "bad.eqx"
    bad.write_bytes(b'EQXFFN-SYSID 1\n{"kind": "os.system", "config": {}}\n')
    with pytest.raises(sysid.SysidFileError, match="must name the kind"):
        sysid.load(bad)
    bad.write_bytes(b"not a model")
    with pytest.raises(sysid.SysidFileError, match="is not a sysid model file"):
        sysid.load(bad)
    bad.write_bytes(
        b'EQXFFN-SYSID 1\n{"kind": "NARX", "config": {"n_u": 1, "n_y": 1, "na": 0, "nb": 1}}\n'
    )
    with pytest.raises(sysid.SysidFileError, match="na must be an integer"):
        sysid.load(bad)
