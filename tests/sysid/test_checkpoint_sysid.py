"""Checkpoint and resume of the dynamical-system fits: a fit stopped at step k (Ctrl-C in
process, SIGKILL in a subprocess) and resumed returns the same parameters, initial states and
losses, bit for bit, as the uninterrupted fit; bad arguments and foreign checkpoints are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
import pytest
from synthetic import tank_like

import eqx_ffn
import eqx_ffn.sysid as sysid
from eqx_ffn.sysid import _ensemble
from eqx_ffn.sysid import _fit as fit_module

# the shapes and settings of test_sysid.py, test_truncated.py and test_sysid_ensemble.py (their
# programs, in the suite's shared compilation cache, are loaded rather than compiled again)
RECORDS = [tank_like(120, 0), tank_like(120, 1, x0=1.5)]
TRUNCATED_RECORDS = [tank_like(200, 0), tank_like(150, 1, x0=1.5)]
VALIDATION = tank_like(100, 3, x0=0.5)

CASES = {
    "adam": dict(learning_rate=1e-2, steps=40, checkpoint_every=10),
    "lm": dict(optimizer="lm", steps=12, checkpoint_every=4),
    "truncated": dict(
        criterion="truncated",
        window=20,
        batch_size=16,
        encoder={"n_init": 8, "hidden_sizes": (8,)},
        learning_rate=1e-2,
        steps=40,
        checkpoint_every=10,
    ),
    "early_stopping": dict(
        learning_rate=3e-2, steps=200, checkpoint_every=10, eval_every=5, patience=3
    ),
}


def _model(hidden=(8,)):
    return sysid.NeuralStateSpace(1, 2, 1, hidden, key=jr.key(0))


def _fit(case: str, **extra):
    kw = dict(CASES[case])
    if case == "early_stopping":
        kw["validation"] = VALIDATION
    kw.update(extra)
    return sysid.fit(_model(), TRUNCATED_RECORDS if case == "truncated" else RECORDS, **kw)


def _same(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb))


def _assert_same_fit(got, ref):
    (m, x0, h), (m_r, x0_r, h_r) = got, ref
    assert _same(m, m_r)
    np.testing.assert_array_equal(x0, x0_r)
    np.testing.assert_array_equal(h.loss, h_r.loss)
    assert h.loss.dtype == h_r.loss.dtype
    np.testing.assert_array_equal(h.val_loss, h_r.val_loss)
    np.testing.assert_array_equal(h.val_steps, h_r.val_steps)
    assert (h.steps, h.stop_reason, h.best_step) == (h_r.steps, h_r.stop_reason, h_r.best_step)
    assert h.final_loss == h_r.final_loss


def _ctrl_c_after(monkeypatch, module, name: str, calls: int) -> None:
    """Ctrl-C (SIGINT to this process) after the `calls`-th call of the program `name`."""
    real = module.compiled
    count = [0]

    def fake(prog_name, fn, static, dyn):
        program, seconds = real(prog_name, fn, static, dyn)
        if prog_name != name:
            return program, seconds

        def wrapped(d):
            out = program(d)
            count[0] += 1
            if count[0] == calls:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        return wrapped, seconds

    monkeypatch.setattr(module, "compiled", fake)


@pytest.mark.parametrize("case", list(CASES))
def test_ctrl_c_then_resume_is_bit_identical(case, tmp_path, monkeypatch):
    path = tmp_path / "fit.ckpt"
    every = CASES[case]["checkpoint_every"]
    # the uninterrupted fit that writes checkpoints (for "lm" the chunks' ends shape the
    # iterations; for the optax optimizers it equals the fit without checkpoints too)
    ref = _fit(case, checkpoint=tmp_path / "ref.ckpt")
    if case != "lm":
        _assert_same_fit(_fit(case), ref)
    if case == "early_stopping":
        assert ref[2].stop_reason == "early_stopping" and ref[2].best_step is not None
        assert ref[2].best_step < 2 * every < ref[2].steps  # stopped between the two
    program = "truncated" if case == "truncated" else "lm" if case == "lm" else "optax"
    chunk = min(every, CASES[case].get("eval_every", every))  # the chunks end on evaluations
    _ctrl_c_after(monkeypatch, fit_module, program, 2 * every // chunk)
    _, _, h = _fit(case, checkpoint=path)
    assert (h.stop_reason, h.steps) == ("interrupted", 2 * every)
    assert _step_of(path) == 2 * every
    monkeypatch.undo()
    _assert_same_fit(_fit(case, checkpoint=path, resume=True), ref)
    if case == "adam":  # resuming a finished fit returns it again, with no step run
        _assert_same_fit(_fit(case, resume=path), ref)


def test_ensemble_ctrl_c_then_resume_is_bit_identical(tmp_path, monkeypatch):
    models = [sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(i)) for i in range(3)]
    record = tank_like(120, 0, x0=0.5)
    kw = dict(learning_rate=1e-2, steps=30, l2=1e-4, checkpoint_every=10)
    path = tmp_path / "ens.ckpt"
    ref = sysid.fit_ensemble(models, record, **kw)
    _ctrl_c_after(monkeypatch, _ensemble, "ensemble", 1)
    _, _, hs = sysid.fit_ensemble(models, record, checkpoint=path, **kw)
    assert [(h.stop_reason, h.steps) for h in hs] == [("interrupted", 10)] * 3
    monkeypatch.undo()
    got = sysid.fit_ensemble(models, record, resume=path, **kw)
    for g, r in zip(zip(*got), zip(*ref)):
        _assert_same_fit(g, r)


def _child(path: str) -> None:
    """Run in a subprocess: a fit that checkpoints every 10 steps; each chunk sleeps 50 ms
    afterwards (the numbers are the same) so that the parent's SIGKILL lands mid-run."""
    real = fit_module.compiled

    def slow(name, fn, static, dyn):
        program, seconds = real(name, fn, static, dyn)
        return (lambda d: (program(d), time.sleep(0.05))[0]), seconds

    fit_module.compiled = slow
    _fit_sigkill(checkpoint=path, checkpoint_every=10)


