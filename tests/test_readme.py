"""The README's commands and its quick start are what CI and users run: keep them true."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _run(block: str, folder: Path, monkeypatch) -> str:
    """Run a README block as a script in `folder` (in this process: its programs are the ones
    the suite compiles anyway); its standard output."""
    monkeypatch.chdir(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("bash") for line in block.splitlines()]
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1, test_cmd
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0].strip() in [line.strip() for line in ci]
    main_cmd = [c for c in commands if c.startswith("python -m pip install .")]
    assert main_cmd == ["python -m pip install . && eqx-ffn demo"]


def test_quick_start_runs(tmp_path, monkeypatch):
    quick = _blocks("python")[0]
    assert "eqx_ffn.fit(" in quick
    stdout = _run(quick, tmp_path, monkeypatch)
    lines = stdout.splitlines()
    assert "[1.5116649]" in stdout
    assert "(200, 1)" in stdout
    loss, reason = lines[-1].split()
    assert float(loss) < 1e-2 and reason == "completed"
    assert (tmp_path / "loss.png").exists() and (tmp_path / "fit.png").exists()


def test_dynamical_systems_snippet_runs(tmp_path, monkeypatch):
    (block,) = [b for b in _blocks("python") if "from eqx_ffn import sysid" in b]
    stdout = _run(block, tmp_path, monkeypatch)
    rmse, fit = (float(v.strip("[]")) for v in stdout.split())
    assert rmse < 1.0 and fit > 50  # volts and percent, after 50 LM steps (margin ~2x)
