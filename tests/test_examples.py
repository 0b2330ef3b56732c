"""The scripts in examples/ run as users run them (a subprocess, a fresh folder), with a few
steps (EQX_FFN_EXAMPLE_STEPS), exit 0 and write the files examples/README.md names."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (EXAMPLES / "README.md").read_text()

# script -> (the files it writes, a module it needs (skipped cleanly without it) or None).
# Started in this order, two at a time: a program one run compiles is loaded, not compiled, by
# the runs after it (the suite's compilation cache, tests/conftest.py).
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


def _run(name: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EQX_FFN_EXAMPLE_STEPS": "5",
        "MPLBACKEND": "Agg",
        # a few steps: compiling dominates, and XLA's CPU optimisation passes are not needed
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *_args(name)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every script started at once, two at a time (the runs are mostly importing and
    compiling, one core each): `{name: (its folder, the finished process)}` as futures."""
    pool = ThreadPoolExecutor(max_workers=2)
    out: dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]] = {}
    for name in SCRIPTS:
        folder = tmp_path_factory.mktemp(name.removesuffix(".py"))
        out[name] = (folder, pool.submit(_run, name, folder))
    yield out
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_example_runs(name, runs):
    files, needs = SCRIPTS[name]
    folder, future = runs[name]
    proc = future.result()
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
