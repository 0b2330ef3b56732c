"""`History.data_loss`: the per-step training loss without the L1/L2 penalty, recorded by the
compiled program (every solver, `fit_ensemble` per member, across a checkpoint and resume)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqx_ffn
from eqx_ffn.training._fit import fit_with
from eqx_ffn.training._options import FitOptions

X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
Y = np.sin(3 * X)


def _model(key=0):
    return eqx_ffn.FFN(1, 1, (6,), key=jr.key(key))


def _by_hand(model, x, y, l2: float) -> tuple[float, float]:
    """The model's MSE on `(x, y)` and its penalty `l2 * sum W**2`, in float32."""
    mse = jnp.mean((jax.vmap(model)(x) - y) ** 2)
    penalty = l2 * sum(jnp.sum(layer.weight**2) for layer in model.layers)
    return float(mse), float(penalty)


def _check_first_step(history, model, x, y, l2: float) -> None:
    """`loss[0]` and `data_loss[0]` against a reference computed in this process. The program
    records `data_loss = loss - penalty` in float32 and sums in its own order: they agree to
    a few float32 roundings of `loss[0]` (8 ulp leaves room for XLA's reduction order, which
    differs between CPUs)."""
    mse, penalty = _by_hand(model, x, y, l2)
    tol = 8 * np.finfo(np.float32).eps * float(history.loss[0])
    assert len(history.data_loss) == len(history.loss) == history.steps
    assert abs(float(history.data_loss[0]) - mse) <= tol
    assert abs(float(history.loss[0] - history.data_loss[0]) - penalty) <= tol
    assert penalty > 10 * tol  # the penalty is visible at this precision
    # every step: the loss is the data loss plus a penalty >= 0 (0 once the weights are tiny)
    assert np.all(history.loss - history.data_loss >= 0)


# The fits below compile the programs that tests/solvers/test_least_squares.py (`lm_fit`),
# tests/training/test_fit.py (`test_lbfgs_reaches_1e4`) and tests/training/test_ensemble.py
# (`test_per_member_l2_and_early_stopping`) compile: the same options but `l2`, a run-time
# input, so the suite's shared compilation cache serves them.


@pytest.mark.parametrize(("optimizer", "steps"), [("lbfgs", 600), ("lm", 100)])
def test_data_loss_is_the_loss_without_the_penalty(lecture1, optimizer, steps):
    # (optax's Adam: tests/training/test_history.py; each solver computes the loss it reports
    # in its own way, the program subtracts the same penalty)
    x, y, params = lecture1
    model = eqx_ffn.FFN.from_params(params)
    kw = dict(optimizer=optimizer, steps=steps, l2=1e-3, progress=False)
    _, h = eqx_ffn.fit(model, x, y, **kw, **({"tol": 0.0} if optimizer == "lm" else {}))
    assert h.data_loss is not h.loss
    _check_first_step(h, model, x, y, 1e-3)


def _member(key):
    return eqx_ffn.FFN(1, 1, (16,), init="glorot_normal", key=key)


def test_ensemble_records_each_members_data_loss(lecture1):
    x, y, _ = lecture1
    keys = jr.split(jr.key(0), 8)[:3]
    kw = dict(
        keys=keys, steps=600, validation=(x[:50], -0.2 * y[:50]), eval_every=10, patience=3,
        progress=False,
    )  # fmt: skip
    l2s = jnp.array([0.0, 0.01, 1.0])
    _, hs = eqx_ffn.fit_ensemble(_member, x, y, l2=l2s, **kw)
    np.testing.assert_array_equal(hs[0].data_loss, hs[0].loss)  # the member without one
    for key, l2, h in zip(keys[1:], l2s[1:], hs[1:], strict=True):
        model_key, _ = jr.split(key)  # how fit_ensemble uses a member's key
        _check_first_step(h, _member(model_key), x, y, float(l2))
    # the same program without a penalty records nothing more
    _, plain = eqx_ffn.fit_ensemble(_member, x, y, **{**kw, "steps": 20})
    assert all(h.data_loss is h.loss for h in plain)


def test_mini_batches_callbacks_and_resume(tmp_path):
    # one program for the three fits (a call runs one 64-step chunk: `_call_seconds`)
    kw = dict(
        steps=200, batch_size=20, l1=1e-2, validation=(X[::3], Y[::3]), eval_every=50,
        optimizer=optax.adam(1e-2), progress=False, _call_seconds=1e-9,
    )  # fmt: skip
    _, ref = fit_with(_model(), X, Y, FitOptions(**kw))
    # batch losses, and the same penalty whatever the batch
    gap = ref.loss - ref.data_loss
    assert np.all(np.isfinite(gap)) and np.all(gap > 0)
    assert ref.val_steps.tolist() == [50, 100, 150, 200]
    seen = []

    def stop(info):
        seen.append(np.array(info.data_loss))
        return True

    path = tmp_path / "fit.ckpt"
    _, h = fit_with(_model(), X, Y, FitOptions(checkpoint=path, callbacks=[stop], **kw))
    assert h.stop_reason == "callback" and 0 < h.steps < 200
    np.testing.assert_array_equal(seen[-1], h.data_loss)
    np.testing.assert_array_equal(h.data_loss, ref.data_loss[: h.steps])
    _, resumed = fit_with(_model(), X, Y, FitOptions(resume=path, **kw))
    np.testing.assert_array_equal(resumed.loss, ref.loss)
    np.testing.assert_array_equal(resumed.data_loss, ref.data_loss)
