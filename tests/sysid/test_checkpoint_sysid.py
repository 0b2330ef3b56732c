"""Checkpoint and resume of the dynamical-system fits: a fit stopped after a program call (Ctrl-C
in process, SIGKILL in a subprocess) and resumed returns the same parameters, initial states and
losses, bit for bit, as the uninterrupted fit without a checkpoint; `checkpoint_every` counts
seconds (as `eqx_ffn.fit`'s) and never changes the chunks; bad arguments and foreign checkpoints
are refused.

Kept cheap: one small record and one small model structure for every test (each program is
compiled once for the file; they are test_sysid_ensemble.py's, and the truncated case's are
test_truncated.py's, so that in the suite, which shares one compilation cache, the programs of
one file are loaded by the other), chunks of `CHUNK` steps (`_chunk`, a test setting) so that a
few steps make several program calls, and the uninterrupted reference fits computed once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
import pytest
from synthetic import tank_like

import eqx_ffn
import eqx_ffn.sysid as sysid
from eqx_ffn.sysid import _checkpoint, _ensemble
from eqx_ffn.sysid import _fit as fit_module

RECORD = tank_like(120, 0, x0=0.5)  # and the model: test_sysid_ensemble.py's
TRUNCATED_RECORDS = [tank_like(200, 0), tank_like(150, 1, x0=1.5)]  # test_truncated.py's
VALIDATION = tank_like(60, 3)
CHUNK = 4  # steps per program call
STEPS = 20  # 5 program calls
STOP = 2  # Ctrl-C after this many calls of the training program

CASES = {
    "adam": dict(learning_rate=1e-2),
    "lm": dict(optimizer="lm"),
    "truncated": dict(
        criterion="truncated",
        window=20,
        batch_size=16,
        encoder={"n_init": 8, "hidden_sizes": (8,)},
        learning_rate=1e-2,
    ),
    # the chunks end on the evaluations too; it stops at step 12 (the best: step 4; the
    # validation losses 1.97, 0.80, 1.29, 1.64), so that the Ctrl-C after call 2 (step 8) lands
    # between the best step and the stop
    "early_stopping": dict(learning_rate=3e-2, validation=VALIDATION, eval_every=4, patience=2),
}
PROGRAMS = {"adam": "optax", "lm": "lm", "truncated": "truncated", "early_stopping": "optax"}


def _model(**options):
    return sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(0), **options)


def _fit(case: str, **extra):
    kw = dict(steps=STEPS, _chunk=CHUNK, **CASES[case])
    kw.update(extra)
    if case == "truncated":  # test_truncated.py's model and records
        model = sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0))
        return sysid.fit(model, TRUNCATED_RECORDS, **kw)
    return sysid.fit(_model(), RECORD, **kw)


@pytest.fixture(scope="module")
def reference():
    """`case -> the uninterrupted fit without a checkpoint`, each fitted once."""
    fits: dict = {}

    def get(case: str):
        if case not in fits:
            fits[case] = _fit(case)
        return fits[case]

    return get


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


def _step_of(path: Path) -> int:
    data = path.read_bytes()
    n = int.from_bytes(data[8:16], "little")
    return json.loads(data[16 : 16 + n])["step"]


@pytest.mark.parametrize("case", list(CASES))
def test_ctrl_c_then_resume_is_bit_identical(case, reference, tmp_path, monkeypatch):
    ref = reference(case)
    assert ref[2].steps > STOP * CHUNK
    # a checkpointed fit (after every call) is the plain fit, bit for bit: the chunks are alike
    full = tmp_path / "full.ckpt"
    _assert_same_fit(_fit(case, checkpoint=full, checkpoint_every=0), ref)
    if case == "early_stopping":
        assert (ref[2].stop_reason, ref[2].best_step, ref[2].steps) == ("early_stopping", 4, 12)
    path = tmp_path / "fit.ckpt"
    _ctrl_c_after(monkeypatch, fit_module, PROGRAMS[case], STOP)
    _, _, h = _fit(case, checkpoint=path, checkpoint_every=0)
    assert (h.stop_reason, h.steps) == ("interrupted", STOP * CHUNK)
    assert _step_of(path) == STOP * CHUNK
    monkeypatch.undo()
    # resumed with another checkpoint_every (seconds: not part of the check)
    _assert_same_fit(_fit(case, checkpoint=path, resume=True), ref)
    if case == "adam":  # resuming a finished fit returns it again, with no step run
        _assert_same_fit(_fit(case, resume=full), ref)


def test_checkpoint_every_counts_seconds(tmp_path, monkeypatch, reference):
    """A checkpoint after the first call that ends `checkpoint_every` seconds or more after the
    last checkpoint (on a clock that jumps 1000 s a call), and one when the fit ends."""
    reference("adam")  # compiled
    saves, offset = [], [0.0]
    real_save, real_compiled = _checkpoint.save_checkpoint, fit_module.compiled
    monkeypatch.setattr(
        _checkpoint, "save_checkpoint", lambda *a: (saves.append(a[3]), real_save(*a))[1]
    )
    clock = types.SimpleNamespace(perf_counter=lambda: time.perf_counter() + offset[0])
    monkeypatch.setattr(_checkpoint, "time", clock)

    def jumping(name, fn, static, dyn):
        program, seconds = real_compiled(name, fn, static, dyn)
        if name != "optax":
            return program, seconds
        return (lambda d: (offset.__setitem__(0, offset[0] + 1000.0), program(d))[1]), seconds

    monkeypatch.setattr(fit_module, "compiled", jumping)
    for every, steps in ((0, [4, 8, 12, 16, 20]), (2500.0, [12, 20]), (1e6, [20])):
        saves.clear()
        offset[0] = 0.0  # (the fit's start is read on the real clock)
        _fit("adam", checkpoint=tmp_path / f"{every}.ckpt", checkpoint_every=every)
        assert saves == steps, every


def test_ensemble_ctrl_c_then_resume_is_bit_identical(tmp_path, monkeypatch):
    models = [sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(i)) for i in range(3)]
    kw = dict(learning_rate=1e-2, steps=STEPS, l2=1e-4, _chunk=CHUNK)
    path = tmp_path / "ens.ckpt"
    ref = sysid.fit_ensemble(models, RECORD, **kw)
    _ctrl_c_after(monkeypatch, _ensemble, "ensemble_optax", STOP)  # adam
    _, _, hs = sysid.fit_ensemble(models, RECORD, checkpoint=path, checkpoint_every=0, **kw)
    assert [(h.stop_reason, h.steps) for h in hs] == [("interrupted", STOP * CHUNK)] * 3
    assert _step_of(path) == STOP * CHUNK
    monkeypatch.undo()
    got = sysid.fit_ensemble(models, RECORD, resume=path, **kw)
    for g, r in zip(zip(*got), zip(*ref)):
        _assert_same_fit(g, r)


def _child(path: str) -> None:
    """Run in a subprocess: the "adam" case, checkpointed after every call; each call sleeps
    0.2 s afterwards (the numbers are the same) so that the parent's SIGKILL lands mid-run."""
    real = fit_module.compiled

    def slow(name, fn, static, dyn):
        program, seconds = real(name, fn, static, dyn)
        return (lambda d: (program(d), time.sleep(0.2))[0]), seconds

    fit_module.compiled = slow
    _fit("adam", checkpoint=path, checkpoint_every=0)


