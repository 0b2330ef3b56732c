"""`eqx-ffn fit` writes history.csv (per-step loss with and without the penalty, validation
loss), metrics.json names its columns, and `--tensorboard DIR` writes the same losses to a
TensorBoard event file (issue 24, "Logs")."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from conftest import import_tensorboardx_without_torch

from eqx_ffn.cli._main import main

NO_CACHE = ["--no-cache", "--no-progress"]


def _has_tensorboardx() -> bool:
    import_tensorboardx_without_torch()
    return "tensorboardX" in sys.modules and sys.modules["tensorboardX"] is not None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A regression with --l2 (and --tensorboard where tensorboardX is installed). The table's
    shape and the options are tests/cli/test_what_users_see.py's (but the steps, --l2 and
    --eval-every, run-time inputs): the same compiled program."""
    d = tmp_path_factory.mktemp("history")
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(300, 2))
    y = np.sin(2 * u[:, 0]) + 0.5 * u[:, 1] ** 2
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f}\n" for (a, b), c in zip(u, y, strict=True))
    (d / "t.csv").write_text("u1,u2,y\n" + rows)
    argv = ["fit", str(d / "t.csv"), "--out", str(d / "o"), "--steps", "40"]
    argv += ["--l2", "0.01", "--eval-every", "10", *NO_CACHE]
    if _has_tensorboardx():
        argv += ["--tensorboard", str(d / "tb")]
    assert main(argv) == 0
    with open(d / "o" / "history.csv", newline="") as f:
        table = list(csv.DictReader(f))
    return d, table


def test_history_csv_has_the_loss_with_and_without_the_penalty(run):
    d, table = run
    assert list(table[0]) == ["step", "loss", "val_loss", "data_loss"]
    assert [int(r["step"]) for r in table] == list(range(1, 41))
    loss = np.array([float(r["loss"]) for r in table])
    data = np.array([float(r["data_loss"]) for r in table])
    # --l2 0.01: every step's loss is its data loss plus a positive penalty
    assert np.all(loss - data > 0)
    assert [int(r["step"]) for r in table if r["val_loss"]] == [10, 20, 30, 40]
    metrics = json.loads((d / "o" / "metrics.json").read_text())
    columns = metrics["loss_definitions"]["history.csv"]
    assert "loss = MSE + L2 penalty" in columns and "data_loss = the same MSE without" in columns
    # the initial model's loss (with the penalty): step 1's
    assert metrics["initial_training_loss"] == float(table[0]["loss"])
    assert metrics["settings"]["tensorboard"] == (str(d / "tb") if _has_tensorboardx() else None)


def test_tensorboard_holds_the_same_losses(run):
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    d, table = run
    (path,) = (d / "tb").glob("events.out.tfevents.*")
    data, i, scalars = path.read_bytes(), 0, {}
    while i < len(data):  # TFRecords: length (8 bytes), its CRC (4), the Event, its CRC (4)
        n = int.from_bytes(data[i : i + 8], "little")
        for value in (event := event_pb2.Event.FromString(data[i + 12 : i + 12 + n])).summary.value:
            scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        i += 16 + n
    for column in ("loss", "data_loss"):
        assert sorted(scalars[column]) == list(range(1, 41))
        values = np.float32([scalars[column][s] for s in range(1, 41)])
        np.testing.assert_array_equal(values, np.float32([r[column] for r in table]))
    val = {int(r["step"]): np.float32(r["val_loss"]) for r in table if r["val_loss"]}
    assert scalars["val_loss"] == pytest.approx(val, rel=0, abs=0)


def test_tensorboard_without_tensorboardx_is_a_usage_error(run, monkeypatch, capsys):
    d, _ = run
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` fails
    argv = ["fit", str(d / "t.csv"), "--out", str(d / "o2"), "--tensorboard", str(d / "tb2")]
    assert main([*argv, *NO_CACHE]) == 2
    err = capsys.readouterr().err
    assert "--tensorboard: TensorBoardLogger needs tensorboardX" in err
    assert 'pip install "eqx_ffn[tensorboard]"' in err
    assert not (d / "o2").exists() and not (d / "tb2").exists()
