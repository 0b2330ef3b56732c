"""The next lecture through the library: equal losses and test RMSE, and one compiled program."""

from __future__ import annotations

import numpy as np
import pytest
from lecture_sysid import init_params, lecture_test_rmse, train_python_loop

import eqx_ffn.sysid as sysid
from eqx_ffn.sysid import _programs

STEPS = 200  # the equality holds step by step; 200 of the lecture's 2000 keep the test short


@pytest.fixture(scope="module")
def lecture_fit():
    train, test = sysid.datasets.cascaded_tanks()
    model = sysid.NeuralStateSpace.from_params(init_params())
    fitted = sysid.fit(model, train, optimizer="adam", learning_rate=1e-3, steps=STEPS)
    return train, test, model, fitted


def test_losses_and_test_rmse_equal_the_lecture(lecture_fit):
    _, test, _, (model, x0, history) = lecture_fit
    ref_vars, ref_losses = train_python_loop(STEPS)
    assert history.steps == STEPS and history.stop_reason == "completed"
    # same operations in another XLA program: float32 rounding only (measured 4e-7 here)
    np.testing.assert_allclose(history.loss, ref_losses, rtol=1e-5)
    rmse = sysid.rmse(test.y, sysid.simulate(model, test.u, x0))[0]
    assert rmse == pytest.approx(lecture_test_rmse(ref_vars), rel=1e-4)


def test_second_fit_compiles_nothing(lecture_fit):
    train, _, model, _ = lecture_fit
    before = dict(_programs.TRACES)
    _, _, history = sysid.fit(model, train, learning_rate=3e-3, steps=7, l2=1e-4)
    assert dict(_programs.TRACES) == before
    assert history.compile_time == 0.0 and history.steps == 7


def test_from_params_is_the_lecture_model():
    params = init_params()
    model = sysid.NeuralStateSpace.from_params(params)
    assert (model.n_u, model.n_x, model.n_y) == (1, 2, 1)
    x, u = np.array([0.3, -0.2], np.float32), np.array([0.5], np.float32)
    x_next, y = model.step(x, u)
    z = np.concatenate([x, u])
    p = {k: np.asarray(v) for k, v in params.items()}
    np.testing.assert_allclose(
        x_next, x + p["W2"] @ np.tanh(p["W1"] @ z + p["b1"]) + p["b2"], rtol=1e-6
    )
    np.testing.assert_allclose(y, p["C"] @ x, rtol=1e-6)
