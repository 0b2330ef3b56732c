from __future__ import annotations

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from conftest import lecture_data_and_params, lecture_nn, run_python

import eqx_ffn
from eqx_ffn import FFN, Standardized, fit
from eqx_ffn.training import _program_cache as _engine
from eqx_ffn.training import _sampling

ADAM = optax.adam(1e-2)  # one object: fits with it share a compiled program


@pytest.fixture(scope="module")
def lecture_loop_losses(lecture1):
    """The lecture's training loop, 2000 Adam steps, as in the slides: a Python loop over
    `value_and_grad` and optax's update (jitted together here: the slides' eager update costs
    ~8 ms a step on 2 CPU cores, and only the rounding of the fused arithmetic changes)."""
    x, y, params = lecture1
    batched_nn = jax.vmap(lecture_nn, in_axes=(None, 0))

    def loss_fn(p, y, x):
        return jnp.mean((y - batched_nn(p, x)) ** 2)

    optimizer = optax.adam(learning_rate=1e-2)

    @jax.jit
    def step(params, opt_state):
        loss_val, grads = jax.value_and_grad(loss_fn, 0)(params, y, x)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss_val

    opt_state = optimizer.init(params)
    losses = []
    with jax.default_matmul_precision("highest"):  # full float32 on a GPU too
        for _ in range(2000):
            params, opt_state, loss_val = step(params, opt_state)
            losses.append(loss_val)
    return np.asarray(losses), params


@pytest.fixture(scope="module")
def adam_fit(lecture1):
    x, y, params = lecture1
    return fit(
        FFN.from_params(params), x, y, optimizer=ADAM, steps=2000, precision="highest",
        progress=False,
    )  # fmt: skip


def test_fit_is_the_lecture_loop(adam_fit, lecture_loop_losses):
    model, history = adam_fit
    ref, ref_params = lecture_loop_losses
    assert history.steps == 2000 and history.loss.shape == (2000,)
    assert history.stop_reason == "completed"
    rel = np.abs(history.loss - ref) / np.abs(ref)
    assert rel.max() < 1e-5, (rel.max(), int(rel.argmax()))
    # the lecture's printed figure: 1e-5 leaves room for the CPU's rounding (XLA's reduction
    # order and tanh differ between x86-64 CPUs by a few float32 ulps)
    np.testing.assert_allclose(history.loss[0], 8.191615, rtol=1e-5)
    assert history.loss[-1] < 1e-2  # the lecture ends near 5.8e-3
    for name, value in model.to_params().items():
        np.testing.assert_allclose(value, ref_params[name], rtol=2e-3, atol=2e-4)


def test_final_loss_is_the_returned_models_loss(adam_fit, lecture1):
    model, history = adam_fit
    x, y, _ = lecture1
    mse = jnp.mean((jax.vmap(model)(x) - y) ** 2)
    np.testing.assert_allclose(history.final_loss, mse, rtol=1e-5)


def test_no_recompile_on_second_fit(adam_fit, lecture1, caplog):
    x, y, params = lecture1
    before = _engine.compile_count
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        _, h2 = fit(
            FFN.from_params(params), x, y, optimizer=ADAM, steps=2000, precision="highest",
            progress=False,
        )  # fmt: skip
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == []
    assert _engine.compile_count == before
    assert h2.compile_time == 0.0
    np.testing.assert_array_equal(h2.loss, adam_fit[1].loss)  # deterministic, bit for bit


def test_compile_time_counts_the_initial_state_program(lecture1, monkeypatch):
    # fit builds the training state in a program of its own; compiling it is compiling, so a
    # first call's run_time (and the steps/s the CLI prints from it) excludes it
    import time

    from eqx_ffn.training import _program_cache, _state

    def slow_to_trace(*args):
        time.sleep(0.3)  # runs while tracing, never when the compiled program runs
        return _state.init_states(*args)

    monkeypatch.setattr(_program_cache, "_jitted_init", jax.jit(slow_to_trace, static_argnums=0))
    monkeypatch.setattr(_program_cache, "_inits", _program_cache._Cache(32))  # nothing compiled
    x, y, params = lecture1
    model = FFN.from_params(params)
    _, first = fit(model, x, y, optimizer=ADAM, steps=3, progress=False)
    _, again = fit(model, x, y, optimizer=ADAM, steps=3, progress=False)
    assert first.compile_time >= 0.3 and first.run_time < 0.25
    assert again.compile_time == 0.0 and again.wall_time < 0.25


