"""`eqx-ffn sysid fit/simulate` and `eqx-ffn demo --example tanks` (small and fast)."""

from __future__ import annotations

import json
import os
import signal

import jax
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn.sysid as sysid
from eqx_ffn.cli import main

FIT = ["--u-cols", "pump", "--y-cols", "level", "--nx", "2", "--hidden", "8", "--steps", "5"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Train and test CSVs written from the shipped Cascaded Tanks file (a time column)."""
    folder = tmp_path_factory.mktemp("tanks")
    train, test = sysid.datasets.cascaded_tanks()
    for name, r in (("train", train), ("test", test)):
        t = np.arange(r.T) * 4.0
        table = np.column_stack([t, r.u[:, 0], r.y[:, 0]])
        np.savetxt(folder / f"{name}.csv", table, delimiter=",", header="time,pump,level",
                   comments="")  # fmt: skip
    return folder, train, test


@pytest.fixture(scope="module")
def fitted(files):
    folder, _, _ = files
    out = folder / "out"
    args = ["sysid", "fit", str(folder / "train.csv"), *FIT, "--test", str(folder / "test.csv")]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_fit_writes_metrics_equal_to_the_python_api(files, fitted):
    _, train, test = files
    metrics = json.loads((fitted / "metrics.json").read_text())
    assert {p.name for p in fitted.iterdir()} >= {
        "model.eqx", "metrics.json", "simulation.png", "loss.png"
    }  # fmt: skip
    model = sysid.NeuralStateSpace(1, 2, 1, (8,), key=jr.key(0))
    model, x0, _ = sysid.fit(model, train, optimizer="lm", steps=5)
    y_train = sysid.simulate(model, train.u, x0)
    x_test = sysid.estimate_initial_state(model, test, 50)
    y_test = sysid.simulate(model, test.u, x_test)
    for part, y, skip in (("train", y_train, 0), ("test", y_test, 50)):
        rec = train if part == "train" else test
        np.testing.assert_allclose(metrics[part]["rmse"], sysid.rmse(rec.y, y, skip), rtol=1e-6)
        np.testing.assert_allclose(metrics[part]["nrmse"], sysid.nrmse(rec.y, y, skip), rtol=1e-6)
        np.testing.assert_allclose(
            metrics[part]["fit_percent"], sysid.fit_percent(rec.y, y, skip), rtol=1e-6
        )
    assert "first 50" in metrics["test"]["initialisation"]
    assert metrics["test"]["samples_scored"] == 974


def test_simulate_writes_the_outputs(files, fitted, capsys):
    folder, _, test = files
    capsys.readouterr()
    assert main(["sysid", "simulate", str(fitted / "model.eqx"), str(folder / "test.csv"),
                 "--n-init", "50"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "time,level" and len(lines) == 1025
    model, _ = sysid.load(fitted / "model.eqx")
    y = sysid.simulate(model, test.u, sysid.estimate_initial_state(model, test, 50))
    got = np.array([float(line.split(",")[1]) for line in lines[1:]])
    np.testing.assert_allclose(got, np.asarray(y)[:, 0], rtol=1e-6)


def _one_line_error(capsys, argv, words):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_bad_input_exits_2_with_one_line(files, fitted, capsys, tmp_path):
    folder, _, _ = files
    train = str(folder / "train.csv")
    trunc = ["sysid", "fit", train, *FIT, "--criterion", "truncated", "--out", str(tmp_path)]
    _one_line_error(capsys, [*trunc, "--window", "2000"], "--window 2000")
    _one_line_error(capsys, [*trunc, "--window", "40", "--n-init", "40"], "--n-init 40")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,pump,level\n0,1,2\n2,1,2\n1,1,2\n")
    _one_line_error(capsys, ["sysid", "fit", str(bad), *FIT], "time column 'time' must increase")
    nopump = tmp_path / "nopump.csv"
    nopump.write_text("time,level\n0,2\n1,2\n")
    _one_line_error(
        capsys, ["sysid", "simulate", str(fitted / "model.eqx"), str(nopump)], "['pump']"
    )


def test_checkpoint_ctrl_c_then_resume(files, fitted, tmp_path, capsys, monkeypatch):
    import functools

    from eqx_ffn.cli._common import EXIT_INTERRUPTED
    from eqx_ffn.sysid import _fit as fit_module

    folder, _, _ = files
    base = ["sysid", "fit", str(folder / "train.csv"), *FIT, "--checkpoint-every", "0"]
    # program calls of 2 steps (a test setting), for every run here: LM's result depends on them
    monkeypatch.setattr(fit_module, "fit", functools.partial(fit_module.fit, _chunk=2))
    ref = tmp_path / "ref"
    assert main([*base, "--out", str(ref)]) == 0
    real = fit_module.compiled

    def ctrl_c(name, fn, static, dyn):  # Ctrl-C during the first call (2 steps)
        program, seconds = real(name, fn, static, dyn)
        if name != "lm":
            return program, seconds
        return (lambda d: (program(d), os.kill(os.getpid(), signal.SIGINT))[0]), seconds

    monkeypatch.setattr(fit_module, "compiled", ctrl_c)
    ck = tmp_path / "ck"
    capsys.readouterr()
    assert main([*base, "--checkpoint", str(ck), "--out", str(tmp_path / "a")]) == EXIT_INTERRUPTED
    assert f"interrupted after 2 steps; the checkpoint {ck / 'fit.ckpt'} keeps" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(fit_module, "compiled", real)
    assert main([*base, "--resume", str(ck), "--out", str(tmp_path / "b")]) == 0
    (m_ref, x_ref), (m, x) = sysid.load(ref / "model.eqx"), sysid.load(tmp_path / "b" / "model.eqx")
    for a, b in zip(jax.tree.leaves((m_ref, x_ref)), jax.tree.leaves((m, x))):
        np.testing.assert_array_equal(a, b)
    missing = [*base, "--resume", str(tmp_path / "none"), "--out", str(tmp_path / "c")]
    _one_line_error(capsys, missing, "does not exist")
    _one_line_error(capsys, [*base, "--checkpoint-every", "-1"], "expected a number >= 0")


def test_demo_tanks(tmp_path, capsys):
    assert main(["demo", "--example", "tanks", "--steps", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test RMSE from the learned x0" in out
    assert (tmp_path / "model.eqx").is_file() and (tmp_path / "simulation.png").is_file()


def test_help_and_names():
    import subprocess
    import sys

    from eqx_ffn.cli import _sysid

    assert set(_sysid.SYSID_OPTIMIZERS) == set(sysid.OPTIMIZERS)
    assert set(_sysid.CRITERIA) <= set(sysid.CRITERIA)
    code = (
        "import sys, io, contextlib\n"
        "from eqx_ffn.cli._main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for c in (['sysid'], ['sysid', 'fit'], ['sysid', 'simulate']):\n"
        "        assert main([*c, '--help']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'numpy'))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
