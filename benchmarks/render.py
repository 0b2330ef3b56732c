"""Markdown tables from the results JSON files (`render_file`) and `BENCHMARKS.md` (`write_md`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

NOISY = 1.3  # a median this much above the fastest repeat marks a disturbed measurement
CASE_ORDER = ("lecture", "process", "scaling", "efficiency", "compile", "ensemble")


# -- number formatting -------------------------------------------------------------------------


def _s(v: Any) -> str:
    """Seconds, in a unit a person reads at a glance."""
    if v is None:
        return "—"
    v = float(v)
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} µs"


def _g(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{float(v):.{digits}g}"


def _x(v: Any) -> str:
    return "—" if v is None else f"{float(v):.3g}x"


def _flops(v: Any) -> str:
    if v is None:
        return "—"
    v = float(v)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} "


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


# -- one section per case ----------------------------------------------------------------------


def _lecture(c: dict[str, Any], dev: str) -> str:
    rows = []
    skipped = []
    noisy = False
    for r in c["runners"]:
        if "per_step_s" not in r:
            skipped.append(f"- `{r['name']}`: {r.get('skipped') or r.get('error')}")
            continue
        mark = ""
        if r.get("run_min_s") and r["run_s"] > NOISY * r["run_min_s"]:
            mark, noisy = " †", True
        rows.append(
            [
                r["label"],
                _s(r["setup_s"]),
                _s(r["run_s"]) + mark,
                _g(r["steps"]),
                _s(r["per_step_s"]),
                _x(r.get("speedup_vs_lecture")),
                _x(r.get("x_bare_scan")),
                _g(r["final_mse"]),
                _s(r.get("time_to_0.01_s")),
                _s(r.get("time_to_0.001_s")),
            ]
        )
    out = [
        f"Data: {c['data']}; initial MSE {_g(c['initial_mse'], 5)}. Adam 1e-2 for "
        f"{c['adam_steps']} full-batch steps; L-BFGS up to {c['lbfgs_steps']} iterations. "
        f"Times on **{dev}** (scikit-learn always on the CPU). *Setup*: compiling / building "
        "(first call); *run*: median warm run of the whole training; *speedup*: lecture loop's "
        "time per step / this one's; *x floor*: this time per step / the bare `lax.scan` of the "
        "same optimiser; *to 1e-2 / 1e-3*: run time until the training MSE first reaches it "
        "(— never within the steps run).",
        "",
        table(
            [
                "runner",
                "setup",
                "run",
                "steps",
                "per step",
                "speedup vs lecture",
                "x floor",
                "final MSE",
                "to 1e-2",
                "to 1e-3",
            ],
            rows,
        ),
    ]
    if noisy:
        out.append(
            f"\n† the median run was over {NOISY}x the fastest repeat: that measurement was "
            "disturbed (a shared machine); its ratios are less trustworthy."
        )
    fit_adam = next((r for r in c["runners"] if r["name"] == "fit_adam"), None)
    if fit_adam and "history_per_step_s" in fit_adam:
        out.append(
            f"\n`fit` Adam: warm call {_s(fit_adam['run_s'])} in all, of which the engine "
            f"(`History.run_time`) {_s(fit_adam['history_run_s'])}; first call "
            f"{_s(fit_adam['first_call_s'])} ({fit_adam['compiles_on_first_call']} compile). "
            "Adam at 1e-2 does not reach MSE 1e-3 within the 2000 steps (as REFERENCE.md says: "
            "about 5.8e-3); L-BFGS does."
        )
    if skipped:
        out += ["", "Not run:", *skipped]
    return "\n".join(out)


def _process(c: dict[str, Any], dev: str) -> str:
    rows = []
    for key, label in (
        ("eqx_ffn_cold", "eqx_ffn, persistent cache cold (empty folder)"),
        ("eqx_ffn_warm", "eqx_ffn, persistent cache warm (second process)"),
        ("sklearn", "scikit-learn MLPRegressor(solver='lbfgs')"),
    ):
        r = c.get(key)
        if not r:
            continue
        if "skipped" in r:
            rows.append([label, r["skipped"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                label,
                _s(r["process_s"]),
                _s(r.get("import_s")),
                _s(r.get("data_s")),
                _s(r.get("fit_s")),
                _s(r.get("compile_s")),
                _g(r.get("steps")),
                _g(r.get("mse")),
            ]
        )
    ratios = c.get("ratios", {})
    return "\n".join(
        [
            f"Each row is a fresh Python process (median of {c.get('eqx_ffn_cold', {}).get('runs', 1)}"
            f"), timed from its parent; JAX on **{dev}**. Each runs the fewest L-BFGS iterations "
            f"that reach MSE <= {c['target_mse']:g} with its own library. A bare "
            f"`python -c pass` takes {_s(c.get('python_start_s'))}; `import jax` in a process "
            f"{_s(c.get('import_jax_process_s'))}.",
            "",
            table(
                [
                    "process",
                    "total",
                    "imports",
                    "data + model",
                    "fit",
                    "of which compile",
                    "iterations",
                    "final MSE",
                ],
                rows,
            ),
            "",
            f"Cold / warm: {_x(ratios.get('cold_over_warm'))}; eqx_ffn cold / scikit-learn: "
            f"{_x(ratios.get('eqx_cold_over_sklearn'))}; eqx_ffn warm / scikit-learn: "
            f"{_x(ratios.get('eqx_warm_over_sklearn'))}.",
        ]
    )


def _scaling_rows(rows: list[dict[str, Any]], key: str) -> list[list[str]]:
    out = []
    for r in rows:
        growth = "—"
        if r.get("time_growth") is not None:
            growth = f"{r['time_growth']:.3g}x / {r['flops_growth']:.3g}x"
        last = _x(r.get("x_floor"))
        out.append(
            [
                _g(r[key]),
                str(r["batch"]),
                _g(r["steps"]),
                _s(r["per_step_s"]),
                f"{r['steps_per_s']:,.0f}",
                _flops(r["flops_per_step"]),
                _flops(r["achieved_flops"]) + "FLOP/s",
                growth,
                "**slower than arithmetic**" if r.get("flag") else "",
                last,
            ]
        )
    return out


def _scaling(c: dict[str, Any], dev: str) -> str:
    header = [
        "N",
        "batch",
        "steps",
        "per step",
        "steps/s",
        "FLOPs/step",
        "achieved",
        "time / FLOPs growth",
        "flag",
        "x bare scan",
    ]
    wheader = ["width", *header[1:]]
    return "\n".join(
        [
            f"`fit`, Adam 1e-2, 1-w-1 tanh, on **{dev}**; median warm call. {c['flops_note']} "
            f"{c['flag_rule'][0].upper()}{c['flag_rule'][1:]}. *x bare scan*: time per step / "
            "a bare `jit(lax.scan)` of the same step (a flag that the bare scan shares is XLA's, "
            "not fit's); for mini-batches the bare scan takes contiguous slices of data shuffled "
            "once, so there it measures what fit's sampling costs.",
            "",
            "**N, full batch** (width 16)",
            "",
            table(header, _scaling_rows(c["n_full_batch"], "n")),
            "",
            "**N, mini-batch 256** (width 16; epoch sampling)",
            "",
            table(header, _scaling_rows(c["n_minibatch"], "n")),
            "",
            "**Width** (one hidden layer, N = 2,000, full batch)",
            "",
            table(wheader, _scaling_rows(c["width"], "width")),
        ]
    )


def _efficiency(c: dict[str, Any], dev: str) -> str:
    mm = c["jax_matmul"]
    rows = []
    for label, r, peak in (
        ("eqx_ffn.make_step (one jitted step per call)", c["eqx_ffn_make_step"], mm["flops_per_s"]),
        ("eqx_ffn.fit (steps in one compiled loop)", c["eqx_ffn_fit"], mm["flops_per_s"]),
    ):
        rows.append(
            [
                label,
                _s(r["per_step_s"]),
                _flops(r["achieved_flops"]) + "FLOP/s",
                _flops(peak) + "FLOP/s (jax.jit matmul)",
                _g(r["efficiency"]),
            ]
        )
    t = c.get("torch", {})
    if "skipped" in t:
        rows.append(["PyTorch", t["skipped"], "", "", ""])
    elif t:
        rows.append(
            [
                f"PyTorch eager ({t['device']}, {t['threads']} threads)",
                _s(t["per_step_s"]),
                _flops(t["achieved_flops"]) + "FLOP/s",
                _flops(t["matmul_flops_per_s"]) + "FLOP/s (torch.mm)",
                _g(t["efficiency"]),
            ]
        )
    return "\n".join(
        [
            f"One Adam step, softmax cross-entropy, on **{dev}**. FLOPs per step (forward + "
            f"backward matmuls) {_flops(c['flops_per_step'])}. Reference: a plain {c['matmul']} "
            "in the same process and library, its best repeat (what the hardware can do); the "
            "steps are medians. Efficiency = achieved / reference.",
            "",
            table(["runner", "per step", "achieved", "reference matmul", "efficiency"], rows),
        ]
    )


def _compile(c: dict[str, Any], dev: str) -> str:
    rows = []
    for r in c["in_process"]:
        rows.append(
            [
                f"fit {r['optimizer']}, {r['steps']} steps",
                _s(r["first_call_s"]),
                _s(r["first_compile_s"]),
                _g(r["compiles_first_call"]),
                _s(r["reuse_call_s"]),
                _g(r["compiles_reuse_calls"]),
                _x(r["first_over_reuse"]),
            ]
        )
    out = [
        f"On **{dev}**. {c['how']}",
        "",
        "**In one process** (`fit`'s own program cache)",
        "",
        table(
            [
                "program",
                "first call",
                "of which compile",
                "compiles",
                "reuse call",
                "compiles on reuse",
                "first / reuse",
            ],
            rows,
        ),
        "",
        "**Across processes** (JAX persistent compilation cache)",
        "",
    ]
    p = c.get("persistent_cache", {})
    if "skipped" in p:
        out.append(p["skipped"])
    else:
        out.append(
            table(
                [
                    "program",
                    "compile cold",
                    "compile warm",
                    "fit cold",
                    "fit warm",
                    "process cold",
                    "process warm",
                ],
                [
                    [
                        p["program"],
                        _s(p["cold_compile_s"]),
                        _s(p["warm_compile_s"]),
                        _s(p["cold_fit_s"]),
                        _s(p["warm_fit_s"]),
                        _s(p["cold_process_s"]),
                        _s(p["warm_process_s"]),
                    ]
                ],
            )
        )
        out.append(
            f"\nCompile cold / warm {_x(p['compile_cold_over_warm'])}; whole process cold / warm "
            f"{_x(p['process_cold_over_warm'])}. 'Compile warm' is tracing + lowering + loading "
            "the program from the cache."
        )
    return "\n".join(out)


def _ensemble(c: dict[str, Any], dev: str) -> str:
    if "skipped" in c:
        return c["skipped"]
    rows = [
        [
            "one fit_ensemble call",
            _s(c["ensemble_cold_s"]),
            _s(c["ensemble_warm_s"]),
            f"{c['member_steps_per_s_ensemble']:,.0f}",
        ],
        [
            f"{c['members']} sequential fit calls",
            _s(c["sequential_cold_s"]),
            _s(c["sequential_warm_s"]),
            f"{c['member_steps_per_s_sequential']:,.0f}",
        ],
    ]
    return "\n".join(
        [
            f"{c['members']} members of 1-16-1 tanh, Adam 1e-2, {c['steps']} full-batch steps, "
            f"on **{dev}**. Both build their {c['members']} models (`FFN(..., key=k)`) inside "
            "the timing. Cold includes compiling: the training program (ensemble "
            f"{_s(c.get('ensemble_compile_s'))}; sequential: the first call compiles, "
            f"{_s(c.get('sequential_compile_s'))}, the other {c['members'] - 1} reuse it) and, "
            "on a CPU, most of the rest of the ensemble's cold setup: XLA compiling the batched "
            "random draws of the initialisation.",
            "",
            table(["runner", "cold", "warm", "member-steps/s (warm)"], rows),
            "",
            f"Sequential / ensemble: warm {_x(c['speedup_warm'])}, cold {_x(c['speedup_cold'])}. "
            "Final losses, ensemble member vs its sequential fit: median relative difference "
            f"{_g(c.get('median_rel_diff'))}, largest {_g(c.get('max_rel_diff'))} (vmapped "
            "arithmetic rounds differently, and 2000 steps can amplify it); median final loss "
            f"{_g(c['median_final_loss'])}.",
        ]
    )


SECTIONS = {
    "lecture": _lecture,
    "process": _process,
    "scaling": _scaling,
    "efficiency": _efficiency,
    "compile": _compile,
    "ensemble": _ensemble,
}


def device_name(meta: dict[str, Any]) -> str:
    env = meta["env"]
    if env["platform"] == "cpu":
        return f"CPU ({env['cpu_model']}, {env['cpu_count']} cores)"
    return f"{env['platform'].upper()} {env['device_kind']} x{env['device_count']}"


def checks_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for chk in result.get("checks", []):
        verdict = "PASS" if chk["pass"] else "FAIL"
        value = "n/a" if chk["value"] is None else f"{chk['value']:.3g}"
        extra = "".join(
            f"; {key.replace('_', ' ')} {chk[key]:.3g}"
            for key in ("interleaved", "steady_state", "engine_only")
            if chk.get(key) is not None
        )
        how = f" [{chk['how']}]" if chk.get("how") else ""
        lines.append(f"{verdict}: {chk['name']}: {value} (target {chk['target']}){extra}{how}")
    return lines


def render_result(result: dict[str, Any], heading: str = "##") -> str:
    meta = result["meta"]
    env = meta["env"]
    dev = device_name(meta)
    v = env["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)
    missing = ", ".join(k for k, val in v.items() if val is None)
    parts = [
        f"{heading} {dev} — {meta['mode']} run",
        "",
        f"- Device (JAX): `{env['platform']}` / `{env['device_kind']}`: {', '.join(env['devices'])}",
        f"- Host: {env['cpu_model']}, {env['cpu_count']} CPU cores, {env['os']}",
        f"- Versions: {versions}" + (f"; not installed: {missing}" if missing else ""),
        f"- Measured {meta['started']}; the whole run took {meta['elapsed_s']:.1f} s "
        f"(`python -m benchmarks{' --quick' if meta['mode'] == 'quick' else ''}`).",
        "",
    ]
    load = meta.get("load_average_1min")
    if load:
        before = ", ".join(f"{k} {v:.2f}" for k, v in load.items() if v is not None)
        parts.insert(
            -1,
            f"- Load average (1 min) when each case began: {before}. The machine may be shared "
            f"with other work: clearly above 0.5 at 'start' means it was busy before this run "
            "began, and absolute times are then inflated (ratios of interleaved measurements "
            "much less so); later values include this run's own work.",
        )
    checks = checks_lines(result)
    if checks:
        parts += ["**Targets (issue 3)**", "", *[f"- {c}" for c in checks], ""]
    cases = result["cases"]
    for name in CASE_ORDER:
        if name not in cases:
            continue
        case = cases[name]
        title = case.get("title", name) if isinstance(case, dict) else name
        parts += [f"{heading}# {title}", ""]
        if "error" in case:
            parts.append(f"Failed: {case['error']}")
        else:
            parts.append(SECTIONS[name](case, dev))
        parts.append("")
    return "\n".join(parts)


def write_md(results_dir: Path, md_path: Path) -> None:
    files = sorted(results_dir.glob("*.json"), key=lambda p: (p.name.count("."), p.name))
    body = [
        "# eqx_ffn benchmarks",
        "",
        "Generated by `python -m benchmarks` from the JSON files in `benchmarks/results/` (one "
        "per device and mode; do not edit by hand). Absolute times belong to the device named "
        "in each section; every comparison is a ratio against a baseline measured in the same "
        "run. Medians of repeated warm runs, `time.perf_counter`, results waited for with "
        "`block_until_ready`.",
        "",
    ]
    if not files:
        body.append("No results yet.")
    for f in files:
        with open(f) as fh:
            result = json.load(fh)
        body += [f"<!-- from {f.name} -->", render_result(result), ""]
    md_path.write_text("\n".join(body).rstrip() + "\n")
