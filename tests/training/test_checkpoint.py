"""Checkpoint and resume: a fit killed (SIGKILL) at a random program-call boundary and resumed
returns the same model, bit for bit, as the uninterrupted fit; damaged or foreign checkpoints are
refused with an error naming the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
import optax
import pytest

import eqx_ffn
from eqx_ffn.training._checkpoint import CheckpointError
from eqx_ffn.training._ensemble import fit_ensemble
from eqx_ffn.training._fit import fit_with
from eqx_ffn.training._options import FitOptions

ADAM = optax.adam(1e-2)

CASES = {
    "full_batch": dict(steps=700),
    "mini_batch": dict(steps=500, batch_size=16, sampling="replacement", l2=1e-4),
    "early_stopping": dict(steps=3000, batch_size=32, eval_every=8, patience=4, val=True),
    "ensemble": dict(steps=500, batch_size=32, eval_every=10, patience=6, val=True, k=3),
}


def _data():
    x = np.linspace(-2, 2, 160, dtype=np.float32)[:, None]
    y = np.sin(2 * x) + 0.05 * np.cos(37 * x)
    return x, y


def _run(case: str, **extra):
    """The case's fit with `extra` options (private ones included); `(model, histories)`."""
    spec = dict(CASES[case])
    x, y = _data()
    kw: dict = dict(key=jr.key(5), progress=False, optimizer=ADAM)
    if spec.pop("val", False):
        kw["validation"] = (x[::7] + 0.01, y[::7])
    k = spec.pop("k", None)
    kw.update(spec)
    kw.update(extra)
    if k is not None:
        del kw["key"]

        def make(key):
            return eqx_ffn.FFN(1, 1, (8,), key=key)

        return fit_ensemble(make, x, y, keys=jr.split(jr.key(2), k), **kw)
    model = eqx_ffn.FFN(1, 1, (8, 8), key=jr.key(1))
    trained, history = fit_with(model, x, y, FitOptions(**kw))
    return trained, [history]


def _same(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb, strict=True))


def _child(case: str, path: str, kill_at: int) -> None:
    """Run in a subprocess: the case's fit, checkpointing after every one-chunk call, killed by
    SIGKILL after its `kill_at`-th call (before that call's checkpoint); 0: never (the parent
    kills it)."""
    calls = []

    def killer(info):
        calls.append(info.step)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    _run(case, checkpoint=path, checkpoint_every=0, callbacks=[killer], _call_seconds=1e-9)