def _fit_sigkill(**kw):
    return sysid.fit(_model(), RECORDS, learning_rate=1e-2, steps=300, l2=1e-4, **kw)


def _step_of(path: Path) -> int:
    data = path.read_bytes()
    n = int.from_bytes(data[8:16], "little")
    return json.loads(data[16 : 16 + n])["step"]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    path = tmp_path / "fit.ckpt"
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_checkpoint_sysid as t; t._child({str(path)!r})"
    )
    ref = _fit_sigkill()  # (compiled: the child loads its program from the shared cache)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(np.random.default_rng().uniform(0, 0.1)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:] if proc.stderr else ""
    assert 10 <= _step_of(path) < 300
    got = _fit_sigkill(checkpoint=path, checkpoint_every=10, resume=True)
    _assert_same_fit(got, ref)


def test_bad_checkpoint_arguments(tmp_path):
    model, rec = _model(), RECORDS
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1; got 0"):
        sysid.fit(model, rec, steps=2, checkpoint=tmp_path / "c", checkpoint_every=0)
    with pytest.raises(TypeError, match="checkpoint_every"):
        sysid.fit_ensemble([model], rec, steps=2, checkpoint_every=2.5)
    with pytest.raises(FileNotFoundError, match=r"resume=.*missing\.ckpt.*does not exist"):
        sysid.fit(model, rec, steps=2, resume=tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match=r"resume=True.*checkpoint"):
        sysid.fit(model, rec, steps=2, resume=True)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        sysid.fit(model, rec, steps=2, checkpoint=3)
    # resume=True without a file yet: a fresh fit, which writes it
    _, _, h = sysid.fit(model, rec, steps=2, checkpoint=tmp_path / "c", resume=True)
    assert h.steps == 2 and (tmp_path / "c").exists()


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    kw = dict(steps=2, checkpoint_every=1)
    sysid.fit(_model(), RECORDS, checkpoint=path, **kw)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"resume from .*c\.ckpt.*different fit"):
        sysid.fit(_model((9,)), RECORDS, resume=path, **kw)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*records: \[\[\[120, 1\]"):
        sysid.fit(_model(), [RECORDS[0], tank_like(110, 1)], resume=path, **kw)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*steps: 2 in the checkpoint"):
        sysid.fit(_model(), RECORDS, resume=path, steps=3, checkpoint_every=1)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*optimizer"):
        sysid.fit(_model(), RECORDS, resume=path, optimizer="lm", **kw)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*members"):
        sysid.fit_ensemble([_model()], RECORDS, resume=path, **kw)
