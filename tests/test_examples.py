"""The scripts in examples/ run as users run them (a subprocess, a fresh folder), with a few
steps (EQX_FFN_EXAMPLE_STEPS), exit 0 and write the files examples/README.md names."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (EXAMPLES / "README.md").read_text()

# script -> (the files it writes, a module it needs (skipped cleanly without it) or None).
# lecture.py comes first: the programs it compiles are loaded, not compiled, by the next ones
# (the suite's compilation cache, tests/conftest.py).
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


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_example_runs(name, tmp_path):
    files, needs = SCRIPTS[name]
    # lecture.py writes into the current folder; the others into the folder named on the line
    args = [] if name == "lecture.py" else ["out"]
    out = tmp_path.joinpath(*args)
    env = {
        **os.environ,
        "EQX_FFN_EXAMPLE_STEPS": "5",
        "MPLBACKEND": "Agg",
        # a few steps: compiling dominates, and XLA's CPU optimisation passes are not needed
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
