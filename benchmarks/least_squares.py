"""Second-order least squares on the lecture's problem (docs/REFERENCE.md section 1, the
lecture's initial parameters), through the public API as users run it (issue 14).

- **Through `fit`**: `eqx_ffn.fit(model, x, y, optimizer=NAME, steps=k, tol=0.0,
  progress=False)` with `NAME` in `"lm"`, `"gauss_newton"`, `"lbfgs"`. A first call of the
  whole budget (100 steps; L-BFGS 1000) compiles the solver's program and gives the loss
  history; `steps` is a run-time input, so later calls reuse that program (counted). From the
  history: the steps to MSE <= 1e-4 (`history.loss[k]` is the loss after `k` steps) and the MSE
  after the budget; the time to the target is the fastest warm `fit` of exactly those steps.
- **Target**: LM's time to MSE <= 1e-4 at most 0.5x L-BFGS's, both `fit` calls interleaved,
  judged on the ratio of the minimums; beside it the compiled loops alone (each fit's program
  called again on its own arguments).
- **Anchor**: SciPy's `least_squares(method="lm")` (MINPACK, float64, analytic Jacobian).
- **Driven directly**: LM's `step` in the benchmark's own `lax.scan` (what `fit` adds); in the
  full mode also L-BFGS that way and the LM variants through `fit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import eqx_ffn
from eqx_ffn import LevenbergMarquardt

from . import peers
from ._common import (
    Mode,
    attempt,
    block,
    compile_count,
    engine,
    first_reach,
    lecture_data,
    median_time,
    mse_of,
    paired,
    timed,
)
from ._report import Check, Table

TITLE = "Second-order least squares on the lecture problem (issue 14)"
TARGET = 1e-4  # MSE
BUDGET = 100  # steps, for the MSE after a fixed budget of every runner
LBFGS_STEPS = 1000  # L-BFGS needs about 300 to reach TARGET
RATIO_TARGET = 0.5  # LM's time to TARGET over L-BFGS's
QUICK_NFEV = 500  # a quick run's cap on SciPy's function evaluations
COLUMNS = ["runner", "via", "compile", "iterations to 1e-4", "time to 1e-4", "MSE there",
           "per iteration", "MSE after 100", "final MSE", "iterations"]  # fmt: skip


def _fit(model: Any, x: Any, y: Any, optimizer: Any, steps: int) -> Callable[[], Any]:
    return lambda: eqx_ffn.fit(model, x, y, optimizer=optimizer, steps=steps, tol=0.0,
                               progress=False)  # fmt: skip


def program_call(call: Callable[[], Any]) -> Callable[[], Any]:
    """`() -> outputs` of the compiled program one run of `call` (a `fit` of one program call)
    ran, on the same arguments: the compiled loop alone, without the call's argument checks,
    initial state or History."""
    captured: list[tuple[Any, tuple]] = []
    real = engine.compiled_program

    def capture(cfg, *args):
        program, seconds = real(cfg, *args)
        captured.append((program, args))
        return program, seconds

    engine.compiled_program = capture
    try:
        call()
    finally:
        engine.compiled_program = real
    if len(captured) != 1:
        raise RuntimeError(f"expected one program call, got {len(captured)}")
    program, args = captured[0]
    return lambda: block(program(*args))


def fit_row(
    mode: Mode, label: str, optimizer: Any, model, x, y, steps: int
) -> tuple[list, int | None]:
    """One optimizer through `fit`: the budget run (the first call compiles; its history gives the
    steps to the target), then the fastest warm `fit` of exactly those steps."""
    _, (trained, hist) = timed(_fit(model, x, y, optimizer, steps))
    budget = median_time(_fit(model, x, y, optimizer, steps), mode.repeats, warmup=0)
    k = first_reach(hist.loss, TARGET)
    if k is None and hist.steps == steps and hist.final_loss <= TARGET:
        k = steps
    to_target = median_time(_fit(model, x, y, optimizer, k), mode.repeats) if k else None
    loss = np.asarray(hist.loss, np.float64)
    at_budget = mse_of(trained.to_params(), x, y) if steps == BUDGET else float(loss[BUDGET])
    return [label, "fit", hist.compile_time, k, to_target and to_target.min,
            to_target and float(to_target.result[1].final_loss), budget.min / max(hist.steps, 1),
            at_budget, mse_of(trained.to_params(), x, y), hist.steps], k  # fmt: skip


def direct_call(solver: Any, model: Any, x: Any, y: Any, steps: int) -> Callable[[], Any]:
    """A compiled `() -> (params, losses)`: `steps` steps of `solver` in one `lax.scan`, as the
    engine runs them (a step that reports convergence, or a non-finite loss, ends the run)."""
    from eqx_ffn.training._losses import resolve_loss

    params, static = eqx.partition(model, eqx.is_inexact_array)
    objective = eqx_ffn.Objective(resolve_loss("mse"), None, static, l1=0.0, l2=0.0, tol=0.0)
    batch = (x, y, jnp.ones(x.shape[0], x.dtype))

    def run(params):
        def body(carry, _):
            p, state, done = carry
            out = solver.step(objective, p, state, batch)
            take = ~done & jnp.isfinite(out.loss)
            p = jax.tree.map(lambda a, b: jnp.where(take, a, b), out.params, p)
            state = jax.tree.map(lambda a, b: jnp.where(take, a, b), out.state, state)
            return (p, state, done | ~take | out.converged), jnp.where(done, jnp.nan, out.loss)

        init = (params, solver.init(params), jnp.zeros((), bool))
        (p, _, _), losses = lax.scan(body, init, None, length=steps)
        return p, losses

    compiled = jax.jit(run).lower(params).compile()
    return lambda: compiled(params)


def _model(model: Any, params: Any) -> Any:
    return eqx.combine(params, eqx.partition(model, eqx.is_inexact_array)[1])


def direct_row(mode: Mode, label: str, solver: Any, model, x, y, steps: int, calls: dict) -> list:
    t0 = time.perf_counter()
    calls[label] = call = direct_call(solver, model, x, y, steps)
    compile_s = time.perf_counter() - t0
    t = median_time(call, mode.repeats, min_time=mode.min_time)
    trained, losses = t.result
    reach = first_reach(losses, TARGET)
    final = mse_of(_model(model, trained).to_params(), x, y)
    return [label, "direct scan", compile_s, reach, None if reach is None else t.min * reach / steps,
            None, t.min / steps, final if steps == BUDGET else float(losses[BUDGET]), final, steps]  # fmt: skip


def scipy_row(mode: Mode, x, y, params) -> list:
    """MINPACK's LM: iterations are Jacobians (`njev`); the time to the target stops the solver
    at the first MSE <= 1e-4; the MSE at the budget is the best within 100 Jacobians."""
    solve = peers.scipy_lm(x, y, params, BUDGET, TARGET, QUICK_NFEV if mode.quick else None)
    label = "SciPy least_squares(method='lm'), MINPACK, float64, analytic Jacobian"
    if mode.quick:  # its own stopping rule takes ~5000 Jacobians
        label += f" (quick run: at most {QUICK_NFEV} evaluations)"
    if solve is None:
        return [f"{label}: SciPy not installed", *[None] * 9]
    full_s, (full, at_budget) = min(
        (timed(lambda: solve(False)) for _ in range(mode.slow_repeats)), key=lambda r: r[0]
    )
    target_s, (k, _) = min(
        (timed(lambda: solve(True)) for _ in range(mode.repeats + 2)), key=lambda r: r[0]
    )
    reached = isinstance(k, int)
    return [label, "SciPy", None, k if reached else None, target_s if reached else None, None,
            full_s / max(full.njev, 1), at_budget, float(full.fun @ full.fun), int(full.njev)]  # fmt: skip


def run(mode: Mode) -> list[Table]:
    x, y, params = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    t = Table("Every runner from the lecture's initial parameters", COLUMNS, formats="ttsgsgsggg")
    steps_to: dict[str, int | None] = {}
    fits: list[tuple[str, Any, int]] = [
        ("fit(optimizer='lm'): LevenbergMarquardt() (3 dampings x 4 step lengths, Cholesky)",
         "lm", BUDGET),
        ("fit(optimizer='gauss_newton'): GaussNewton()", "gauss_newton", BUDGET),
        ("fit(optimizer='lbfgs'): optax.lbfgs, zoom line search", "lbfgs", LBFGS_STEPS),
    ]  # fmt: skip
    if not mode.quick:
        fits += [
            ("fit(LevenbergMarquardt(step_lengths=1))", LevenbergMarquardt(step_lengths=1), BUDGET),
            ("fit(LevenbergMarquardt(dampings=1, step_lengths=1)): trainlm's schedule",
             LevenbergMarquardt(dampings=1, step_lengths=1), BUDGET),
            ("fit(LevenbergMarquardt(linear_solver='svd'))",
             LevenbergMarquardt(linear_solver="svd"), BUDGET),
        ]  # fmt: skip
    for label, opt, steps in fits:
        out, error = attempt(lambda: fit_row(mode, label, opt, model, x, y, steps))  # noqa: B023
        t.add(*(out[0] if out else [f"{label}: failed: {error}"]))
        steps_to[str(opt)] = out and out[1]
    calls: dict[str, Callable[[], Any]] = {}
    direct: list[tuple[str, Any, int]] = [
        ("LevenbergMarquardt() driven directly (own lax.scan)", LevenbergMarquardt(), BUDGET)
    ]
    if not mode.quick:
        from eqx_ffn.solvers._resolve import resolve_solver

        direct.append(("optax.lbfgs through the Solver interface, driven directly",
                       resolve_solver("lbfgs")[0], LBFGS_STEPS))  # fmt: skip
    for label, solver, steps in direct:
        out, error = attempt(lambda: direct_row(mode, label, solver, model, x, y, steps, calls))  # noqa: B023
        t.add(*(out or [f"{label}: failed: {error}"]))
    out, error = attempt(lambda: scipy_row(mode, x, y, params))
    t.add(*(out or [f"SciPy: failed: {error}"]))
    t.notes.append(
        f"N=200, 1-16-1 tanh, the lecture's init (initial MSE {mse_of(params, x, y):.5g}), float32 "
        "unless noted. *Time to 1e-4*: the fastest warm `fit` of exactly the steps its first "
        "call's history needed (direct scan: pro rata of its run; SciPy: stopped at the first MSE "
        "under the target), and the MSE it returned; *MSE after 100*: after that many iterations; "
        "*final*: after the iterations in the last column (SciPy: its own stopping rule). An LM "
        "iteration is one Jacobian, its dampings and step lengths tried at once; SciPy's is one "
        "Jacobian (`njev`). optimistix is not measured here."
    )
    return [t, _targets(mode, model, x, y, steps_to, calls.get(direct[0][0]))]


def _targets(mode: Mode, model, x, y, steps_to: dict, direct: Callable | None) -> Table:
    """LM's time to the target over L-BFGS's (fit calls and their compiled loops, interleaved),
    and `BUDGET` LM steps through `fit` over the same driven directly."""
    t = Table("Interleaved comparisons", ["comparison", "pairs", "ratio of minimums",
                                          "median per-pair ratio", "A", "B"], formats="tgxxss")  # fmt: skip
    name = (
        f"fit(optimizer='lm') time to MSE <= 1e-4 at most {RATIO_TARGET}x fit(optimizer='lbfgs')'s"
    )
    k_lm, k_lbfgs = steps_to.get("lm"), steps_to.get("lbfgs")
    if not (k_lm and k_lbfgs):
        t.checks.append(
            Check(name, None, f"<= {RATIO_TARGET}", False, 14, "a solver did not reach it")
        )
        return t
    before = compile_count()
    lm, lbfgs = _fit(model, x, y, "lm", k_lm), _fit(model, x, y, "lbfgs", k_lbfgs)
    pairs = 4 if mode.quick else 50  # a pair takes a few tens of milliseconds
    p = paired(lm, lbfgs, pairs, min_time=5 * mode.min_time)
    q = paired(program_call(lm), program_call(lbfgs), pairs, min_time=5 * mode.min_time)
    t.add(f"fit LM {k_lm} steps / fit L-BFGS {k_lbfgs} steps", p.pairs, p.min_ratio, p.ratio,
          p.a_min, p.b_min)  # fmt: skip
    t.add("the same, compiled loops alone", q.pairs, q.min_ratio, q.ratio, q.a_min, q.b_min)
    t.checks.append(Check(name, p.min_ratio, f"<= {RATIO_TARGET}", p.min_ratio <= RATIO_TARGET, 14,
                          f"{p.pairs} interleaved pairs, ratio of the minimums; compiled loops "
                          f"alone {q.min_ratio:.3g}; {compile_count() - before} programs "
                          "compiled while timing"))  # fmt: skip
    if direct is not None:
        call = _fit(model, x, y, "lm", BUDGET)
        for label, f in ((f"fit LM {BUDGET} steps / driven directly", call),
                         ("its compiled loop alone / driven directly", program_call(call))):  # fmt: skip
            p = paired(f, direct, 2 if mode.quick else 30, min_time=2 * mode.min_time)
            t.add(label, p.pairs, p.min_ratio, p.ratio, p.a_min, p.b_min)
    t.notes.append("*A*, *B*: the minimums of the two sides. The loop pads the 200 rows to 256 "
                   "with zero weights (data sizes up to the same power of two share one program) "
                   "and runs whole chunks of steps; the direct scan does neither.")  # fmt: skip
    return t
