"""Case 4: what compiling costs, and what reusing a compiled program saves.

- In one process: the first `fit` call (traces, lowers and compiles its program) against a
  second identical call (finds it in `fit`'s program cache: `compile_time == 0`, no new
  compile counted by `eqx_ffn.training._engine.compile_count`). A step count used by no other case gives
  a program this process has not compiled yet.
- Across processes: JAX's persistent compilation cache, cold (empty folder) against warm (a
  second process on the same folder), taken from the whole-process case's runs. Turn it on with
  `eqx_ffn.enable_compilation_cache()` (default folder `~/.cache/eqx_ffn/jax`, or
  `$EQX_FFN_CACHE_DIR`), once at start-up.
"""

from __future__ import annotations

from typing import Any

import eqx_ffn

from ._common import Mode, compile_count, delta, lecture_data, median_time, ratio, timed

STEPS = 1500  # no other case fits with 1500 steps: a program not compiled yet


def in_process(mode: Mode, optimizer: str) -> dict[str, Any]:
    x, y, params, _ = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    kwargs = {"optimizer": optimizer, "steps": STEPS, "progress": False}
    before = compile_count()
    first_s, (_, first) = timed(lambda: eqx_ffn.fit(model, x, y, **kwargs))
    mid = compile_count()
    m = median_time(lambda: eqx_ffn.fit(model, x, y, **kwargs), mode.repeats, warmup=0)
    after = compile_count()
    return {
        "optimizer": optimizer,
        "steps": STEPS,
        "first_call_s": first_s,
        "first_compile_s": first.compile_time,
        "reuse_call_s": m["median"],
        "reuse_compile_s": m["result"][1].compile_time,
        "compiles_first_call": delta(mid, before),
        "compiles_reuse_calls": delta(after, mid),
        "first_over_reuse": ratio(first_s, m["median"]),
    }


def run(mode: Mode, process_result: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": "Compile time: first call vs reuse; persistent cache cold vs warm",
        "how": "eqx_ffn.enable_compilation_cache(path=None) turns on JAX's persistent "
        "compilation cache (call once at start-up).",
        "in_process": [in_process(mode, "adam"), in_process(mode, "lbfgs")],
    }
    if process_result and "eqx_ffn_warm" in process_result:
        cold, warm = process_result["eqx_ffn_cold"], process_result["eqx_ffn_warm"]
        out["persistent_cache"] = {
            "program": f"fit L-BFGS, {process_result.get('eqx_ffn_steps')} steps, in a new process",
            "cold_compile_s": cold.get("compile_s"),
            "warm_compile_s": warm.get("compile_s"),
            "cold_fit_s": cold.get("fit_s"),
            "warm_fit_s": warm.get("fit_s"),
            "cold_process_s": cold.get("process_s"),
            "warm_process_s": warm.get("process_s"),
            "compile_cold_over_warm": ratio(cold.get("compile_s"), warm.get("compile_s")),
            "process_cold_over_warm": ratio(cold.get("process_s"), warm.get("process_s")),
        }
    else:
        out["persistent_cache"] = {"skipped": "needs the 'process' case (run it too)"}
    return out
