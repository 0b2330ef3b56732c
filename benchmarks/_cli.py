"""`python -m benchmarks [--quick] [--out DIR] [--md FILE] [--cases ...]`: run the cases, print
their tables and checks, write `results/<platform>[.quick].json` and render `BENCHMARKS.md`."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ._report import case_checks, render_result, to_json, write_md

HERE = Path(__file__).resolve().parent
# case -> module; the heaviest (accelerator) last: on a GPU it fills the chip
CASES = {
    "lecture": "lecture", "sizes": "sizes", "scaling": "scaling",
    "efficiency": "efficiency", "compile": "compile_time", "ensemble": "ensemble",
    "recompiles": "recompiles", "first_result": "first_result", "least_squares": "least_squares",
    "process": "process",  # after least_squares, whose L-BFGS program it reuses
    "sklearn_tables": "sklearn_tables", "csv": "tables", "sysid": "sysid", "silverbox": "silverbox",
    "callbacks": "callbacks",
    "accelerator": "accelerator",
}  # fmt: skip


def _clean(obj: Any) -> Any:
    """JSON-safe: NumPy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)


def _load() -> float:
    return os.getloadavg()[0]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (less sensitive to other load)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_cases(names: list[str], quick: bool) -> dict[str, Any]:
    """Run the named cases (in `CASES` order); `{"meta": ..., "cases": {name: {"title",
    "tables"} or {"title", "error"}}}`."""
    from ._common import Mode, XlaCompiles, environment

    mode = Mode(quick)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    cases: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    compiling: dict[str, float] = {}
    compiles: dict[str, int] = {}
    load = {"start": _load()}
    for name in (n for n in CASES if n in names):
        load[name] = _load()
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        t, c, x = time.perf_counter(), _cpu(), XlaCompiles.snapshot()
        title = name
        try:
            module = importlib.import_module(f"benchmarks.{CASES[name]}")
            title = module.TITLE
            cases[name] = {"title": title, "tables": to_json(module.run(mode))}
        except Exception as e:  # report and go on: the other cases still count
            traceback.print_exc()
            cases[name] = {"title": title, "error": f"{type(e).__name__}: {e}"}
        seconds[name], cpu[name] = time.perf_counter() - t, _cpu() - c
        compiles[name], compiling[name] = XlaCompiles.since(x)
        print(f"[benchmarks] {name} took {seconds[name]:.1f} s ({compiling[name]:.1f} s XLA "
              f"compiling here, {compiles[name]} programs)", file=sys.stderr, flush=True)  # fmt: skip
    load["end"] = _load()
    meta = {
        "mode": mode.name,
        "started": started,
        "elapsed_s": time.perf_counter() - t0,
        "case_seconds": seconds,
        "case_cpu_seconds": cpu,
        "case_compile_seconds": compiling,
        "case_compiles": compiles,
        "load_average_1min": load,
        "env": environment(),
    }
    return _clean({"meta": meta, "cases": cases})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and sizes (~3 min on 2 cores)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder of the JSON")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                        metavar="CASE", help=f"which cases (default all): {', '.join(CASES)}")  # fmt: skip
    parser.add_argument("--md", type=Path, default=None, help="the rendered tables (default: "
                        "benchmarks/BENCHMARKS.md, or OUT/BENCHMARKS.md for another --out)")  # fmt: skip
    parser.add_argument("--note", default="", help="a line for the run's header (e.g. the load)")
    args = parser.parse_args(argv)
    default_out = args.out.resolve() == (HERE / "results").resolve()
    md = args.md or (HERE / "BENCHMARKS.md" if default_out else args.out / "BENCHMARKS.md")
    t0 = time.perf_counter()
    # The parent and the whole-process workers share one GPU: none may grab 75% of its memory.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax  # the platform names the results file

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{jax.devices()[0].platform}{'.quick' if args.quick else ''}.json"
    result = run_cases(args.cases, args.quick)
    if set(args.cases) != set(CASES) and path.exists():  # a subset: keep the file's other cases
        old = json.loads(path.read_text()).get("cases", {})
        result["cases"] = {n: result["cases"].get(n) or old[n] for n in CASES
                           if n in result["cases"] or n in old}  # fmt: skip
        result["meta"]["partial_update"] = sorted(args.cases)
    if args.note:
        result["meta"]["note"] = args.note
    result["meta"]["elapsed_s"] = time.perf_counter() - t0
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    write_md(args.out, md)
    print(render_result(result))
    for case in result["cases"].values():
        for c in case_checks(case):
            print(c.line())
    print(f"[benchmarks] wrote {path} and {md}; total {time.perf_counter() - t0:.1f} s")
    return 0
