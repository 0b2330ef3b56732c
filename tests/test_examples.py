"""The scripts in examples/ run as users run them (`__main__` in a fresh process, a fresh folder,
their argv), with a few steps (EQX_FFN_EXAMPLE_STEPS), exit 0 and write the files
examples/README.md names."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (EXAMPLES / "README.md").read_text()

# script -> (the files it writes, a module it needs (skipped cleanly without it) or None).
# Run in this order, in one process: a program one run compiles is reused by the runs after it.
SCRIPTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "lecture.py": (("loss.png", "fit.png"), None),
    "two_layers.py": (("loss.png", "fit.png"), None),
    "least_squares.py": (("loss.png", "fit.png"), None),
    "minibatch.py": (("loss.png", "fit.png"), None),
    "two_d.py": (("loss.png", "residuals.png", "surface.png"), None),
    "export.py": (("model.stablehlo",), "flatbuffers"),
    "sklearn_pipeline.py": (("grid_search.csv",), "sklearn"),
    "tanks.py": (("simulation.png", "tanks.eqx"), None),
}


def test_every_script_is_run_and_listed():
    assert sorted(SCRIPTS) == sorted(p.name for p in EXAMPLES.glob("*.py"))
    listed = re.findall(r"^- `(\w+\.py)`", README, flags=re.M)
    assert sorted(listed) == sorted(SCRIPTS)
    for name, (files, _) in SCRIPTS.items():
        text = (EXAMPLES / name).read_text()
        assert "EQX_FFN_EXAMPLE_STEPS" in text and "import eqx_ffn" in text.replace(
            "from", "import"
        )
        assert not re.search(r"eqx_ffn\.\w+\._|from eqx_ffn\.\w*\._", text), name  # public API
        line = next(x for x in README.splitlines() if x.startswith(f"- `{name}`"))
        assert all(f"`{f}`" in line for f in files), (name, line)


def _args(name: str) -> list[str]:
    """lecture.py writes into the current folder; the others into the folder named on the line."""
    return [] if name == "lecture.py" else ["out"]


RUNNER = """
import contextlib, io, json, os, runpy, sys, traceback
jobs = json.loads(sys.argv[1])
for name, script, folder, args in jobs:
    out, err = io.StringIO(), io.StringIO()
    os.chdir(folder)
    sys.argv = [script, *args]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    import matplotlib.pyplot as plt
    plt.close("all")
    print(json.dumps({"name": name, "returncode": code, "stdout": out.getvalue(),
                      "stderr": err.getvalue()}), flush=True)
"""


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, Result]]:
    """Every script run as `python SCRIPT [OUT]` would run it (`__main__`, its own folder and
    argv), one after another in ONE fresh process: each run's exit code and output. (A process
    each would add a JAX start to every script; the suite's time is mostly that and compiling.)"""
    env = {
        **os.environ,
        "EQX_FFN_EXAMPLE_STEPS": "5",
        "MPLBACKEND": "Agg",
        # a few steps: compiling dominates, and XLA's CPU optimisation passes are not needed
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    folders = {name: tmp_path_factory.mktemp(name.removesuffix(".py")) for name in SCRIPTS}
    jobs = [[n, str(EXAMPLES / n), str(folders[n]), _args(n)] for n in SCRIPTS]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["name"]] = Result(r["returncode"], r["stdout"], r["stderr"])
    assert proc.returncode == 0 and len(results) == len(SCRIPTS), proc.stderr[-3000:]
    return {name: (folders[name], results[name]) for name in SCRIPTS}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_example_runs(name, runs):
    files, needs = SCRIPTS[name]
    folder, proc = runs[name]
    out = folder.joinpath(*_args(name))
    assert proc.returncode == 0, proc.stderr[-3000:]
    if needs is not None and importlib.util.find_spec(needs) is None:
        assert proc.stdout.startswith("skipped:"), proc.stdout
        return
    for f in files:
        path = out / f
        assert path.is_file() and path.stat().st_size > 0, (f, proc.stdout)
        assert str(path) in proc.stdout or f in proc.stdout  # it says what it wrote
        if f.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in proc.stderr
