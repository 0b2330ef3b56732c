"""`fit(..., callbacks=[...])`: called on the host between program calls with a read-only view
of the fit, and able to stop it."""

from __future__ import annotations

import jax
import jax.random as jr
import numpy as np
import optax
import pytest

import eqx_ffn
from eqx_ffn.training._ensemble import fit_ensemble

ADAM = optax.adam(1e-2)


def _data():
    x = np.linspace(-2, 2, 128, dtype=np.float32)[:, None]
    return x, np.sin(2 * x)


def _model():
    return eqx_ffn.FFN(1, 1, (8,), key=jr.key(0))


def test_callback_stops_the_fit_early():
    x, y = _data()
    seen = []

    def stop_below(info):
        seen.append((info.step, len(info.loss)))
        assert info.steps == 5000 and not info.loss.flags.writeable
        return bool(info.loss[-1] < 0.05)

    model, h = eqx_ffn.fit(
        _model(), x, y, steps=5000, optimizer=ADAM, callbacks=[stop_below], callback_every=100,
        progress=False,
    )  # fmt: skip
    assert h.stop_reason == "callback" and "callback" in h.message
    assert h.steps < 5000 and h.loss[-1] < 0.05 and len(h.loss) == h.steps
    assert [n for _, n in seen] == [s for s, _ in seen]  # the losses of every step run so far
    gaps = np.diff([0] + [s for s, _ in seen])
    assert np.all(gaps <= 128) and len(seen) >= 2  # every 100 steps, rounded up to a chunk
    # the model returned is the one trained for h.steps steps: the same as a fit of that length
    ref, _ = eqx_ffn.fit(_model(), x, y, steps=h.steps, optimizer=ADAM, progress=False)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(a, b)


