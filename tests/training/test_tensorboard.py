"""`TensorBoardLogger`: the event file it writes holds History's losses (read back here with a
minimal TFRecord reader and tensorboardX's protos); tensorboardX stays an optional extra."""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from conftest import import_tensorboardx_without_torch

import eqx_ffn
from eqx_ffn.training._fit import fit_with
from eqx_ffn.training._options import FitOptions


@pytest.fixture(scope="module", autouse=True)
def _tensorboardx():
    import_tensorboardx_without_torch()


def _events(folder: Path) -> list:
    """Every Event of the folder's event files, in file order (each record's CRCs checked)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    from tensorboardX.record_writer import masked_crc32c

    out = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            header = data[i : i + 8]
            (n,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc32c(header)
            body = data[i + 12 : i + 12 + n]
            assert struct.unpack("<I", data[i + 12 + n : i + 16 + n])[0] == masked_crc32c(body)
            out.append(event_pb2.Event.FromString(body))
            i += 16 + n
    return out


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} (a later event of a step replaces an earlier one)."""
    out: dict[str, dict[int, float]] = {}
    for event in _events(folder):
        for value in event.summary.value:
            out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def _curve(scalars: dict[int, float]) -> tuple[list[int], np.ndarray]:
    steps = sorted(scalars)
    return steps, np.array([scalars[s] for s in steps], np.float32)


X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
Y = np.sin(3 * X)


def test_every_step_of_a_fit_with_penalty_and_validation(tmp_path):
    pytest.importorskip("tensorboardX")
    # the options of tests/training/test_history.py's fit (the same compiled program); one
    # 64-step chunk a call: the logger writes what each call added
    logger = eqx_ffn.TensorBoardLogger(tmp_path / "run", every=1)
    calls = []
    options = FitOptions(
        steps=95, optimizer=optax.adam(1e-2), validation=(X[::5], Y[::5]), eval_every=10,
        l2=1e-3, progress=False, callbacks=[logger, lambda info: calls.append(info.step)],
        _call_seconds=1e-9,
    )  # fmt: skip
    _, h = fit_with(eqx_ffn.FFN(1, 1, (6,), key=jr.key(0)), X, Y, options)
    logger.close()
    copied = pickle.loads(pickle.dumps(logger))  # a copy (a fresh logger, its own file)
    assert (copied.logdir, copied.every) == (tmp_path / "run", 1)
    assert len(calls) >= 2
    scalars = _scalars(tmp_path / "run")
    assert set(scalars) == {"loss", "data_loss", "val_loss"}
    steps, loss = _curve(scalars["loss"])
    assert steps == list(range(1, h.steps + 1))
    np.testing.assert_array_equal(loss, h.loss)  # float32 values, exactly
    np.testing.assert_array_equal(_curve(scalars["data_loss"])[1], h.data_loss)
    val_steps, val = _curve(scalars["val_loss"])
    assert val_steps == h.val_steps.tolist()
    np.testing.assert_array_equal(val, h.val_loss)
    # the first event after the file's version: TensorBoard drops older files' steps
    first = _events(tmp_path / "run")[1]
    assert first.session_log.status == first.session_log.START and first.step == 1


def test_an_ensemble_every_nth_step(tmp_path, lecture1):
    pytest.importorskip("tensorboardX")
    x, y, _ = lecture1
    keys = jr.split(jr.key(0), 8)[:3]
    # tests/training/test_ensemble.py's per-member-l2 fit (the same compiled program)
    with eqx_ffn.TensorBoardLogger(tmp_path, every=50) as logger:
        _, hs = eqx_ffn.fit_ensemble(
            lambda k: eqx_ffn.FFN(1, 1, (16,), init="glorot_normal", key=k), x, y, keys=keys,
            steps=600, validation=(x[:50], -0.2 * y[:50]), eval_every=10, patience=3,
            l2=jnp.array([0.0, 0.01, 1.0]), progress=False, callbacks=[logger],
        )  # fmt: skip
    scalars = _scalars(tmp_path)
    assert {f"member_{j}/{t}" for j in range(3) for t in ("loss", "data_loss", "val_loss")} == set(
        scalars
    )
    for j, h in enumerate(hs):
        steps, loss = _curve(scalars[f"member_{j}/loss"])
        # every 50th step and the member's last
        assert steps == sorted({*range(50, h.steps + 1, 50), h.steps})
        np.testing.assert_array_equal(loss, h.loss[np.array(steps) - 1])
        data = _curve(scalars[f"member_{j}/data_loss"])[1]
        np.testing.assert_array_equal(data, h.data_loss[np.array(steps) - 1])
        val_steps, val = _curve(scalars[f"member_{j}/val_loss"])
        assert val_steps == h.val_steps.tolist()
        np.testing.assert_array_equal(val, h.val_loss)


def test_arguments_are_checked(tmp_path):
    pytest.importorskip("tensorboardX")
    with pytest.raises(ValueError, match="every must be an integer >= 1; got 0"):
        eqx_ffn.TensorBoardLogger(tmp_path, every=0)
    with pytest.raises(TypeError, match="logdir must be a file path"):
        eqx_ffn.TensorBoardLogger(3)  # type: ignore[arg-type]


def test_without_tensorboardx(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` fails
    with pytest.raises(ImportError, match=r'pip install "eqx_ffn\[tensorboard\]"'):
        eqx_ffn.TensorBoardLogger(tmp_path)


def test_importing_eqx_ffn_does_not_import_tensorboardx():
    code = (
        "import sys, eqx_ffn\n"
        "eqx_ffn.TensorBoardLogger\n"
        "assert 'tensorboardX' not in sys.modules, 'imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
