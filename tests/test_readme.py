"""The README's commands and its quick start are what CI and users run: keep them true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("bash") for line in block.splitlines()]
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1, test_cmd
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0].strip() in [line.strip() for line in ci]
    main_cmd = [c for c in commands if c.startswith("python -m pip install .")]
    assert main_cmd == ["python -m pip install . && eqx-ffn demo"]


def test_quick_start_runs(tmp_path):
    quick = _blocks("python")[0]
    assert "eqx_ffn.fit(" in quick
    proc = subprocess.run(
        [sys.executable, "-c", quick], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "[1.5116649]" in proc.stdout
    assert "(200, 1)" in proc.stdout
    loss, reason = lines[-1].split()
    assert float(loss) < 1e-2 and reason == "completed"
    assert (tmp_path / "loss.png").exists() and (tmp_path / "fit.png").exists()


def test_dynamical_systems_snippet_runs(tmp_path):
    (block,) = [b for b in _blocks("python") if "from eqx_ffn import sysid" in b]
    proc = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rmse, fit = (float(v.strip("[]")) for v in proc.stdout.split())
    assert rmse < 1.0 and fit > 50  # volts and percent, after 50 LM steps (margin ~2x)
