"""`eqx-ffn fit --checkpoint DIR`: Ctrl-C keeps the checkpoint, `--resume DIR` continues to the
uninterrupted fit's model; `history.csv` is written beside metrics.json."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

import eqx_ffn
from eqx_ffn.cli._main import main

ROOT = Path(__file__).resolve().parents[2]


def _table(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(120, 2))
    y = np.sin(2 * u[:, :1]) + 0.5 * u[:, 1:] ** 2
    path = folder / "plant.csv"
    lines = ["u1,u2,Weight"] + [f"{a},{b},{c}" for (a, b), (c,) in zip(u, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ctrl_c_keeps_the_checkpoint_and_resume_continues(tmp_path):
    table = _table(tmp_path)
    base = ["fit", str(table), "--no-cache", "--no-progress", "--steps", "60000"]
    base += ["--no-early-stopping", "--eval-every", "100", "--batch-size", "16", "--hidden", "8"]
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "eqx_ffn", *base, "--out", str(out)]
    cmd += ["--checkpoint", str(ckpt), "--checkpoint-every", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # the marker says training has begun
            if "training:" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"--resume {ckpt}" in err and "keeps the fit" in err, err
    assert (ckpt / "fit.ckpt").exists() and not out.exists()

    assert main([*base, "--out", str(out), "--resume", str(ckpt)]) == 0
    ref = tmp_path / "ref"
    assert main([*base, "--out", str(ref)]) == 0
    got, want = eqx_ffn.load(out / "model.eqx"), eqx_ffn.load(ref / "model.eqx")
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (out / "history.csv").read_text() == (ref / "history.csv").read_text()
    lines = (ref / "history.csv").read_text().splitlines()
    assert lines[0] == "step,loss,val_loss,data_loss" and len(lines) == 60001
    assert lines[100].split(",")[2] != "" and lines[99].split(",")[2] == ""


def test_resume_from_a_missing_or_foreign_checkpoint_is_an_error(tmp_path, capsys):
    table = _table(tmp_path)
    base = ["fit", str(table), "--no-cache", "--no-progress", "--steps", "50"]
    ckpt = tmp_path / "ckpt"
    assert main([*base, "--out", str(tmp_path / "a"), "--resume", str(ckpt)]) == 2
    assert "fit.ckpt" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--checkpoint", str(ckpt)]) == 0
    assert (ckpt / "fit.ckpt").exists() and (tmp_path / "b" / "history.csv").exists()
    code = main([*base, "--steps", "60", "--out", str(tmp_path / "c"), "--resume", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2 and "fit.ckpt" in err and "steps: 50 in the checkpoint, 60 here" in err