def test_lbfgs_reaches_1e4(lecture1):
    x, y, params = lecture1
    model, history = fit(
        FFN.from_params(params), x, y, optimizer="lbfgs", steps=600, progress=False
    )
    assert history.stop_reason == "completed"
    assert history.final_loss < 1e-4
    assert np.all(np.isfinite(history.loss))
    mse = jnp.mean((jax.vmap(model)(x) - y) ** 2)
    assert mse < 1e-4


def test_lbfgs_refuses_minibatches(lecture1):
    x, y, params = lecture1
    with pytest.raises(ValueError, match="L-BFGS.*batch_size=None"):
        fit(FFN.from_params(params), x, y, optimizer="lbfgs", batch_size=32)


def _bitmask_loss(model, x, y):
    # The loss of a batch encodes WHICH samples it holds: x_i = i, loss = sum 2**i (exact in f32).
    del y
    return jnp.sum(jnp.exp2(x[:, 0])) + 0.0 * jnp.sum(model.layers[0].weight)


def _decode(value: float, n: int) -> list[int]:
    v = round(float(value))
    return [i for i in range(n) if v >> i & 1]


@pytest.fixture(scope="module")
def index_data():
    n = 20
    return jnp.arange(n, dtype=jnp.float32)[:, None], jnp.zeros((n, 1)), n


