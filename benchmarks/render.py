"""Markdown tables from the results JSON files (`render_file`) and `BENCHMARKS.md` (`write_md`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

NOISY = 1.3  # a median this much above the fastest repeat marks a disturbed measurement
CASE_ORDER = (
    "lecture",
    "process",
    "scaling",
    "efficiency",
    "compile",
    "ensemble",
    "recompiles",
    "first_result",
    "least_squares",
    "sklearn_tables",
    "accelerator",
)


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


def _verdict(passed: Any) -> str:
    return "—" if passed is None else ("PASS" if passed else "**FAIL**")


def _recompiles(c: dict[str, Any], dev: str) -> str:
    rows = []
    for r in c["rows"]:
        if "error" in r:
            rows.append([r["label"], f"failed: {r['error']}", "", "", "", "", "", "", "", ""])
            continue
        xla = _g(r.get("xla_compiles"))
        if r.get("xla_compiles"):
            xla += f" ({_s(r['xla_compile_s'])})"
        rows.append(
            [
                r["label"],
                _g(r["compiles"]),
                _s(r["compile_s"]) if r["compile_s"] else "0",
                xla,
                _s(r["first_call_s"]),
                _s(r["warm_s"]),
                r["target"],
                _verdict(r["pass"]),
                r.get("note", ""),
            ]
        )
    val = c.get("validation", {})
    p20, p1 = val.get("eval_every_20", {}), val.get("eval_every_1", {})
    return "\n".join(
        [
            f"{c['data']}, on **{dev}**. Each row first runs its *base* fit (untimed; it compiles "
            "a new structure where the row needs one), then makes ONE change. *Programs*: "
            "training programs compiled by the changed call (`eqx_ffn.training._engine.compile_count`), "
            "*compile*: their seconds (`History.compile_time`); *XLA compiles*: every XLA "
            "compile of that call, training program or not (JAX's monitoring events); *warm*: "
            "median of repeats of the changed call (the plain lecture fit, named Adam, took "
            f"{_s(c['reference_warm_s'])} at the start of the case). Sizes name their buckets "
            "(`eqx_ffn.training._engine.bucket`).",
            "",
            table(
                [
                    "change",
                    "programs",
                    "compile",
                    "XLA compiles",
                    "first call",
                    "warm",
                    "target",
                    "verdict",
                    "note",
                ],
                rows,
            ),
            "",
            f"**Validation overhead** ({val.get('steps')} named-Adam steps, warm, interleaved): "
            f"with `validation=(x, y), eval_every=20` {_x(p20.get('min_ratio'))} the time "
            f"without (ratio of the minimums over {p20.get('pairs')} pairs; median of the "
            f"per-pair ratios {_x(p20.get('ratio'))}; target <= 1.3x); validating every step "
            f"{_x(p1.get('min_ratio'))}.",
        ]
    )


def _first_result(c: dict[str, Any], dev: str) -> str:
    if "skipped" in c:
        return c["skipped"]
    out = [
        f"Fresh processes, timed from their parent; JAX on **{dev}**. {c['settings'][0].upper()}"
        f"{c['settings'][1:]} (scikit-learn's defaults, mirrored). A bare `python -c pass` "
        f"takes {_s(c.get('python_start_s'))}. *Total*: median process; *fastest*: the "
        "figure the targets use.",
        "",
    ]
    for name, t in c.get("tables", {}).items():
        if "error" in t:
            out += [f"**{name}**: failed: {t['error']}", ""]
            continue
        rows = []
        for key, label in (
            ("eqx_cold", "eqx_ffn, persistent cache cold"),
            ("eqx_warm", "eqx_ffn, persistent cache warm"),
            ("sklearn", "scikit-learn, early_stopping=True"),
        ):
            r = t[key]
            rows.append(
                [
                    label,
                    _s(r["process_s"]),
                    _s(r["process_min_s"]),
                    _s(r.get("import_s")),
                    _s(r.get("data_s")),
                    _s(r.get("model_s")),
                    _s(r.get("fit_s")),
                    _s(r.get("compile_s")),
                    _s(r.get("predict_s")),
                    _g(r.get("epochs")),
                    f"{r['quality']:.4f}",
                ]
            )
        out += [
            f"**{name}** ({t['task']}; {t['n_train']} training rows, {t['n_test']} test rows, "
            f"{t['d']} features; {t['metric']})",
            "",
            table(
                [
                    "process",
                    "total",
                    "fastest",
                    "imports",
                    "data",
                    "model",
                    "fit",
                    "of which compile",
                    "predict",
                    "epochs",
                    "quality",
                ],
                rows,
            ),
            "",
            f"eqx_ffn / scikit-learn (fastest processes): cold {_x(t['cold_over_sklearn'])} "
            f"(target <= 2.5x), warm {_x(t['warm_over_sklearn'])} (target <= 1.5x); quality "
            f"difference {t['quality_gap']:+.4f} (target >= -0.02). eqx_ffn cold: "
            f"{_g(t['eqx_cold'].get('xla_compiles'))} XLA compiles "
            f"({_s(t['eqx_cold'].get('xla_compile_s'))}; slowest: "
            f"{t['eqx_cold'].get('slowest_compiles') or '—'}).",
            "",
        ]
    f = c.get("ffn", {})
    if "error" in f:
        out.append(f"`FFN(1, 1, (16,))`: failed: {f['error']}")
    elif f:
        plain, warm = f["no_cache"], f["warm_cache"]
        out.append(
            f"`FFN(1, 1, (16,), key=jax.random.key(0))` in a fresh process: "
            f"{_s(plain['model_s'])} after the imports (median; fastest {_s(f['model_min_s'])}; "
            f"target <= 0.15 s), {_g(plain.get('xla_compiles'))} XLA compiles "
            f"({_s(plain.get('xla_compile_s'))}, medians; the last process's slowest: "
            f"{plain.get('compiled') or '—'}); a second "
            f"model {_s(plain['second_model_s'])}. "
            f"The imports (eqx_ffn, JAX, Equinox) {_s(plain['import_s'])}, the whole process "
            f"{_s(plain['process_s'])}. With a warm persistent cache: "
            f"{_s(warm['model_s'])} after imports."
        )
    return "\n".join(out)


def _least_squares(c: dict[str, Any], dev: str) -> str:
    rows = []
    skipped = []
    for r in c["runners"]:
        if "run_s" not in r:
            skipped.append(f"- `{r['name']}`: {r.get('skipped') or r.get('error')}")
            continue
        mse_target = r.get("mse_at_target")
        rows.append(
            [
                r["label"],
                r.get("via", ""),
                _s(r.get("compile_s")),
                _g(r.get("iterations_to_target")),
                _s(r.get("time_to_target_s")),
                _g(mse_target, 4) if mse_target is not None else "",
                _s(r["per_iteration_s"]),
                _g(r.get("final_mse_at_budget")),
                f"{_g(r.get('final_mse'))} ({_g(r.get('iterations'))})",
            ]
        )
    d = c.get("time_to_target_check") or {}
    out = [
        f"{c['data']}; initial MSE {_g(c['initial_mse'], 5)}; on **{dev}** (SciPy on the CPU). "
        f"*Via fit*: `eqx_ffn.fit(model, x, y, optimizer=..., steps=k, tol=0.0, progress=False)`,"
        " the whole call timed warm (compiled by a first call of the whole budget; `steps` is a "
        "run-time input, so the calls of other lengths reuse that program); *iterations to "
        f"{c['target_mse']:g}*: from that first call's history; *time to {c['target_mse']:g}*: "
        "the fastest warm `fit` of exactly those steps (direct scan: pro rata of its run; SciPy: "
        "the solver stopped at the first MSE under the target), and the MSE it returned; "
        f"*MSE after {c['budget_iterations']}*: after that many iterations; *final*: after the "
        "iterations in brackets (SciPy: until its own stopping rule). An LM iteration is one "
        "Jacobian, its dampings and step lengths tried at once; SciPy's is one Jacobian "
        "(`njev`).",
        "",
        table(
            [
                "runner",
                "via",
                "compile",
                f"iterations to {c['target_mse']:g}",
                f"time to {c['target_mse']:g}",
                "MSE there",
                "per iteration",
                f"MSE after {c['budget_iterations']}",
                "final MSE (iterations)",
            ],
            rows,
        ),
    ]
    if d:
        out.append(
            f"\n**Target** (issue 14): LM's time to MSE <= {c['target_mse']:g} over L-BFGS's, "
            f"both through `fit`, {d['iterations']['lm']} and {d['iterations']['lbfgs']} steps, "
            f"{d['pairs']} interleaved pairs: {_x(d['min_ratio'])} (ratio of the minimums, "
            f"{_s(d['a_min_s'])} / {_s(d['b_min_s'])}; median of the per-pair ratios "
            f"{_x(d['ratio'])}; target <= 0.5x). The compiled loops alone (each fit's "
            f"program called again on its arguments, no argument checks or results handling): "
            f"{_s(d.get('program_lm_s'))} / {_s(d.get('program_lbfgs_s'))} = "
            f"{_x(d.get('program_only'))}. Programs compiled while timing: {_g(d['compiles'])}."
        )
    out.append(
        f"\nLM through `fit` / SciPy MINPACK, time to the target: "
        f"{_x(c.get('lm_over_scipy_time_to_target'))}."
    )
    fd = c.get("fit_vs_direct") or {}
    if fd:
        out.append(
            f"\n{fd['steps']} LM steps through `fit` / the same solver driven directly "
            f"({fd['pairs']} interleaved pairs, minimums): the whole call "
            f"{_x(fd['fit_over_direct'])} ({_s(fd['fit_min_s'])} / {_s(fd['direct_min_s'])}), "
            f"the compiled loop alone {_x(fd.get('program_over_direct'))}. The "
            "loop pads the 200 rows to 256 with zero weights (data sizes up to the same power of "
            "two share one program) and runs whole chunks of steps; the direct scan does neither."
        )
    if skipped:
        out += ["", "Not run:", *skipped]
    return "\n".join(out)


def _sklearn_tables(c: dict[str, Any], dev: str) -> str:
    rows = []
    for t in c["tables"]:
        if "error" in t:
            rows.append([t["table"], f"failed: {t['error']}", *[""] * 10])
            continue
        sk = f"{t['sklearn']:.4f}"
        if t.get("sklearn_hit_max_iter"):
            sk += " ‡"
        if t.get("sklearn_scaled_y") is not None:
            sk += f" (scaled y: {t['sklearn_scaled_y']:.4f})"
        rows.append(
            [
                f"{t['table']} ({t['n_train']} x {t['n_features']})",
                t["metric"],
                f"{t['ours']:.4f}",
                sk,
                f"{t['ours_minus_sklearn']:+.4f}",
                _verdict(t["within_0.02"]),
                f"{_g(t['ours_n_iter'])} / {_g(t['sklearn_n_iter'])}",
                f"{_s(t['ours_first_fit_s'])} ({_g(t['ours_first_fit_programs'])})",
                f"{_s(t['ours_warm_fit_s'])} ({_g(t['ours_warm_fit_programs'])})",
                _s(t["sklearn_fit_s"]),
                _x(t["ours_warm_fit_s"] / t["sklearn_fit_s"]),
            ]
        )
    out = [
        f"JAX on **{dev}**; scikit-learn on the CPU. {c['how'][0].upper()}{c['how'][1:]}. Scores "
        f"on the test quarter, mean over {c['tables'][0].get('seeds', 1)} seed(s). *Programs*: "
        "training programs compiled by those calls (`eqx_ffn.training._engine.compile_count`).",
        "",
        table(
            [
                "table (train rows x features)",
                "metric",
                "eqx_ffn",
                "scikit-learn",
                "difference",
                "within 0.02",
                "epochs ours / theirs",
                "ours first fit (programs)",
                "ours warm fit (programs)",
                "scikit-learn fit",
                "warm / scikit-learn",
            ],
            rows,
        ),
    ]
    if any(t.get("sklearn_hit_max_iter") for t in c["tables"]):
        out.append(
            "\n‡ scikit-learn stopped at `max_iter` (a `ConvergenceWarning`, silenced here). "
            "On diabetes `MLPRegressor` defaults train on the raw target (mean about 150) and are "
            "far from converged after 200 epochs; 'scaled y' is the same estimator in a "
            "`TransformedTargetRegressor(transformer=StandardScaler())`, as ours scales y by "
            "default (for information; the target uses the defaults, as the issue asks)."
        )
    g = c.get("grid_search", {})
    if "error" in g:
        out.append(f"\n**GridSearchCV** failed: {g['error']}")
    elif g:
        grid = " x ".join(f"`{k}` {v}" for k, v in g["grid"].items())
        out.append(
            f"\n**GridSearchCV** on {g['table']}: {grid}, {g['folds']} folds ({g['fits']} fits "
            f"with the refit), default architecture. eqx_ffn first thing in a fresh process "
            f"{_s(g['ours_s'])}: **{_g(g['ours_compiles'])} training program(s)** (target <= 2; "
            f"training sizes {g['training_sizes']}, padded to {g['size_buckets']}), "
            f"{_g(g.get('ours_xla_compiles'))} XLA compiles in all "
            f"({_s(g.get('ours_xla_compile_s'))}); the same search again in that process "
            f"{_s(g['ours_warm_s'])} ({_g(g['ours_compiles_warm'])} programs). "
            f"`MLPRegressor` in a `StandardScaler` pipeline {_s(g['sklearn_s'])}: eqx_ffn / "
            f"scikit-learn {_x(g['ours_over_sklearn'])} (warm {_x(g['ours_warm_over_sklearn'])})."
            f" Best: ours {g['ours_best_params']} CV R² {g['ours_best_cv_r2']:.3f}; "
            f"scikit-learn {g['sklearn_best_params']} CV R² {g['sklearn_best_cv_r2']:.3f}."
        )
    return "\n".join(out)


def _per_step_table(runners: list[dict[str, Any]], extra: str | None = None) -> str:
    rows = []
    for r in runners:
        if "per_step_s" not in r:
            rows.append([r.get("label", r["name"]), r.get("skipped") or r.get("error"), "", ""])
            continue
        last = _x(r.get(extra)) if extra else _g(r.get("final_loss"))
        rows.append([r["label"], _s(r["first_call_s"]), _s(r["per_step_s"]), last])
    last_header = {"x_bare": "x bare scan"}.get(extra or "", extra or "final loss")
    return table(["runner", "first call", "per step", last_header], rows)


def _accelerator(c: dict[str, Any], dev: str) -> str:
    env = c.get("env", {})
    v = env.get("versions", {})
    out = []
    if c.get("smoke"):
        out += [f"**{c['smoke']}**: every size shrunk; the figures only show the code runs.", ""]
    out += [
        f"Backend `{c['backend']}`, device `{c['device']}` ({c['device_kind']}); jax "
        f"{v.get('jax')}, jaxlib {v.get('jaxlib')}, torch {env.get('torch')} (CUDA "
        f"{env.get('torch_cuda')}, {env.get('torch_device')}). Section times: "
        + ", ".join(f"{k} {_s(t)}" for k, t in c.get("section_seconds", {}).items())
        + ".",
        "",
    ]

    def failed(name: str) -> bool:
        sec = c.get(name, {})
        if "error" in sec:
            out.extend([f"**{name}**: failed: {sec['error']}", ""])
            return True
        return not sec

    if not failed("wide"):
        w = c["wide"]
        rows = []
        for r in w["runners"]:
            if "per_step_s" not in r:
                rows.append(
                    [r.get("label", r["name"]), r.get("skipped") or r.get("error"), "", "", ""]
                )
                continue
            rows.append(
                [
                    r["label"],
                    _s(r["first_call_s"]),
                    _s(r["per_step_s"]),
                    f"{r['tflops']:.3g}",
                    _g(r.get("final_loss")),
                ]
            )
        b, t = w.get("bf16_speedup", {}), w.get("vs_torch_bf16", {})
        out += [
            f"**Wide MLP** {'-'.join(str(s) for s in w['sizes'])} ReLU, full batch of "
            f"{w['batch']}, Adam, MSE; {_flops(w['flops_per_step'])}FLOP per step; "
            f"{w['steps_per_call']} steps a call.",
            "",
            table(["runner", "first call", "per step", "TFLOP/s", "final loss"], rows),
            "",
            f"fit float32 (TF32) / fit bf16: {_x(b.get('min_ratio'))} (interleaved minimums, "
            f"target >= 1.9x); PyTorch bf16 / fit bf16: {_x(t.get('min_ratio'))} (target >= "
            "1.0x).",
            "",
        ]
    if not failed("big_n"):
        g = c["big_n"]
        out += [
            f"**Big N**: {g['n']:,} points, 1-64-64-1 tanh, batches of {g['batch']}, Adam; "
            f"batch indices drawn on the {'device' if g['device_sampling_in_fit'] else 'host'} "
            "in fit.",
            "",
            _per_step_table(g["runners"], "x_bare"),
            "",
        ]
    if not failed("lecture"):
        lec = c["lecture"]
        out += [
            f"**Lecture problem**, Adam 1e-2, {lec['steps']} full-batch steps.",
            "",
            _per_step_table(lec["runners"], "x_bare"),
            "",
        ]
    if not failed("lbfgs"):
        lb = c["lbfgs"]
        rows = [
            [r["label"], r.get("ran_on", ""), _s(r["per_step_s"]), _g(r.get("final_loss"))]
            for r in lb["runners"]
        ]
        grid = []
        for g in lb["grid"]:
            grid.append(
                [
                    f"{g['n']:,} x {g['params']:,} ({g['d']}-{'-'.join(map(str, g['hidden']))}-1)",
                    _g(float(g["work"])),
                    "CPU" if g["rule_places_on_cpu"] else "default device",
                    _g(g["steps"]),
                    _s(g["cpu_per_step_s"]),
                    _s(g["accelerator_per_step_s"]),
                    _x(g["accelerator_over_cpu"]),
                ]
            )
        cross = lb.get("crossover", {})
        where = (
            f"the accelerator overtakes the CPU at about {_g(cross['work'])} rows x parameters "
            f"(between {_g(float(cross['between'][0]))} and {_g(float(cross['between'][1]))}); "
            f"the rule's threshold is {_g(cross['threshold_work'])} "
            f"({_x(cross['threshold_over_crossover'])} the crossover)"
            if "work" in cross
            else cross.get("note", "")
        )
        out += [
            f"**L-BFGS** (optax zoom line search, tol=0, {lb['steps']} steps; precision "
            f"{lb['precision']}).",
            "",
            table(["placement", "ran on", "per step", "final loss"], rows),
            "",
            table(
                [
                    "rows x parameters",
                    "work",
                    "rule places it on",
                    "steps",
                    "CPU per step",
                    "accelerator per step",
                    "accelerator / CPU",
                ],
                grid,
            ),
            "",
            f"Crossover: {where}.",
            "",
        ]
    if not failed("ensemble"):
        e = c["ensemble"]
        out += [
            f"**Ensembles**: `fit_ensemble` of {e['members']} lecture members x {e['steps']} "
            f"steps: cold {_s(e['ensemble_cold_s'])} (compile {_s(e['ensemble_compile_s'])}), "
            f"warm {_s(e['ensemble_warm_s'])} = {e['member_steps_per_s']:,.0f} member-steps/s; "
            f"sequential `fit` {_s(e['sequential_per_member_s'])} per member (warm, "
            f"{e['sequential_fits_timed']} timed), {_x(e['sequential_over_ensemble'])} the "
            "ensemble's time when extrapolated to every member.",
            "",
        ]
    if not failed("unroll"):
        u = c["unroll"]
        rows = [[r["label"], _s(r["per_step_s"]), _x(r["x_fastest"])] for r in u["runners"]]
        out += [
            f"**Unroll** of the step loop, lecture fit ({u['steps']} steps; the engine picks "
            f"unroll={u['engine_unroll']} here, chunks of {u['chunk']} steps).",
            "",
            table(["unroll", "per step", "x fastest"], rows),
        ]
    return "\n".join(out).rstrip()


SECTIONS = {
    "lecture": _lecture,
    "process": _process,
    "scaling": _scaling,
    "efficiency": _efficiency,
    "compile": _compile,
    "ensemble": _ensemble,
    "recompiles": _recompiles,
    "first_result": _first_result,
    "least_squares": _least_squares,
    "sklearn_tables": _sklearn_tables,
    "accelerator": _accelerator,
}


def device_name(meta: dict[str, Any]) -> str:
    env = meta["env"]
    if env["platform"] == "cpu":
        return f"CPU ({env['cpu_model']}, {env['cpu_count']} cores)"
    return f"{env['platform'].upper()} {env['device_kind']} x{env['device_count']}"


def checks_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for chk in result.get("checks", []):
        verdict = "n/a" if chk["pass"] is None else ("PASS" if chk["pass"] else "FAIL")
        value = "n/a" if chk["value"] is None else f"{chk['value']:.3g}"
        if chk.get("issue") is not None:
            verdict += f" [issue {chk['issue']}]"
        extra = "".join(
            f"; {key.replace('_', ' ')} {chk[key]:.3g}"
            for key in ("interleaved", "steady_state", "engine_only", "program_only")
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
        parts += [
            "**Targets** (issue 3 where none is named; n/a: not judged here)",
            "",
            *[f"- {c}" for c in checks],
            "",
        ]
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
