"""What a case returns (`Table`, `Check`) and the one renderer: Markdown for the terminal and
for `BENCHMARKS.md`, from a run's result (`render_result`) or from the JSON files (`write_md`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """One target's verdict: `verdict` True (PASS), False (FAIL) or None (n/a: not judged here,
    e.g. an accelerator target in a CPU smoke run); `how` says how `value` was measured."""

    name: str
    value: float | None
    target: str
    verdict: bool | None
    issue: int | None = None
    how: str = ""

    @property
    def word(self) -> str:
        return "n/a" if self.verdict is None else ("PASS" if self.verdict else "FAIL")

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.3g}"
        issue = "" if self.issue is None else f" [issue {self.issue}]"
        how = f" [{self.how}]" if self.how else ""
        return f"{self.word}{issue}: {self.name}: {value} (target {self.target}){how}"


@dataclass
class Table:
    """A titled table: `columns`, `rows` of cells, `notes` (Markdown paragraphs printed under
    it) and the `checks` it supports. `formats` has one letter per column for numeric cells:
    `s` seconds, `x` a ratio, `g` a number, `f` a FLOP count, `t` (or missing) as given; None
    prints as a dash, a string as it is."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    formats: str = ""

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Table:
        return cls(**{**d, "checks": [Check(**c) for c in d.get("checks", [])]})


def seconds(v: float) -> str:
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} µs"


def flops(v: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g}"


def number(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.3g}"


FORMATS = {"s": seconds, "x": lambda v: f"{v:.3g}x", "g": number, "f": flops}


def cell(value: Any, fmt: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and fmt in FORMATS:
        return FORMATS[fmt](value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_table(t: Table) -> str:
    fmts = t.formats.ljust(len(t.columns), "t")
    out = [f"**{t.title}**", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    out += [
        "| " + " | ".join(cell(v, f) for v, f in zip(row, fmts, strict=False)) + " |"
        for row in t.rows
    ]
    out += [text for note in t.notes for text in ("", note)]
    if t.checks:
        out += ["", *(f"- {c.line()}" for c in t.checks)]
    return "\n".join(out)


def to_json(tables: list[Table]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(t) for t in tables]


def case_checks(case: dict[str, Any]) -> list[Check]:
    return [c for t in case.get("tables", []) for c in Table.from_json(t).checks]


def device_name(env: dict[str, Any]) -> str:
    if env["platform"] == "cpu":
        return f"CPU ({env['cpu_model']}, {env['cpu_count']} cores)"
    return f"{env['platform'].upper()} {env['device_kind']} x{env['device_count']}"


def render_result(result: dict[str, Any]) -> str:
    """One run (`{"meta", "cases"}`) as Markdown: the machine, every check, every case's tables."""
    meta, env = result["meta"], result["meta"]["env"]
    v = env["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)
    missing = ", ".join(k for k, val in v.items() if val is None)
    load = ", ".join(f"{k} {x:.2f}" for k, x in meta["load_average_1min"].items() if x is not None)
    quick = " --quick" if meta["mode"] == "quick" else ""
    n = meta.get("case_compiles") or {}
    parts = [
        f"## {device_name(env)} — {meta['mode']} run",
        "",
        f"- Device (JAX): `{env['platform']}` / `{env['device_kind']}`: {', '.join(env['devices'])}",
        f"- Host: {env['cpu_model']}, {env['cpu_count']} CPU cores, {env['os']}",
        f"- Versions: {versions}" + (f"; not installed: {missing}" if missing else ""),
        f"- Measured {meta['started']}; the whole run took {meta['elapsed_s']:.1f} s "
        f"(`python -m benchmarks{quick}`); seconds per case: "
        + ", ".join(f"{k} {s:.1f}" for k, s in meta["case_seconds"].items())
        + (
            " (CPU seconds, this process and its workers: "
            + ", ".join(f"{k} {s:.1f}" for k, s in meta["case_cpu_seconds"].items())
            + ")"
            if "case_cpu_seconds" in meta
            else ""
        )
        + (
            "; XLA compiling, seconds in this process"
            + (" (programs compiled: a figure the load does not change)" if n else "")
            + ": "
            + ", ".join(
                f"{k} {s:.1f}" + (f" ({n[k]})" if k in n else "")
                for k, s in meta["case_compile_seconds"].items()
            )
            if "case_compile_seconds" in meta
            else ""
        ),
        f"- Load average (1 min) when each case began: {load}. The machine may be shared: clearly "
        "above 0.5 at 'start' means it was busy before this run began, and absolute times are "
        "then inflated (ratios of interleaved measurements much less so).",
        *([f"- {meta['note']}"] if meta.get("note") else []),
        *(
            [
                f"- A partial run: {', '.join(meta['partial_update'])} measured then; the other cases "
                "come from an earlier run into the same file."
            ]
            if meta.get("partial_update")
            else []
        ),
        "",
        "**Targets** (n/a: not judged on this device)",
        "",
        *(f"- {c.line()}" for case in result["cases"].values() for c in case_checks(case)),
    ]
    for case in result["cases"].values():
        parts += ["", f"### {case['title']}", ""]
        if "error" in case:
            parts.append(f"Failed: {case['error']}")
        parts += [x for t in case.get("tables", []) for x in (render_table(Table.from_json(t)), "")]
    return "\n".join(parts).rstrip() + "\n"


def write_md(results_dir: Path, md_path: Path) -> None:
    """`BENCHMARKS.md` from every JSON file in `results_dir`, the latest measured first."""
    runs = {f.name: json.loads(f.read_text()) for f in results_dir.glob("*.json")}
    order = sorted(runs, key=lambda name: runs[name]["meta"]["started"], reverse=True)
    body = [
        "# eqx_ffn benchmarks",
        "",
        "Generated by `python -m benchmarks` from the JSON files in `benchmarks/results/` (one per "
        "device and mode; do not edit by hand). Absolute times belong to the device named in each "
        "section; every comparison is a ratio against a baseline measured in the same run. "
        "Warm runs, `time.perf_counter`, results waited for with `block_until_ready`.",
        "",
    ]
    for name in order:
        body += [f"<!-- from {name} -->", render_result(runs[name])]
    md_path.write_text("\n".join(body).rstrip() + "\n")
