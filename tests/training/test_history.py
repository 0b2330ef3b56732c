"""`History.to_csv` and `History.to_dataframe`: the per-step losses as a table."""

from __future__ import annotations

import csv
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqx_ffn


@pytest.fixture(scope="module")
def history():
    x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    y = np.sin(3 * x)
    model = eqx_ffn.FFN(1, 1, (6,), key=jr.key(0))
    _, h = eqx_ffn.fit(
        model, x, y, steps=95, optimizer=optax.adam(1e-2), validation=(x[::5], y[::5]),
        eval_every=10, l2=1e-3, progress=False,
    )  # fmt: skip
    return h


def test_to_csv_round_trips_every_step(history, tmp_path):
    path = history.to_csv(tmp_path / "history.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "loss", "val_loss", "data_loss"]
    assert [int(r["step"]) for r in rows] == list(range(1, history.steps + 1))
    # the exact float32 values come back
    loss = np.array([float(r["loss"]) for r in rows], np.float32)
    np.testing.assert_array_equal(loss, history.loss)
    data = np.array([float(r["data_loss"]) for r in rows], np.float32)
    np.testing.assert_array_equal(data, history.data_loss)
    val_rows = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    assert [s for s, _ in val_rows] == history.val_steps.tolist() == [10, 20, 30, 40, 50, 60,
                                                                       70, 80, 90, 95]  # fmt: skip
    np.testing.assert_array_equal(np.float32([v for _, v in val_rows]), history.val_loss)
    assert not list(tmp_path.glob(".history.csv.*"))  # written atomically: no temporary left


def test_data_loss_is_the_loss_without_the_penalty(history):
    # the fixture's model before its first step, and its penalty, computed here
    model = eqx_ffn.FFN(1, 1, (6,), key=jr.key(0))
    x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    mse = float(jnp.mean((jax.vmap(model)(x) - np.sin(3 * x)) ** 2))
    penalty = float(1e-3 * sum(jnp.sum(layer.weight**2) for layer in model.layers))
    # the program records loss - penalty in float32, summed in its own order: a few float32
    # roundings of loss[0] apart (8 ulp leaves room for XLA's reduction order across CPUs)
    tol = 8 * np.finfo(np.float32).eps * float(history.loss[0])
    assert len(history.data_loss) == len(history.loss) == history.steps
    assert abs(float(history.data_loss[0]) - mse) <= tol
    assert abs(float(history.loss[0] - history.data_loss[0]) - penalty) <= tol
    assert penalty > 10 * tol
    assert np.all(history.loss - history.data_loss > 0)


def test_to_dataframe(history):
    pd = pytest.importorskip("pandas")
    frame = history.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "step"
    assert list(frame.columns) == ["loss", "val_loss", "data_loss"]
    assert len(frame) == history.steps
    np.testing.assert_array_equal(frame["loss"].to_numpy(np.float32), history.loss)
    np.testing.assert_array_equal(frame["data_loss"].to_numpy(np.float32), history.data_loss)
    measured = frame["val_loss"].dropna()
    assert measured.index.tolist() == history.val_steps.tolist()


def test_to_dataframe_without_pandas(history, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pandas.*pip install pandas"):
        history.to_dataframe()


def test_csv_without_validation(tmp_path):
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    _, h = eqx_ffn.fit(eqx_ffn.FFN(1, 1, (4,), key=jr.key(1)), x, x, steps=20, progress=False)
    text = h.to_csv(tmp_path / "h.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "step,loss,val_loss,data_loss" and len(lines) == 21
    rows = [line.split(",") for line in lines[1:]]
    assert all(val == "" for _, _, val, _ in rows)  # no validation loss
    # no penalty: the data loss is the loss (the same array)
    assert h.data_loss is h.loss and all(data == loss for _, loss, _, data in rows)