@pytest.mark.parametrize("drop_last", [False, True])
def test_each_sample_once_per_epoch(index_data, drop_last):
    x, y, n = index_data
    model = FFN(1, 1, (), key=jr.key(0))
    steps = 7 * 3
    _, h = fit(
        model,
        x,
        y,
        loss=_bitmask_loss,
        batch_size=3,
        steps=steps,
        key=jr.key(5),
        drop_last=drop_last,
        optimizer=optax.sgd(0.0),
        progress=False,
    )
    batches = [_decode(v, n) for v in h.loss]
    per_epoch = 6 if drop_last else 7
    expect_sizes = [3] * 6 + ([] if drop_last else [2])
    for e in range(steps // per_epoch):
        epoch = batches[e * per_epoch : (e + 1) * per_epoch]
        assert [len(b) for b in epoch] == expect_sizes
        used = sorted(i for b in epoch for i in b)
        if drop_last:
            assert len(set(used)) == 18 and len(used) == 18
        else:
            assert used == list(range(n))  # every index exactly once
    # a fresh permutation each epoch
    assert batches[:per_epoch] != batches[per_epoch : 2 * per_epoch]


@pytest.mark.parametrize("weighted", [False, True])
def test_minibatch_fit_equals_a_hand_written_loop(weighted):
    # N=22, batch 8: batches of 8, 8 and a last one of 6 each epoch. fit pads that last batch
    # with zero-weight slots; the reference loop below takes the 6 samples themselves.
    n, bs, steps = 22, 8, 9
    x = jr.normal(jr.key(1), (n, 2))
    y = jnp.stack([jnp.sin(x[:, 0]), x[:, 0] * x[:, 1]], axis=1)
    w = jr.uniform(jr.key(2), (n,), minval=0.5, maxval=2.0) if weighted else None
    model = FFN(2, 2, (5,), key=jr.key(3))
    key = jr.key(7)
    opt = optax.sgd(0.1)
    trained, h = fit(
        model,
        x,
        y,
        optimizer=opt,
        batch_size=bs,
        steps=steps,
        key=key,
        sample_weight=w,
        progress=False,
    )

    def weighted_mse(m, xb, yw):  # the sample weights ride in y's last column
        per = jnp.mean((yw[:, :2] - jax.vmap(m)(xb)) ** 2, axis=1)
        return jnp.sum(yw[:, 2] * per) / jnp.sum(yw[:, 2])

    step = eqx_ffn.make_step(weighted_mse if weighted else "mse", opt)
    ref, opt_state, ref_losses = model, opt.init(eqx.filter(model, eqx.is_inexact_array)), []
    key_data = np.asarray(jr.key_data(key))
    for t in range(steps):
        e, j = divmod(t, 3)
        idx = _sampling.epoch_permutation(key_data, e, n)[j * bs : (j + 1) * bs]
        yb = y[idx] if w is None else jnp.concatenate([y[idx], w[idx, None]], axis=1)
        ref, opt_state, value = step(ref, opt_state, x[idx], yb)
        ref_losses.append(float(value))
    np.testing.assert_allclose(h.loss, ref_losses, rtol=2e-6)
    flat, _ = eqx_ffn.ravel(trained)
    ref_flat, _ = eqx_ffn.ravel(ref)
    np.testing.assert_allclose(flat, ref_flat, rtol=1e-5, atol=1e-6)


def test_replacement_sampling_uses_the_whole_data_set():
    # The lecture's worked solution samples from the first 200 points only; we must not.
    n = 2000
    x = jnp.arange(n, dtype=jnp.float32)[:, None]

    def max_index(model, xb, yb):
        return jnp.max(xb) + 0.0 * jnp.sum(model.layers[0].weight)

    _, h = fit(
        FFN(1, 1, (), key=jr.key(0)),
        x,
        jnp.zeros((n, 1)),
        loss=max_index,
        batch_size=32,
        sampling="replacement",
        steps=50,
        optimizer=optax.sgd(0.0),
        progress=False,
    )
    assert np.max(h.loss) > 1800 and np.all(h.loss < n)


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_batches_do_not_depend_on_chunking(lecture1, sampling):
    # One program call runs all 600 steps; with `_call_seconds` tiny each call runs one chunk
    # (crossing 256-step replacement blocks and epochs at other offsets). Same batches.
    from eqx_ffn.training._fit import fit_with
    from eqx_ffn.training._options import FitOptions

    x, y, params = lecture1
    kw = dict(batch_size=24, sampling=sampling, steps=600, key=jr.key(3), progress=False)
    _, whole = fit(FFN.from_params(params), x, y, **kw)
    before = _engine.compile_count
    cut_options = FitOptions(**kw, _call_seconds=1e-9)
    _, cut = fit_with(FFN.from_params(params), x, y, cut_options)
    assert _engine.compile_count == before  # many calls, one program
    np.testing.assert_array_equal(cut.loss, whole.loss)
    _, other = fit(FFN.from_params(params), x, y, **{**kw, "key": jr.key(4)})
    assert not np.allclose(other.loss, whole.loss, rtol=1e-3)


def test_reference_section3_minibatch_runs():
    x, y, params = lecture_data_and_params(n=20000)
    model = FFN.from_params(params)
    _, h = fit(
        model, x, y, optimizer=ADAM, batch_size=32, steps=1000, key=jr.key(101), progress=False
    )
    assert h.steps == 1000
    assert h.final_loss < 0.5 * h.loss[0]  # trained, measured on all 20,000 points
    _, h2 = fit(
        model, x, y, optimizer=ADAM, batch_size=32, steps=1000, key=jr.key(101), progress=False
    )
    np.testing.assert_array_equal(h.loss, h2.loss)
    _, h3 = fit(
        model, x, y, optimizer=ADAM, batch_size=32, steps=1000, key=jr.key(102), progress=False
    )
    assert not np.array_equal(h.loss, h3.loss)


def test_diverging_run_returns_finite_model(lecture1):
    x, y, params = lecture1
    # sgd(1e3) blows up within a few steps: caught as diverged (or non-finite) either way
    with pytest.warns(eqx_ffn.NonFiniteLossWarning, match="(diverged|non-finite) at step"):
        model, h = fit(
            FFN.from_params(params), x, y, optimizer=optax.sgd(1e3), steps=200, progress=False
        )
    assert h.stop_reason in ("diverged", "non_finite_loss")
    assert h.steps < 200 and len(h.loss) == h.steps
    assert np.all(np.isfinite(h.loss))
    flat, _ = eqx_ffn.ravel(model)
    assert np.all(np.isfinite(flat))
    # the returned model is the one whose loss was recorded last
    mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
    np.testing.assert_allclose(mse, h.loss[-1], rtol=1e-4)


def test_nan_loss_returns_the_last_finite_model(lecture1):
    x, y, params = lecture1

    def nan_after_zero(model, xb, yb):  # a loss that turns NaN once the weights move
        w = model.layers[0].weight
        mse = jnp.mean((yb - jax.vmap(model)(xb)) ** 2)
        return jnp.where(jnp.abs(w[0, 0] - params["W1"][0, 0]) > 0.05, jnp.nan, mse)

    with pytest.warns(eqx_ffn.NonFiniteLossWarning, match="non-finite at step"):
        model, h = fit(
            FFN.from_params(params), x, y, loss=nan_after_zero, steps=100, progress=False
        )
    assert h.stop_reason == "non_finite_loss" and 0 < h.steps < 100
    assert h.best_step == h.steps - 1
    mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
    np.testing.assert_allclose(mse, h.loss[-1], rtol=1e-5)


def test_early_stopping_returns_best_model(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    # validation targets of the opposite sign: val loss falls first, then rises
    xv, yv = x[:50], -y[:50] * 0.2
    out, h = fit(
        model,
        x,
        y,
        optimizer=ADAM,
        steps=2000,
        validation=(xv, yv),
        eval_every=10,
        patience=5,
        progress=False,
    )
    assert h.stop_reason == "early_stopping"
    assert h.steps < 2000
    assert len(h.val_loss) == len(h.val_steps) == h.steps // 10
    best = int(np.argmin(h.val_loss))
    assert h.best_step == h.val_steps[best]
    assert len(h.val_loss) - 1 - best == 5  # stopped after 5 evaluations without improvement
    val_mse = jnp.mean((jax.vmap(out)(xv) - yv) ** 2)
    np.testing.assert_allclose(val_mse, h.val_loss[best], rtol=1e-5)


def test_validation_without_patience(lecture1):
    x, y, params = lecture1
    _, h = fit(
        FFN.from_params(params),
        x,
        y,
        optimizer=ADAM,
        steps=100,
        validation=(x, y),
        eval_every=25,
        progress=False,
    )
    np.testing.assert_array_equal(h.val_steps, [25, 50, 75, 100])
    np.testing.assert_allclose(h.val_loss[-1], h.final_loss, rtol=1e-5)


def test_callable_loss_equals_named_mse(lecture1):
    x, y, params = lecture1

    def mse(model, xb, yb):
        return jnp.mean((yb - jax.vmap(model)(xb)) ** 2)

    _, h1 = fit(FFN.from_params(params), x, y, optimizer=ADAM, steps=50, loss=mse, progress=False)
    _, h2 = fit(FFN.from_params(params), x, y, optimizer=ADAM, steps=50, progress=False)
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-6)


@pytest.mark.parametrize(
    "name, fn",
    [
        ("mae", lambda p, y: jnp.mean(jnp.abs(y - p))),
        ("huber", lambda p, y: jnp.mean(optax.losses.huber_loss(p, y))),
    ],
)
def test_named_regression_losses(lecture1, name, fn):
    x, y, params = lecture1
    model = FFN.from_params(params)
    _, h = fit(model, x, y, optimizer=ADAM, steps=300, loss=name, progress=False)
    np.testing.assert_allclose(h.loss[0], fn(jax.vmap(model)(x), y), rtol=1e-6)
    assert h.loss[-1] < 0.5 * h.loss[0]


def test_softmax_cross_entropy_classifies():
    key = jr.key(3)
    x = jr.normal(key, (300, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)  # XOR-like quadrants
    model = FFN(2, 2, (16,), init="glorot_normal", key=jr.key(1))
    out, h = fit(
        model,
        x,
        labels,
        loss="softmax_cross_entropy",
        optimizer="adam",
        learning_rate=3e-2,
        steps=800,
        progress=False,
    )
    np.testing.assert_allclose(h.loss[0], np.log(2) + 0 * h.loss[0], atol=0.5)
    acc = jnp.mean(jnp.argmax(jax.vmap(out)(x), axis=1) == labels)
    assert acc > 0.95
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit(model, x, labels + 1, loss="softmax_cross_entropy", steps=1)


def test_l2_penalty_on_weights_only(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    _, h = fit(model, x, y, optimizer=ADAM, steps=2, l2=0.1, l1=0.01, progress=False)
    mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
    w = [params["W1"], params["W2"]]
    pen = 0.1 * sum(jnp.sum(a**2) for a in w) + 0.01 * sum(jnp.sum(jnp.abs(a)) for a in w)
    np.testing.assert_allclose(h.loss[0], mse + pen, rtol=1e-6)


def test_sample_weight_equals_repeated_rows():
    x, y, params = lecture_data_and_params(n=40)
    w = np.tile([1.0, 2.0, 3.0, 0.0], 10)
    rep = np.repeat(np.arange(40), w.astype(int))
    model = FFN.from_params(params)
    _, hw = fit(model, x, y, optimizer=ADAM, steps=100, sample_weight=w, progress=False)
    _, hr = fit(model, x[rep], y[rep], optimizer=ADAM, steps=100, progress=False)
    np.testing.assert_allclose(hw.loss, hr.loss, rtol=2e-5)


def test_make_step_matches_fit(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    step = eqx_ffn.make_step("mse", ADAM)
    opt_state = ADAM.init(eqx.filter(model, eqx.is_inexact_array))
    losses = []
    m = model
    for _ in range(20):
        m, opt_state, loss = step(m, opt_state, x, y)
        losses.append(loss)
    _, h = fit(model, x, y, optimizer=ADAM, steps=20, progress=False)
    np.testing.assert_allclose(losses, h.loss, rtol=1e-6)


def test_standardized_model_trains_only_the_network(lecture1):
    x, y, _ = lecture1
    xs, ys = 3.0 * x + 5.0, 10.0 * y
    net = Standardized.around(FFN(1, 1, (16,), init="glorot_normal", key=jr.key(0)), xs, ys)
    out, h = fit(net, xs, ys, optimizer="adam", learning_rate=1e-2, steps=1500, progress=False)
    np.testing.assert_array_equal(out.x_scaler.mean, net.x_scaler.mean)
    np.testing.assert_array_equal(out.y_scaler.scale, net.y_scaler.scale)
    # trained in physical units
    assert h.final_loss < 0.05 * float(jnp.var(ys))


def test_progress_bar(lecture1, capsys):
    x, y, params = lecture1
    fit(FFN.from_params(params), x[:20], y[:20], steps=10, progress=True)
    err = capsys.readouterr().err
    assert "10/10" in err and "loss=" in err
    fit(FFN.from_params(params), x[:20], y[:20], steps=10)  # not a terminal: silent
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            {"x": np.ones((200,))},
            ValueError,
            r"x must have shape \(N, in_size\) = \(N, 1\); got \(200,\). Reshape it with x\[:, None\]",
        ),
        (
            {"y": np.ones((200, 2))},
            ValueError,
            r"y must have shape \(N, out_size\) = \(200, 1\); got \(200, 2\)",
        ),
        ({"y": np.ones((199, 1))}, ValueError, "same number of rows"),
        ({"x": np.full((200, 1), np.nan)}, ValueError, "x contains NaN or inf .first at row 0"),
        ({"x": np.ones((0, 1)), "y": np.ones((0, 1))}, ValueError, "x is empty"),
        ({"x": [[1.0]] * 200}, None, None),
        ({"x": "data"}, TypeError, "x must be an array of numbers .a JAX or NumPy array"),
        ({"batch_size": 500}, ValueError, r"batch_size=500 is larger than the data \(N=200"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"loss": "mse2"}, ValueError, "Unknown loss 'mse2'. Valid names are 'mse', 'mae'"),
        ({"optimizer": "adan"}, ValueError, "Unknown optimizer 'adan'. Valid names are 'adam'"),
        ({"sampling": "bootstrap"}, ValueError, "Unknown sampling 'bootstrap'"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
        ({"patience": 3}, ValueError, "patience needs validation"),
        ({"l2": -1.0}, ValueError, "l2 must be a finite number >= 0"),
        (
            {"sample_weight": np.ones(3)},
            ValueError,
            r"sample_weight must have shape \(N,\) = \(200,\)",
        ),
        (
            {"validation": (np.ones((5, 2)), np.ones((5, 1)))},
            ValueError,
            r"validation x must have shape \(N, in_size\) = \(N, 1\)",
        ),
        ({"key": 3}, TypeError, "key must be a jax.random key"),
    ],
)
def test_bad_input_is_refused_before_compiling(lecture1, kwargs, exc, match):
    x, y, params = lecture1
    args = {"x": x, "y": y, "steps": 2, "progress": False} | kwargs
    before = _engine.compile_count
    model = FFN.from_params(params)
    if exc is None:  # nested lists are accepted as arrays
        fit(model, **args)
        return
    with pytest.raises(exc, match=match):
        fit(model, **args)
    assert _engine.compile_count == before


def test_float64_fit_in_subprocess():
    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import jax.numpy as jnp, jax.random as jr, eqx_ffn\n"
        "x = jnp.linspace(-1, 1, 50)[:, None]; y = jnp.sin(3 * x)\n"
        "m = eqx_ffn.FFN(1, 1, (8,), init='glorot_normal', key=jr.key(0))\n"
        "out, h = eqx_ffn.fit(m, x, y, optimizer='lbfgs', steps=200, progress=False)\n"
        "assert out.dtype == jnp.float64 and h.loss.dtype.name == 'float64', h.loss.dtype\n"
        "assert h.final_loss < 1e-4, h.final_loss\n"
        "out, h = eqx_ffn.fit(m, x, y, batch_size=16, steps=20, progress=False)\n"
        "print('ok')\n"
    )
    assert run_python(code).strip() == "ok"