def test_info_stop_model_and_validation():
    x, y = _data()
    got = {}

    def watch(info):
        got["val"] = (info.val_loss.copy(), info.val_steps.copy())
        got["model"] = info.model
        if info.step >= 200:
            info.stop()

    model, h = eqx_ffn.fit(
        _model(), x, y, steps=1000, optimizer=ADAM, validation=(x[::4], y[::4]), eval_every=25,
        callbacks=[watch], callback_every=50, progress=False,
    )  # fmt: skip
    assert h.stop_reason == "callback" and 200 <= h.steps < 1000
    vals, vsteps = got["val"]
    np.testing.assert_array_equal(vals, h.val_loss)
    np.testing.assert_array_equal(vsteps, h.val_steps)
    assert isinstance(got["model"], eqx_ffn.FFN)
    for a, b in zip(jax.tree.leaves(got["model"]), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_callbacks_do_not_change_the_fit():
    x, y = _data()
    kw = dict(steps=600, batch_size=16, optimizer=ADAM, key=jr.key(3), progress=False)
    ref, h_ref = eqx_ffn.fit(_model(), x, y, **kw)
    steps = []
    model, h = eqx_ffn.fit(
        _model(), x, y, **kw, callbacks=[lambda info: steps.append(info.step)], callback_every=64
    )
    np.testing.assert_array_equal(h.loss, h_ref.loss)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(steps) >= 600 // 64 and steps[-1] == 600


def test_ensemble_callback_sees_every_member():
    x, y = _data()
    seen = []

    def watch(info):
        seen.append(info)
        assert info.ensemble == 3 and len(info.loss) == 3
        return info.step >= 100

    def make(key):
        return eqx_ffn.FFN(1, 1, (4,), key=key)

    _, hs = fit_ensemble(
        make, x, y, keys=jr.split(jr.key(1), 3), steps=1000, optimizer=ADAM, callbacks=[watch],
        callback_every=50, progress=False,
    )  # fmt: skip
    assert all(h.stop_reason == "callback" and h.steps < 1000 for h in hs)
    assert seen and all(len(loss) == seen[-1].step for loss in seen[-1].loss)


def test_bad_callbacks_are_refused():
    x, y = _data()
    with pytest.raises(TypeError, match="callbacks must be a list of callables"):
        eqx_ffn.fit(_model(), x, y, callbacks=["print"])
    with pytest.raises(ValueError, match="callback_every"):
        eqx_ffn.fit(_model(), x, y, callbacks=[print], callback_every=0)


def test_short_intervals_share_a_call_and_each_callback_sees_its_own_step(monkeypatch, tmp_path):
    """Callbacks every 128 steps of a tiny model: one program call runs many intervals and keeps
    the state at the end of each. Each callback sees the losses up to its step and the model of
    exactly that many steps; a stop at one ends the fit there (History, model, checkpoint), and
    resuming from that checkpoint gives the uninterrupted fit, bit for bit."""
    from eqx_ffn.training import _driver

    snaps = []
    dispatch = _driver._dispatch

    def traced_dispatch(prep, cfg, state, t, *args, **kw):
        snaps.append(cfg.snap_chunks)
        return dispatch(prep, cfg, state, t, *args, **kw)

    monkeypatch.setattr(_driver, "_dispatch", traced_dispatch)
    x, y = _data()
    seen = {}

    def watch(info):
        seen[info.step] = (len(info.loss), info.model if info.step == 256 else None)
        return info.step >= 640

    kw = dict(optimizer=ADAM, progress=False)
    path = tmp_path / "fit.ckpt"
    model, h = eqx_ffn.fit(
        _model(), x, y, steps=2000, callbacks=[watch], callback_every=128, checkpoint=path,
        checkpoint_every=1e9, **kw,
    )  # fmt: skip
    assert snaps[0] > 0 and len(snaps) < len(seen)  # several callbacks a call
    assert list(seen) == [128, 256, 384, 512, 640]
    assert all(n == step for step, (n, _) in seen.items())
    assert h.stop_reason == "callback" and h.steps == 640 and len(h.loss) == 640
    for step, got in ((256, seen[256][1]), (640, model)):
        ref, h_ref = eqx_ffn.fit(_model(), x, y, steps=step, **kw)
        assert all(np.array_equal(a, b) for a, b in zip(*map(jax.tree.leaves, (got, ref))))
    np.testing.assert_array_equal(h.loss, h_ref.loss)
    full, h_full = eqx_ffn.fit(_model(), x, y, steps=2000, **kw)
    resumed, h_res = eqx_ffn.fit(_model(), x, y, steps=2000, checkpoint=path, resume=True, **kw)
    assert h_res.steps == 2000
    np.testing.assert_array_equal(h_res.loss, h_full.loss)
    assert all(np.array_equal(a, b) for a, b in zip(*map(jax.tree.leaves, (resumed, full))))


def test_the_next_call_runs_while_the_host_reads_this_one(monkeypatch):
    from eqx_ffn.training import _callbacks, _driver

    # one interval a call (as for a model whose 100 steps take longer than a call's cost)
    monkeypatch.setattr(_callbacks, "SNAPSHOT_SECONDS", 0.0)

    events = []
    dispatch, fetch = _driver._dispatch, _driver._fetch

    def traced_dispatch(prep, cfg, state, t, *args, **kw):
        events.append(("dispatch", t))
        return dispatch(prep, cfg, state, t, *args, **kw)

    def traced_fetch(cfg, call, *args):
        events.append(("fetch", call.t))
        return fetch(cfg, call, *args)

    monkeypatch.setattr(_driver, "_dispatch", traced_dispatch)
    monkeypatch.setattr(_driver, "_fetch", traced_fetch)
    x, y = _data()
    model, h = eqx_ffn.fit(
        _model(), x, y, steps=5000, optimizer=ADAM, callbacks=[lambda info: info.step >= 300],
        callback_every=100, progress=False,
    )  # fmt: skip
    started = [t for kind, t in events if kind == "dispatch"]
    read = [t for kind, t in events if kind == "fetch"]
    assert len(read) >= 3 and started[: len(read)] == read
    for k in range(1, len(read)):  # call k was on its way before call k - 1 was read
        assert events.index(("dispatch", read[k])) < events.index(("fetch", read[k - 1]))
    # the callback stopped the fit after the call that reached step 300; the call dispatched
    # beyond it was not used: the model is the one trained for h.steps steps
    assert h.stop_reason == "callback" and h.steps >= 300 and started == [*read, h.steps]
    ref, _ = eqx_ffn.fit(_model(), x, y, steps=h.steps, optimizer=ADAM, progress=False)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(a, b)
