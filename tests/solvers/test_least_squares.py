"""Levenberg-Marquardt and Gauss-Newton, driven as the training engine drives a `Solver`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax import lax

import eqx_ffn
from eqx_ffn.solvers._least_squares import (
    GaussNewton,
    LevenbergMarquardt,
    check_least_squares,
    least_squares_solver,
)
from eqx_ffn.solvers._linalg import _cholesky_solve, dense_jacobian
from eqx_ffn.training._fit import split_model
from eqx_ffn.training._losses import resolve_loss
from eqx_ffn.training._objective import Objective


def objective_of(model, *, l2=0.0, tol=0.0):
    _, frozen, static = split_model(model)
    return Objective(resolve_loss("mse"), frozen, static, l1=0.0, l2=l2, tol=tol)


MAX_STEPS = 100  # every run scans this many steps (one compiled program per solver and shape)


def drive(solver, model, x, y, steps, *, w=None, l2=0.0, tol=0.0):
    """The engine's semantics in a few lines: `steps` calls of `solver.step` in one `lax.scan`;
    the loss recorded is the one `step` returns (before its update); the run stops after a step
    that returns `converged=True` (keeping that step's new parameters) or before a non-finite
    loss (keeping the last finite model).

    Returns `(model, losses, converged_at)`: `losses` of shape `(steps,)`, NaN after a stop;
    `converged_at` the step that returned `converged=True`, or -1.
    """
    assert steps <= MAX_STEPS
    params, frozen, static = split_model(model)
    w = jnp.ones(x.shape[0], x.dtype) if w is None else jnp.asarray(w, x.dtype)
    batch = (x, y, w)
    # arrays, not Python numbers: changing them does not recompile
    settings = (jnp.asarray(l2, x.dtype), jnp.asarray(tol, x.dtype), jnp.asarray(steps, jnp.int32))
    params, losses, conv = _run(solver, model, params, batch, *settings)
    conv = np.asarray(conv)[:steps]
    at = int(np.argmax(conv)) if conv.any() else -1
    return eqx.combine(params, frozen, static), np.asarray(losses)[:steps], at


@eqx.filter_jit
def _run(solver, model, params, batch, l2, tol, steps):
    return _scan(solver, model, params, batch, l2, tol, steps)


def _scan(solver, model, params, batch, l2, tol, steps):
    objective = objective_of(model, l2=l2, tol=jnp.asarray(tol, l2.dtype))

    def body(carry, t):
        p, state, done = carry
        done = done | (t >= steps)
        new_p, new_state, loss, converged = solver.step(objective, p, state, batch)
        take = ~done & jnp.isfinite(loss)
        p = jax.tree.map(lambda a, b: jnp.where(take, a, b), new_p, p)
        state = jax.tree.map(lambda a, b: jnp.where(take, a, b), new_state, state)
        loss = jnp.where(done, jnp.nan, loss)
        return (p, state, done | ~take | converged), (loss, take & converged)

    init = (params, solver.init(params), jnp.zeros((), bool))
    (p, _, _), (losses, conv) = lax.scan(body, init, jnp.arange(MAX_STEPS))
    return p, losses, conv


def mse(model, x, y):
    return float(_mse(model, x, y))


@eqx.filter_jit
def _mse(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@pytest.fixture(scope="module")
def lm_run(lecture1):
    x, y, params = lecture1
    return drive(LevenbergMarquardt(), eqx_ffn.FFN.from_params(params), x, y, 100)


@pytest.fixture(scope="module")
def lm_fit(lecture1):
    x, y, params = lecture1
    model = eqx_ffn.FFN.from_params(params)
    return eqx_ffn.fit(model, x, y, optimizer="lm", steps=100, tol=0.0, progress=False)


def test_lm_reaches_mse_1e_6_within_100_steps(lecture1, lm_fit):
    x, y, _ = lecture1
    model, history = lm_fit
    assert history.steps == 100 and history.stop_reason == "completed"
    assert mse(model, x, y) <= 1e-6 and history.final_loss <= 1e-6
    np.testing.assert_allclose(history.loss[0], 8.191615, rtol=1e-5)  # docs/REFERENCE.md section 1
    # a rejected step keeps the parameters: the objective never goes up
    assert np.all(np.diff(history.loss) <= 0)


def test_fit_runs_the_solver_as_the_reference_driver(lm_fit, lm_run):
    # the engine (padding rows, raveled parameters, chunks) and a plain scan over solver.step:
    # the same first steps to float rounding (later ones part where a trial's accept/reject
    # decision flips on a last bit), and the same end
    _, history = lm_fit
    _, losses, _ = lm_run
    np.testing.assert_allclose(history.loss[:2], losses[:2], rtol=1e-5)
    assert history.loss[-1] <= 1e-6 and losses[-1] <= 1e-6


@pytest.mark.parametrize("n", [1, 49])
def test_cholesky_solve_is_exact_or_nan(n):
    # the damped systems are solved at their own size (49: the lecture network); a matrix that
    # is not positive definite must give NaN (the step then rejects that damping value), never
    # a finite wrong direction
    rng = np.random.default_rng(n)
    j = rng.normal(size=(3 * n, n))
    a = j.T @ j + 1e-2 * np.eye(n)
    b = rng.normal(size=n)
    got = jax.jit(_cholesky_solve)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    want = np.linalg.solve(a, b)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-3, atol=1e-4)
    indefinite = a - 2 * np.linalg.eigvalsh(a)[-1] * np.eye(n)
    bad = jax.jit(_cholesky_solve)(
        jnp.asarray(indefinite, jnp.float32), jnp.asarray(b, jnp.float32)
    )
    assert np.all(np.isnan(np.asarray(bad)))


def test_lm_stops_when_converged_with_its_default_tol(lecture1):
    x, y, params = lecture1
    model, h = eqx_ffn.fit(
        eqx_ffn.FFN.from_params(params), x, y, optimizer="levenberg_marquardt", steps=1000,
        progress=False,
    )  # fmt: skip
    assert h.stop_reason == "converged" and h.steps < 1000
    assert h.final_loss <= 1e-6 and mse(model, x, y) <= 1e-6


def test_gauss_newton_defaults_do_not_diverge(lecture1):
    x, y, params = lecture1
    model, h = eqx_ffn.fit(
        eqx_ffn.FFN.from_params(params), x, y, optimizer="gauss_newton", steps=60, tol=0.0,
        progress=False,
    )  # fmt: skip
    assert h.stop_reason == "completed" and np.all(np.isfinite(h.loss))
    assert np.all(np.diff(h.loss) <= 0)
    assert mse(model, x, y) < 1e-3


@eqx.filter_jit
def _weighted_mse(model, x, y, w):
    return jnp.sum(w * jnp.mean((jax.vmap(model)(x) - y) ** 2, axis=1)) / jnp.sum(w)


def test_loss_is_the_weighted_penalised_objective(lecture1):
    """Sample weights (zero on some rows) and an L2 penalty: the recorded loss is the objective
    computed directly, and what the zero-weight rows hold changes nothing."""
    x, y, params = lecture1
    model = eqx_ffn.FFN.from_params(params)
    w = jr.uniform(jr.key(0), (200,), minval=0.5, maxval=2.0).at[-20:].set(0.0)
    x, y = x.at[-20:].set(7.0), y.at[-20:].set(-1e3)  # weight 0, garbage values
    l2 = 1e-2
    kw = dict(optimizer="lm", steps=10, tol=0.0, sample_weight=w, l2=l2, progress=False)
    _, h = eqx_ffn.fit(model, x, y, **kw)
    penalty = l2 * sum(jnp.sum(layer.weight**2) for layer in model.layers)
    expected = _weighted_mse(model, x[:-20], y[:-20], w[:-20]) + penalty
    np.testing.assert_allclose(h.loss[0], expected, rtol=1e-6)
    x2, y2 = x.at[-20:].set(-5.0), y.at[-20:].set(5e2)
    _, other = eqx_ffn.fit(model, x2, y2, **kw)
    np.testing.assert_array_equal(other.loss, h.loss)
    assert np.all(np.diff(h.loss) <= 0) and h.loss[-1] < 0.5 * h.loss[0]


def test_l2_penalty_is_minimised(lecture1, lm_run):
    """After a fit with l2 the gradient of the penalised objective vanishes (the L2 term is
    in J^T J and the gradient, analytically), and the weights are smaller than without it."""
    x, y, params = lecture1
    start = eqx_ffn.FFN.from_params(params)
    l2 = 1e-3
    fitted, losses, _ = drive(LevenbergMarquardt(), start, x, y, 60, l2=l2)
    objective = objective_of(start, l2=l2)
    batch = (x, y, jnp.ones(x.shape[0]))

    @jax.jit
    def value_and_grad_norm(params):
        value, grad = jax.value_and_grad(objective)(params, batch)
        return value, jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))

    _, grad0 = value_and_grad_norm(split_model(start)[0])
    value, grad = value_and_grad_norm(split_model(fitted)[0])
    assert grad < 1e-3 * grad0
    np.testing.assert_allclose(value, np.nanmin(losses), rtol=1e-3)
    weights = lambda m: sum(float(jnp.sum(layer.weight**2)) for layer in m.layers)  # noqa: E731
    assert weights(fitted) < weights(lm_run[0])


def test_jacobian_of_the_residuals_matches_jacfwd():
    """Per-sample Jacobians (reverse mode, and forward mode for a model with more outputs than
    parameters) equal `jax.jacfwd` of `data_residuals`, weights and padding included."""
    from jax.flatten_util import ravel_pytree

    class Fan(eqx.Module):  # one parameter, three outputs: the forward-mode branch
        a: jax.Array
        in_size: int = eqx.field(static=True, default=1)
        out_size: int = eqx.field(static=True, default=3)

        def __call__(self, x):
            return jnp.tanh(self.a * x[0] * jnp.arange(1.0, 4.0))

    x = jnp.linspace(-1, 1, 6)[:, None]
    w = jnp.array([1.0, 2.0, 0.5, 0.0, 1.0, 3.0])
    for model in (eqx_ffn.FFN(1, 2, (4,), key=jr.key(2)), Fan(jnp.array(0.7))):
        y = jnp.ones((6, model.out_size))
        params, frozen, static = split_model(model)
        objective = Objective(resolve_loss("mse"), frozen, static, l1=0.0, l2=0.0, tol=0.0)
        flat, unravel = ravel_pytree(params)

        def both(flat, objective=objective, unravel=unravel, batch=(x, y, w)):
            got = dense_jacobian(objective, flat, unravel, batch)
            ref = jax.jacfwd(lambda p: objective.data_residuals(unravel(p), batch))(flat)
            return got, ref

        with jax.default_matmul_precision("highest"):
            got, ref = jax.jit(both)(flat)
        assert got.shape == (6 * model.out_size, flat.size)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)


def test_converged_flag_with_a_loose_tol(lecture1):
    x, y, params = lecture1
    model, h = eqx_ffn.fit(
        eqx_ffn.FFN.from_params(params), x, y, optimizer="lm", steps=100, tol=1e-2,
        progress=False,
    )  # fmt: skip
    assert h.stop_reason == "converged" and 0 < h.steps < 100 and len(h.loss) == h.steps
    # the run returns the converged step's new parameters: a loss no larger than the last one
    assert mse(model, x, y) <= h.loss[-1]


def test_an_ensemble_of_64_equals_its_separate_fits(lecture1):
    x, y, _ = lecture1
    keys = jr.split(jr.key(7), 64)
    l2s = jnp.where(jnp.arange(64) % 2 == 0, 0.0, 1e-4)
    make = lambda k: eqx_ffn.FFN(1, 1, (16,), init="glorot_normal", key=k)  # noqa: E731
    kw = dict(optimizer="lm", steps=30, tol=0.0, progress=False)
    models, hs = eqx_ffn.fit_ensemble(make, x, y, keys=keys, l2=l2s, **kw)
    assert len(hs) == 64
    before = eqx_ffn.training._program_cache.compile_count
    for i in range(64):
        model_key, fit_key = jr.split(keys[i])
        single, h = eqx_ffn.fit(make(model_key), x, y, key=fit_key, l2=float(l2s[i]), **kw)
        np.testing.assert_allclose(hs[i].loss, h.loss, rtol=1e-4)
        np.testing.assert_allclose(hs[i].final_loss, h.final_loss, rtol=1e-4)
        if i % 16 == 0:  # and the network itself
            member = eqx_ffn.ensemble_member(models, i)
            got, want = eqx_ffn.ravel(member)[0], eqx_ffn.ravel(single)[0]
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert eqx_ffn.training._program_cache.compile_count - before <= 1  # 64 fits, one program


def test_least_squares_needs_mse_full_batch_and_no_l1(lecture1):
    x, y, params = lecture1
    model = eqx_ffn.FFN.from_params(params)
    with pytest.raises(ValueError, match="Levenberg-Marquardt needs loss='mse' .got 'mae'"):
        eqx_ffn.fit(model, x, y, optimizer="lm", loss="mae", steps=1)
    with pytest.raises(ValueError, match="does not support an l1 penalty"):
        eqx_ffn.fit(model, x, y, optimizer="lm", l1=1e-3, steps=1)
    with pytest.raises(ValueError, match="Gauss-Newton works on the full batch"):
        eqx_ffn.fit(model, x, y, optimizer="gauss_newton", batch_size=10, steps=1)
    with pytest.raises(ValueError, match="learning_rate does not apply to optimizer='lm'"):
        eqx_ffn.fit(model, x, y, optimizer="lm", learning_rate=1e-2, steps=1)


def test_linear_algebra_paths_agree(lecture1):
    """The two dense ways a step solves its damped normal equations (Cholesky of J^T J, the SVD
    of J) give the same objective, gradient, products with J^T J + l2 diag(mask) and damped
    steps. (The matrix-free path is tested end to end below.)"""
    from eqx_ffn.solvers._linalg import linearise as _linearise

    x, y, params = lecture1
    model = eqx_ffn.FFN.from_params(params)
    p, _, _ = split_model(model)
    objective = objective_of(model, l2=1e-3)
    batch = (x, y, jnp.linspace(0.5, 1.5, 200).at[-5:].set(0.0))
    v = jr.normal(jr.key(9), (49,))

    @jax.jit
    def paths(p, v):
        out = {}
        for method in ("cholesky", "svd"):
            lin, _, _ = _linearise(objective, p, batch, method)
            steps = (lin.solve(0.1, 0), lin.solve(0.01, 0))
            out[method] = (lin.f, lin.g, lin.apply(v), lin.model_decrease(v), *steps)
        return out

    with jax.default_matmul_precision("highest"):
        out = paths(p, v)
    for got, want in zip(out["svd"], out["cholesky"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(out["cholesky"][0], objective(p, batch), rtol=1e-6)


def _ridge(x, y, l2):
    """The minimiser of mean((W x + b - y)**2) + l2 * sum(W**2), by NumPy least squares."""
    n, d = x.shape
    out = y.shape[1]
    a = np.hstack([x, np.ones((n, 1))]) / np.sqrt(n * out)
    a = np.vstack([a, np.hstack([np.sqrt(l2) * np.eye(d), np.zeros((d, 1))])])
    rhs = np.vstack([y / np.sqrt(n * out), np.zeros((d, out))])
    coef = np.linalg.lstsq(a, rhs, rcond=None)[0]
    return coef[:d].T, coef[d]


def test_linear_least_squares_in_float64():
    """A linear network: the objective is quadratic, so Levenberg-Marquardt solves it in a few
    steps, to float64 precision, on the dense path and on the matrix-free one (a budget too
    small for the Jacobian: conjugate gradients through Jacobian-vector products); both reach
    NumPy's ridge regression and then report convergence."""
    with jax.enable_x64(True):
        x = jr.normal(jr.key(3), (20, 3), jnp.float64)
        true = eqx_ffn.FFN(3, 2, hidden_sizes=(), dtype=jnp.float64, key=jr.key(4))
        start = eqx_ffn.FFN(3, 2, hidden_sizes=(), dtype=jnp.float64, key=jr.key(5))
        noisy = jax.vmap(true)(x) + 0.1 * jr.normal(jr.key(6), (20, 2), jnp.float64)
        l2 = 1e-2
        w_ref, b_ref = _ridge(np.asarray(x), np.asarray(noisy), l2)
        tiny = LevenbergMarquardt(jacobian_budget=1024)
        params, _, _ = split_model(start)
        batch = (x, noisy, jnp.ones(20, jnp.float64))
        assert tiny.method(objective_of(start), params, batch) == "matrix_free"
        for solver in (LevenbergMarquardt(), tiny):
            model, losses, at = drive(solver, start, x, noisy, 20, l2=l2, tol=1e-10)
            assert losses.dtype == np.float64 and model.layers[0].weight.dtype == jnp.float64
            assert 0 <= at <= 10, (solver, losses)
            np.testing.assert_allclose(model.layers[0].weight, w_ref, atol=1e-8)
            np.testing.assert_allclose(model.layers[0].bias, b_ref, atol=1e-8)
        # exact data: the fit is exact, and the gradient test fires at f == 0 (to rounding)
        model, losses, at = drive(LevenbergMarquardt(), start, x, jax.vmap(true)(x), 20, tol=1e-10)
        assert 0 <= at <= 10 and np.nanmin(losses) < 1e-20
        np.testing.assert_allclose(model.layers[0].weight, true.layers[0].weight, atol=1e-10)


def test_factory_and_properties():
    lm = least_squares_solver("lm")
    assert lm is least_squares_solver("levenberg_marquardt") and isinstance(lm, LevenbergMarquardt)
    assert isinstance(least_squares_solver("gauss_newton"), GaussNewton)
    for solver in (lm, least_squares_solver("gauss_newton")):
        assert isinstance(solver, eqx_ffn.Solver)
        assert solver.full_batch_only and solver.least_squares and solver.default_tol > 0
    assert hash(LevenbergMarquardt()) == hash(lm) and LevenbergMarquardt() == lm
    with pytest.raises(ValueError, match="Unknown optimizer 'levenberg'.*'lm'"):
        least_squares_solver("levenberg")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mu": 0.0}, "mu must be a number > 0; got 0.0"),
        ({"mu_increase": 0.5}, "mu_increase must be a number > 1"),
        ({"mu_decrease": 2.0}, r"mu_decrease must be a number in \(0, 1\)"),
        ({"mu": 1e12}, "Need mu_min <= mu <= mu_max"),
        ({"dampings": 0}, "dampings must be an integer >= 1; got 0"),
        ({"step_lengths": 1.5}, "step_lengths must be an integer >= 1"),
        ({"jacobian_budget": -1}, "jacobian_budget must be an integer >= 0"),
        ({"linear_solver": "qr"}, "Unknown linear_solver 'qr'"),
        ({"tol": 2.0}, r"tol must be a number in \(0, 1\)"),
    ],
)
def test_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LevenbergMarquardt(**kwargs)


def test_gauss_newton_settings_are_checked():
    with pytest.raises(ValueError, match="damping must be a number > 0"):
        GaussNewton(damping=-1.0)
    with pytest.raises(ValueError, match=r"armijo must be a number in \(0, 1\)"):
        GaussNewton(armijo=1.0)


def test_check_helper_errors():
    check_least_squares("mse", 0.0, None)  # fine
    check_least_squares("mse", np.zeros(4), None, "gauss_newton")  # per-member zeros are fine
    with pytest.raises(
        ValueError, match=r"Levenberg-Marquardt needs loss='mse' \(got 'mae'\); use L-BFGS or Adam"
    ):
        check_least_squares("mae", 0.0, None)
    with pytest.raises(ValueError, match="Gauss-Newton does not support an l1 penalty"):
        check_least_squares("mse", 1e-3, None, "gauss_newton")
    with pytest.raises(ValueError, match="does not support an l1 penalty"):
        check_least_squares("mse", np.array([0.0, 1e-3]), None, LevenbergMarquardt())
    with pytest.raises(
        ValueError, match=r"Levenberg-Marquardt works on the full batch \(got batch_size=32\)"
    ):
        check_least_squares("mse", 0.0, 32, "lm")