class _GaussNewton(eqx_ffn.Solver):
    """A minimal damped Gauss-Newton step written against the public Solver interface."""

    damping: float = 0.1

    @property
    def full_batch_only(self) -> bool:
        return True

    def init(self, params):
        return None

    def step(self, objective, params, state, batch):
        from jax.flatten_util import ravel_pytree

        flat, unravel = ravel_pytree(params)
        r = objective.residuals(params, batch)
        jac = jax.jacfwd(lambda p: objective.residuals(unravel(p), batch))(flat)
        lhs = jac.T @ jac + self.damping * jnp.eye(flat.size)
        delta = jnp.linalg.solve(lhs, -jac.T @ r)
        return unravel(flat + delta), state, objective(params, batch)


def test_a_least_squares_solver_plugs_in(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    _, h = fit(model, x, y, optimizer=_GaussNewton(), steps=100, l2=1e-6, progress=False)
    mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
    pen = 1e-6 * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2))
    np.testing.assert_allclose(h.loss[0], mse + pen, rtol=1e-6)  # sum(r**2) is the objective
    assert h.final_loss < 0.02 and h.loss[10] < 0.05 * h.loss[0]
    with pytest.raises(ValueError, match="L-BFGS|full batch"):
        fit(model, x, y, optimizer=_GaussNewton(), batch_size=10)


def test_fit_keywords_are_the_options_fields():
    # the keyword list is written twice, in `fit`'s signature (for users) and in FitOptions (the
    # one validated object): both must name the same settings with the same defaults
    import dataclasses
    import inspect

    from eqx_ffn.training._options import FitOptions

    params = inspect.signature(fit).parameters
    keywords = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    fields = {
        f.name: f.default
        for f in dataclasses.fields(FitOptions)
        if f.init and not f.name.startswith("_")
    }
    assert keywords == fields
