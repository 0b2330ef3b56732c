from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn._cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG, path


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--no-cache", "--no-progress"]) == 0
    return out


def test_demo_reproduces_the_lecture(demo_out, capsys):
    for name in ("loss.png", "fit.png", "model.eqx"):
        assert (demo_out / name).exists(), name
    _png(demo_out / "loss.png")
    _png(demo_out / "fit.png")
    model = eqx_ffn.load(demo_out / "model.eqx")
    data = eqx_ffn.datasets.sine_1d()
    mse = float(jnp.mean((jax.vmap(model)(data.x) - data.y) ** 2))
    assert mse < 1e-2  # the lecture's Adam settings end near 5.8e-3


def test_demo_prints_a_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "o"), "--steps", "50", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "50 steps, final training MSE" in out and "steps/s" in out and "compile" in out
    assert "FFN 1 -> [16] -> 1" in out


def test_demo_2d_writes_its_figures(tmp_path, capsys):
    out = tmp_path / "d2"
    assert main(["demo", "--example", "2d", "--steps", "300", "--out", str(out), "--no-cache"]) == 0
    for name in ("loss.png", "residuals.png", "surface.png"):
        _png(out / name)
    assert "test MSE" in capsys.readouterr().out


def test_demo_minibatch_compares_with_full_batch(tmp_path, capsys):
    out = tmp_path / "mb"
    assert (
        main(["demo", "--example", "minibatch", "--steps", "100", "--out", str(out), "--no-cache"])
        == 0
    )
    text = capsys.readouterr().out
    assert "mini-batch (32)" in text and "full batch" in text
    _png(out / "loss.png")


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(120, 2))
    y = np.sin(2 * u[:, :1]) + 0.5 * u[:, 1:] ** 2
    path = tmp_path / "plant.csv"
    lines = ["u1,u2,noise,y"] + [f"{a},{b},{rng.normal()},{c}" for (a, b), (c,) in zip(u, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_save_predict_round_trip_in_a_new_process(table, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "fit",
            str(table),
            "--x-cols",
            "u1,u2",
            "--y-cols",
            "y",
            "--hidden",
            "16",
            "--steps",
            "400",
            "--standardize",
            "--out",
            str(out),
            "--no-cache",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 96 and metrics["n_test"] == 24
    assert metrics["x_cols"] == ["u1", "u2"] and metrics["y_cols"] == ["y"]
    assert metrics["train_r2"] > 0.9 and metrics["test_mse"] < 0.1
    for name in ("loss.png", "parity.png", "residuals.png"):
        _png(out / name)
    preds = tmp_path / "preds.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eqx_ffn",
            "predict",
            str(out / "model.eqx"),
            str(table),
            "--out",
            str(preds),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = eqx_ffn.datasets.load_table(preds, x_cols=[], y_cols="y_pred")
    model = eqx_ffn.load(out / "model.eqx")
    ds = eqx_ffn.datasets.load_table(table, ["u1", "u2"], "y")
    want = eqx_ffn.predict(model, ds.x)
    np.testing.assert_array_equal(np.asarray(got.y), np.asarray(want))  # bit for bit


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eqx_ffn", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, d: ["fit", str(d / "missing.csv"), "--out", str(d / "o")], "no such file"),
        (lambda t, d: ["fit", str(t), "--x-cols", "u1,zz", "--out", str(d / "o")], "zz"),
        (
            lambda t, d: ["fit", str(_corrupt(t, "abc")), "--y-cols", "y", "--out", str(d / "o")],
            "abc",
        ),
        (
            lambda t, d: ["fit", str(_corrupt(t, "nan")), "--y-cols", "y", "--out", str(d / "o")],
            "NaN",
        ),
        (
            lambda t, d: [
                "fit",
                str(t),
                "--y-cols",
                "y",
                "--batch-size",
                "5000",
                "--out",
                str(d / "o"),
            ],
            "batch-size 5000",
        ),
        (lambda t, d: ["predict", str(_truncated(d)), str(t)], "model.eqx"),
    ],
    ids=["missing-file", "unknown-column", "non-numeric", "nan", "batch-too-big", "truncated"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(table, tmp_path, make_args, message):
    args = make_args(table, tmp_path)
    proc = _run_cli(*args, *(["--no-cache"] if args[0] == "fit" else []))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0]
    assert not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def _corrupt(table: Path, cell: str) -> Path:
    lines = table.read_text().splitlines()
    parts = lines[7].split(",")
    parts[0] = cell
    lines[7] = ",".join(parts)
    bad = table.with_name(f"bad_{cell}.csv")
    bad.write_text("\n".join(lines) + "\n")
    return bad


def _truncated(folder: Path) -> Path:
    import jax.random as jr

    path = folder / "model.eqx"
    eqx_ffn.save(path, eqx_ffn.FFN(2, 1, key=jr.key(0)))
    path.write_bytes(path.read_bytes()[:-40])
    return path


@pytest.mark.parametrize("command", [[], ["demo"], ["fit"], ["predict"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: eqx-ffn" in capsys.readouterr().out
