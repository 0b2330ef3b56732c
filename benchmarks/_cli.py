"""`python -m benchmarks [--quick] [--out DIR] [--cases ...]`: run, print, write JSON and MD."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import render

HERE = Path(__file__).resolve().parent
CASES = render.CASE_ORDER  # the heaviest (accelerator) last: on a GPU it fills the chip


def _clean(obj: Any) -> Any:
    """JSON-safe: NumPy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _load() -> float:
    """The 1-minute load average (how busy the machine is; ours included once running)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not available
        return float("nan")


def collect_checks(cases: dict[str, Any]) -> list[dict[str, Any]]:
    """Every case's target checks, in the order of `CASES` (then any other case)."""
    names = [n for n in CASES if n in cases] + [n for n in cases if n not in CASES]
    out: list[dict[str, Any]] = []
    for name in names:
        case = cases[name]
        if isinstance(case, dict):
            out += case.get("checks", [])
    return out


def run_cases(
    names: list[str], quick: bool, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the named cases; returns `{"meta": ..., "cases": {...}}` (no printing).

    `previous`: cases of an earlier run of the same device and mode; the compile case reads the
    persistent-cache figures of its 'process' case when 'process' is not run now.
    """
    t0 = time.perf_counter()
    from . import (
        accelerator,
        compile_time,
        efficiency,
        ensemble,
        first_result,
        least_squares,
        lecture,
        process,
        recompiles,
        scaling,
        sklearn_tables,
    )
    from ._common import Mode, environment

    mode = Mode(quick)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cases: dict[str, Any] = {}
    timings: dict[str, float] = {}
    funcs = {
        "lecture": lambda: lecture.run(mode),
        "process": lambda: process.run(mode),
        "scaling": lambda: scaling.run(mode),
        "efficiency": lambda: efficiency.run(mode),
        "compile": lambda: compile_time.run(
            mode, cases.get("process") or (previous or {}).get("process")
        ),
        "ensemble": lambda: ensemble.run(mode),
        "recompiles": lambda: recompiles.run(mode),
        "first_result": lambda: first_result.run(mode),
        "least_squares": lambda: least_squares.run(mode),
        "sklearn_tables": lambda: sklearn_tables.run(mode),
        "accelerator": lambda: accelerator.run(mode),
    }
    load: dict[str, float] = {"start": _load()}
    for name in CASES:
        if name not in names:
            continue
        load[name] = _load()
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            cases[name] = funcs[name]()
        except Exception as e:  # report and go on: the other cases still count
            traceback.print_exc()
            cases[name] = {"title": name, "error": f"{type(e).__name__}: {e}"}
        timings[name] = time.perf_counter() - t
        print(f"[benchmarks] {name} took {timings[name]:.1f} s", file=sys.stderr, flush=True)
    result = {
        "meta": {
            "mode": mode.name,
            "started": started,
            "elapsed_s": time.perf_counter() - t0,
            "case_seconds": timings,
            "load_average_1min": {**load, "end": _load()},
            "env": environment(),
        },
        "cases": cases,
        "checks": collect_checks(cases),
    }
    return _clean(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and sizes (a few minutes on 2 cores)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="folder for <platform>.json"
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=CASES,
        default=list(CASES),
        metavar="CASE",
        help=f"which cases (default all): {', '.join(CASES)}",
    )
    parser.add_argument(
        "--md",
        type=Path,
        default=None,
        help="the rendered tables (default: benchmarks/BENCHMARKS.md, or OUT/BENCHMARKS.md "
        "when --out is not the default folder)",
    )
    args = parser.parse_args(argv)
    if args.md is None:
        default_out = args.out.resolve() == (HERE / "results").resolve()
        args.md = HERE / "BENCHMARKS.md" if default_out else args.out / "BENCHMARKS.md"
    t0 = time.perf_counter()
    # Several JAX processes share one GPU here (the parent and the whole-process workers): no
    # process may grab 75% of its memory up front. Set before JAX is imported; inherited.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax  # the platform names the results file

    platform = jax.devices()[0].platform
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"{platform}.quick.json" if args.quick else f"{platform}.json")
    old: dict[str, Any] = {}
    partial = set(args.cases) != set(CASES)
    if partial and path.exists():
        with open(path) as f:
            old = json.load(f)
    result = run_cases(args.cases, args.quick, old.get("cases"))
    if partial and old:
        # A subset of the cases: keep the other cases' figures of the same file.
        old_cases = old.get("cases", {})
        old_cases.update(result["cases"])
        result["cases"] = old_cases
        result["checks"] = collect_checks(old_cases)
        result["meta"]["partial_update"] = sorted(args.cases)
    result["meta"]["elapsed_s"] = time.perf_counter() - t0
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    render.write_md(args.out, args.md)
    print(render.render_result(result))
    for line in render.checks_lines(result):
        print(line)
    print(f"[benchmarks] wrote {path} and {args.md}; total {time.perf_counter() - t0:.1f} s")
    return 0