def _children(jobs: list[tuple[str, str, int]]) -> None:
    """Run in ONE subprocess: every case's fit at once, each in its own thread, checkpointing
    after every one-chunk call. A fit that reaches its `kill_at`-th call waits there (before that
    call's checkpoint, as `_child`); once all wait, the process kills itself with SIGKILL: each
    case is interrupted at its own step, for one process start instead of one per case."""
    lock, waiting, forever = threading.Lock(), [0], threading.Event()

    def run(case: str, path: str, kill_at: int) -> None:
        calls = []

        def killer(info):
            calls.append(info.step)
            if len(calls) == kill_at:
                with lock:
                    waiting[0] += 1
                    if waiting[0] == len(jobs):
                        os.kill(os.getpid(), signal.SIGKILL)
                forever.wait()

        _run(case, checkpoint=path, checkpoint_every=0, callbacks=[killer], _call_seconds=1e-9)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raise AssertionError("not killed: a fit ended before its kill_at-th call")


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Each case's uninterrupted reference fit, then all cases killed in one subprocess:
    `{case: (reference model, reference histories, calls, checkpoint path)}`."""
    folder = tmp_path_factory.mktemp("killed")
    refs, jobs = {}, []
    for case in CASES:
        calls = []
        ref, ref_h = _run(
            case, callbacks=[lambda info, c=calls: c.append(info.step)], _call_seconds=1e-9
        )
        assert len(calls) >= 3, calls  # several calls to interrupt between
        kill_at = int(np.random.default_rng(zlib.crc32(case.encode())).integers(2, len(calls)))
        path = folder / f"{case}.ckpt"
        refs[case] = (ref, ref_h, calls, path)
        jobs.append((case, str(path), kill_at))
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path.insert(0, {str(here)!r}); import test_checkpoint as t; "
        f"t._children({jobs!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return refs


@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_then_resume_is_bit_identical(case, killed):
    ref, ref_h, calls, path = killed[case]
    assert path.exists()  # the checkpoint of call kill_at - 1
    header_step = _step_of(path)
    assert 0 < header_step < calls[-1] + 1
    model, hist = _run(case, checkpoint=path, resume=True)
    assert _same(model, ref)
    for h, r in zip(hist, ref_h, strict=True):
        np.testing.assert_array_equal(h.loss, r.loss)
        np.testing.assert_array_equal(h.val_loss, r.val_loss)
        np.testing.assert_array_equal(h.val_steps, r.val_steps)
        assert (h.steps, h.stop_reason, h.best_step) == (r.steps, r.stop_reason, r.best_step)
        assert h.final_loss == r.final_loss or (np.isnan(h.final_loss) and np.isnan(r.final_loss))
    if case == "early_stopping":
        assert ref_h[0].stop_reason == "early_stopping"
    # resuming a finished fit returns it again
    again, _ = _run(case, resume=path)
    assert _same(again, ref)


def test_sigkill_at_a_random_time_then_resume_is_bit_identical(tmp_path):
    # killed by the parent at any moment once checkpoints are being written: inside a program
    # call, between calls, or in the middle of writing the next checkpoint (atomic: the
    # previous one stays whole)
    ref, (ref_h,) = _run("mini_batch")
    path = tmp_path / "fit.ckpt"
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path.insert(0, {str(here)!r}); import test_checkpoint as t; "
        f"t._child('mini_batch', {str(path)!r}, 0)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(np.random.default_rng().uniform(0, 0.05)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    model, (h,) = _run("mini_batch", checkpoint=path, resume=True)
    assert _same(model, ref)
    np.testing.assert_array_equal(h.loss, ref_h.loss)


def _step_of(path: Path) -> int:
    data = path.read_bytes()
    n = int.from_bytes(data[8:16], "little")
    return json.loads(data[16 : 16 + n])["step"]


def test_ctrl_c_keeps_a_checkpoint_to_resume(tmp_path):
    ref, (ref_h,) = _run("mini_batch")
    path = tmp_path / "c.ckpt"

    def ctrl_c(info):
        if info.step >= 100:
            os.kill(os.getpid(), signal.SIGINT)

    _, (h,) = _run("mini_batch", checkpoint=path, callbacks=[ctrl_c], _call_seconds=1e-9)
    assert h.stop_reason == "interrupted" and h.steps < 500
    model, (h2,) = _run("mini_batch", resume=path)
    assert _same(model, ref) and h2.stop_reason == "completed"
    np.testing.assert_array_equal(h2.loss, ref_h.loss)


def test_foreign_or_damaged_checkpoints_are_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    _run("full_batch", checkpoint=path)
    with pytest.raises(CheckpointError, match=r"c\.ckpt.*steps: 700 in the checkpoint, 701 here"):
        _run("full_batch", resume=path, steps=701)
    with pytest.raises(CheckpointError, match="different fit"):
        _run("mini_batch", resume=path)
    x, y = _data()
    other = eqx_ffn.FFN(1, 1, (8, 9), key=jr.key(1))
    with pytest.raises(CheckpointError, match=r"c\.ckpt.*model"):
        eqx_ffn.fit(other, x, y, steps=700, optimizer=ADAM, key=jr.key(5), resume=path)
    with pytest.raises(CheckpointError, match=r"c\.ckpt.*n: 160 in the checkpoint, 150 here"):
        model = eqx_ffn.FFN(1, 1, (8, 8), key=jr.key(1))
        eqx_ffn.fit(model, x[:150], y[:150], steps=700, optimizer=ADAM, key=jr.key(5), resume=path)
    data = bytearray(path.read_bytes())
    data[-40] ^= 1
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"bad\.ckpt.*checksum"):
        _run("full_batch", resume=bad)
    bad.write_bytes(b"PK\x03\x04 not a checkpoint at all, a zip maybe" * 3)
    with pytest.raises(CheckpointError, match=r"bad\.ckpt.*not an eqx_ffn checkpoint"):
        _run("full_batch", resume=bad)
    bad.write_bytes(bytes(data[:100]))
    with pytest.raises(CheckpointError, match=r"bad\.ckpt"):
        _run("full_batch", resume=bad)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        _run("full_batch", resume=tmp_path / "missing.ckpt")


def test_checkpoint_arguments_are_checked(tmp_path):
    x, y = _data()
    model = eqx_ffn.FFN(1, 1, (4,), key=jr.key(0))
    with pytest.raises(ValueError, match="resume=True.*checkpoint"):
        eqx_ffn.fit(model, x, y, resume=True)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        eqx_ffn.fit(model, x, y, checkpoint=3)
    with pytest.raises(ValueError, match="checkpoint_every"):
        eqx_ffn.fit(model, x, y, checkpoint=tmp_path / "c", checkpoint_every=-1)
    # resume=True without a file yet: a fresh fit, which writes it
    _, h = eqx_ffn.fit(model, x, y, steps=50, checkpoint=tmp_path / "c", resume=True)
    assert h.steps == 50 and (tmp_path / "c").exists()