def test_sigkill_then_resume_is_bit_identical(tmp_path, reference):
    path = tmp_path / "fit.ckpt"
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_checkpoint_sysid as t; t._child({str(path)!r})"
    )
    ref = reference("adam")  # (compiled: the child loads its programs from the shared cache)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(np.random.default_rng().uniform(0, 0.2)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:] if proc.stderr else ""
    assert CHUNK <= _step_of(path) < STEPS
    _assert_same_fit(_fit("adam", checkpoint=path, resume=True), ref)


def test_bad_checkpoint_arguments(tmp_path, reference):
    reference("adam")  # compiled
    model, rec = _model(), RECORD
    with pytest.raises(ValueError, match="checkpoint_every must be a number >= 0; got -1"):
        sysid.fit(model, rec, steps=2, checkpoint=tmp_path / "c", checkpoint_every=-1)
    with pytest.raises(TypeError, match="checkpoint_every must be a number >= 0; got '60'"):
        sysid.fit_ensemble([model], rec, steps=2, checkpoint_every="60")
    with pytest.raises(ValueError, match="_chunk must be an integer <= 100; got 101"):
        sysid.fit(model, rec, steps=2, _chunk=101)
    with pytest.raises(FileNotFoundError, match=r"resume=.*missing\.ckpt.*does not exist"):
        sysid.fit(model, rec, steps=2, resume=tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match=r"resume=True.*checkpoint"):
        sysid.fit(model, rec, steps=2, resume=True)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        sysid.fit(model, rec, steps=2, checkpoint=3)
    # resume=True without a file yet: a fresh fit, which writes it
    _, _, h = sysid.fit(model, rec, steps=2, checkpoint=tmp_path / "c", resume=True)
    assert h.steps == 2 and (tmp_path / "c").exists()


def test_checkpoint_of_another_fit_is_refused(tmp_path, reference):
    reference("adam")  # compiled
    path = tmp_path / "c.ckpt"
    sysid.fit(_model(), RECORD, checkpoint=path, steps=2)
    # (another structure with the same arrays, and other values of the same shapes: no new
    # shapes, nothing more to compile)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"resume from .*c\.ckpt.*different fit"):
        sysid.fit(_model(residual=False), RECORD, resume=path, steps=2)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*data_sha256"):
        sysid.fit(_model(), tank_like(120, 1), resume=path, steps=2)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*steps: 2 in the checkpoint"):
        sysid.fit(_model(), RECORD, resume=path, steps=3)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*optimizer"):
        sysid.fit(_model(), RECORD, resume=path, optimizer="lm", steps=2)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*chunk"):
        sysid.fit(_model(), RECORD, resume=path, steps=2, _chunk=1)
    with pytest.raises(eqx_ffn.CheckpointError, match=r"c\.ckpt.*members"):
        sysid.fit_ensemble([_model()] * 3, RECORD, resume=path, steps=2)
    # checkpoint_every is no part of the check
    _, _, h = sysid.fit(_model(), RECORD, resume=path, steps=2, checkpoint_every=0)
    assert h.steps == 2
