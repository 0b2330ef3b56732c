"""criterion="truncated": windows from an encoded state, the encoder kept with the model."""

from __future__ import annotations

import jax.random as jr
import numpy as np
import pytest
from synthetic import TRUNCATED, tank_like

import eqx_ffn.sysid as sysid
from eqx_ffn.sysid import _programs

OPTIONS = TRUNCATED


@pytest.fixture(scope="module")
def records():
    return [tank_like(200, 0), tank_like(150, 1, x0=1.5)]


@pytest.fixture(scope="module")
def fitted(records):
    model = sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0))
    return sysid.fit(model, records, steps=300, **OPTIONS)


def test_truncated_learns_and_keeps_its_encoder(fitted, records):
    model, x0, history = fitted
    assert model.encoder is not None and model.encoder_n_init == 8
    assert x0.shape == (2, 2) and history.steps == 300
    assert np.mean(history.loss[-20:]) < 0.2 * np.mean(history.loss[:5])
    for rec, x in zip(records, x0):
        y = sysid.simulate(model, rec.u, x)
        assert sysid.rmse(rec.y, y, skip=8)[0] < 0.3 * np.std(rec.y)


def test_the_encoder_anchors_estimate_initial_state(fitted, records):
    model, _, _ = fitted
    rec = records[0]
    x = sysid.estimate_initial_state(model, rec, 8)
    _, xs = sysid.simulate(model, rec.u[:9], x, return_states=True)
    sc = model.scaler
    x_enc = model.encode(sc.u_in(rec.u[:8]), sc.y_in(rec.y[:8]))
    # the simulated state after the window is pulled to the encoder's (loose: also fits y)
    assert np.linalg.norm(xs[8] - x_enc) < 0.5 * (1 + np.linalg.norm(x_enc))


def test_window_count_does_not_recompile(fitted, records):
    model, _, _ = fitted
    before = _programs.TRACES["truncated"]
    # another record length in the same padded size: more windows, the same program
    sysid.fit(model, [tank_like(190, 2), records[1]], steps=5, standardize=False, **OPTIONS)
    assert _programs.TRACES["truncated"] == before


def test_save_load_keeps_the_encoder(fitted, tmp_path):
    model, x0, _ = fitted
    sysid.save(tmp_path / "m.eqx", model, x0)
    loaded, x0_l = sysid.load(tmp_path / "m.eqx")
    assert loaded.encoder_n_init == 8
    u = np.ones((12, 1), np.float32)
    np.testing.assert_array_equal(
        sysid.simulate(model, u, x0[0]), sysid.simulate(loaded, u, x0_l[0])
    )


def test_validation_early_stopping(records):
    model = sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0))
    train, val = records[0].split(0.6)
    _, _, history = sysid.fit(  # the fixture's padded size: its program
        model, [train, records[1]], steps=40, validation=val, eval_every=10, patience=1, **OPTIONS
    )
    assert len(history.val_loss) >= 2 and np.isfinite(history.val_loss).all()


def test_truncated_narx_starts_from_its_measured_memory(records):
    narx = sysid.NARX(1, 1, na=2, nb=2, hidden_sizes=(8,), key=jr.key(1))
    opts = {**OPTIONS, "encoder": None}
    _, _, history = sysid.fit(narx, records, steps=200, **opts)
    assert np.mean(history.loss[-20:]) < 0.3 * np.mean(history.loss[:5])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"window": 500}, "window=500 .* longer than experiments"),
        ({"window": 8}, r"encoder n_init \(8\) must be smaller than window \(8\)"),
        ({"window": None}, "needs window="),
        ({"encoder": {"size": 3}}, "encoder has unknown settings"),
        ({"learning_rate": None, "optimizer": "lm"}, "first-order optimizer"),
    ],
)
def test_truncated_bad_input(change, match, records):
    model = sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(0))
    with pytest.raises(ValueError, match=match):
        sysid.fit(model, records, steps=1, **{**OPTIONS, **change})
