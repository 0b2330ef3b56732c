"""Typed downstream code: pyright resolves the installed package and keeps its types.

One pyright run over `tests/typing/downstream.py` (about 10 s), in a folder of its own so that the
project's pyright settings do not apply, with the interpreter running the tests: in CI that is the
editable install of `pip install -e ".[dev]"`, so this also checks that pyright can follow it.
Skipped when pyright cannot run (not installed, or no Node.js and no network to fetch it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "typing" / "downstream.py"
PENDING = "revealed (fit keeps the model's type):"


def _pyright() -> list[str] | None:
    exe = shutil.which("pyright")
    cmd = [exe] if exe else [sys.executable, "-m", "pyright"]
    try:
        probe = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd if probe.returncode == 0 and "pyright" in probe.stdout else None


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """`(lines, diagnostics by line)` of one pyright run over the downstream script."""
    cmd = _pyright()
    if cmd is None:
        pytest.skip("pyright cannot run here (not installed, or Node.js unavailable)")
    folder = tmp_path_factory.mktemp("downstream")
    (folder / "downstream.py").write_text(SCRIPT.read_text())
    config = {"pythonVersion": "3.10", "typeCheckingMode": "basic"}
    (folder / "pyrightconfig.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [*cmd, "--outputjson", "--pythonpath", sys.executable, "downstream.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    by_line: dict[int, list[dict]] = {}
    for diag in report["generalDiagnostics"]:
        by_line.setdefault(diag["range"]["start"]["line"] + 1, []).append(diag)
    return SCRIPT.read_text().splitlines(), by_line


def _revealed(diags: list[dict]) -> str:
    (info,) = [d for d in diags if d["severity"] == "information"]
    match = re.fullmatch(r'Type of ".*" is "(.*)"', info["message"], flags=re.S)
    assert match, info["message"]
    return match.group(1)


def test_the_package_resolves_and_keeps_its_types(checked):
    lines, by_line = checked
    n_revealed = 0
    for number, line in enumerate(lines, start=1):
        marker = re.search(r"^reveal_type\(.*\)  # revealed: (.*)$", line)
        if marker:
            expected = marker.group(1)
            got = _revealed(by_line.get(number, []))
            if expected.endswith("..."):
                assert got.startswith(expected[:-3]), (number, got)
            else:
                assert got == expected, (number, line, got)
            n_revealed += 1
    assert n_revealed >= 6


def test_misuse_is_reported_and_nothing_else(checked):
    lines, by_line = checked
    expected = {}
    for number, line in enumerate(lines, start=1):
        marker = re.search(r"^\S.*  # error: (\w+)$", line)
        if marker:
            expected[number] = marker.group(1)
    assert len(expected) >= 3
    errors = {
        number: {d.get("rule") for d in diags if d["severity"] == "error"}
        for number, diags in by_line.items()
    }
    errors = {number: rules for number, rules in errors.items() if rules}
    assert {n: {rule} for n, rule in expected.items()} == errors


def test_fit_keeps_the_model_type(checked):
    lines, by_line = checked
    pending = [
        (n, s)
        for n, s in enumerate(lines, start=1)
        if s.startswith("reveal_type(") and PENDING in s
    ]
    assert len(pending) == 2
    for number, line in pending:
        assert _revealed(by_line[number]) == line.split(PENDING)[1].strip()


def test_all_lists_every_lazy_export_and_each_resolves():
    import eqx_ffn

    assert sorted(eqx_ffn.__all__) == sorted(eqx_ffn._EXPORTS)
    for name in eqx_ffn.__all__:
        assert getattr(eqx_ffn, name) is not None, name
