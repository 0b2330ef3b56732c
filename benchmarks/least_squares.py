"""Issue 14: second-order least squares on the lecture's problem (REFERENCE.md section 1, the
lecture's initial parameters), through the public API as users run it.

- **Through `fit`**: `eqx_ffn.fit(model, x, y, optimizer=NAME, steps=k, tol=0.0,
  progress=False)` with `NAME` in `"lm"`, `"gauss_newton"`, `"lbfgs"`. A first call of the
  whole budget (100 steps; L-BFGS 1000) compiles the solver's program and gives the loss
  history; `steps` is a run-time input, so every later call reuses that program (the case
  records `eqx_ffn.training._engine.compile_count` to show it). From the history: the steps each solver
  needs to reach MSE <= 1e-4 (`k`: `history.loss[k]` is the loss after `k` steps) and the MSE
  after the budget. Time to the target: the warm wall time of a `fit` call of exactly `k`
  steps (the whole call, Python included; compile excluded).
- **Target** (issue 14): LM's time to MSE <= 1e-4 at most 0.5x L-BFGS's, both `fit` calls timed
  alternately (A B A B ...), judged on the ratio of the minimums. Beside it, the same ratio for
  the compiled loops alone (each fit's program called again on its own arguments).
- **Anchor**: SciPy's `least_squares(method="lm")` (MINPACK's lmder, float64, analytic
  Jacobian) on the same residuals: iterations, time and final MSE side by side.
- **Driven directly** (the solver's `step` in the benchmark's own `lax.scan`, no `fit`): what the
  engine adds around the solver. LM in every mode; L-BFGS, the LM variants through `fit`
  (`LevenbergMarquardt(step_lengths=1)`, trainlm's schedule, SVD) and optimistix (when
  installed) in the full mode only.

`run(mode)` returns the figures; `python -m benchmarks.least_squares [--quick]` prints them as
JSON.
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
from eqx_ffn.solvers._least_squares import LevenbergMarquardt
from eqx_ffn.solvers._solver import resolve_solver
from eqx_ffn.training._fit import split_model
from eqx_ffn.training._losses import resolve_loss
from eqx_ffn.training._objective import Objective

from ._common import (
    Mode,
    block,
    check,
    compile_count,
    delta,
    first_reach,
    lecture_data,
    median_time,
    mse_of,
    optional,
    paired,
    ratio,
    timed,
)

TARGET = 1e-4  # MSE
BUDGET = 100  # steps, for the MSE after a fixed budget of every runner
LBFGS_STEPS = 1000  # L-BFGS needs about 300 to reach TARGET
RATIO_TARGET = 0.5  # LM's time to TARGET over L-BFGS's

# -- through fit, as users run it ----------------------------------------------------------------


def _fit(model: Any, x: Any, y: Any, optimizer: Any, steps: int) -> Callable[[], Any]:
    """`() -> (model, history)`: the public call every `fit` row times."""

    def call():
        return eqx_ffn.fit(model, x, y, optimizer=optimizer, steps=steps, tol=0.0, progress=False)

    return call


def _program_call(call: Callable[[], Any]) -> Callable[[], Any]:
    """`() -> outputs` of the compiled program that one run of `call` (a `fit` of one program
    call) ran, on the same arguments: the compiled loop alone, without the call's argument
    checks, initial state, dispatch of its results or History."""
    from eqx_ffn.training import _engine

    captured: list[tuple[Any, tuple]] = []
    real = _engine.compiled_program

    def capture(cfg, *args):
        program, seconds = real(cfg, *args)
        captured.append((program, args))
        return program, seconds

    _engine.compiled_program = capture
    try:
        call()
    finally:
        _engine.compiled_program = real
    if len(captured) != 1:
        raise RuntimeError(f"expected one program call, got {len(captured)}")
    program, args = captured[0]
    return lambda: block(program(*args))


def _steps_to(history: Any, steps: int) -> int | None:
    """The steps a fit needs to reach `TARGET`: `history.loss[k]` is the loss after `k` steps;
    the loss after the last step is `history.final_loss`."""
    k = first_reach(history.loss, TARGET)
    if k is None and history.steps == steps and history.final_loss <= TARGET:
        k = steps
    return k


def _warm_fit(
    mode: Mode, model: Any, x: Any, y: Any, optimizer: Any, steps: int, warmup: int
) -> dict[str, Any]:
    """`median_time` of a warm `fit` call, plus `engine_min`: the least `History.run_time` of
    the timed calls (the call less compiling, as `fit` measures it from its start)."""
    engine: list[float] = []
    call = _fit(model, x, y, optimizer, steps)

    def timed_call():
        out = call()
        engine.append(out[1].run_time)
        return out

    out = median_time(timed_call, mode.repeats, warmup=warmup, min_time=mode.min_time)
    return {**out, "engine_min": min(engine[warmup:])}


def fit_runner(
    mode: Mode, name: str, label: str, optimizer: Any, model: Any, x: Any, y: Any, steps: int
) -> dict[str, Any]:
    """One optimizer through `fit`: the budget run (its first call compiles; its history gives
    the steps to the target), then the warm `fit` of exactly those steps, timed."""
    before = compile_count()
    first_s, (trained, hist) = timed(_fit(model, x, y, optimizer, steps))
    compiles_first = delta(compile_count(), before)
    before = compile_count()
    budget = _warm_fit(mode, model, x, y, optimizer, steps, warmup=0)
    k = _steps_to(hist, steps)
    to_target = _warm_fit(mode, model, x, y, optimizer, k, warmup=1) if k else {}
    compiles_warm = delta(compile_count(), before)
    reached = to_target["result"][1] if to_target else None
    loss = np.asarray(hist.loss, np.float64)
    at_budget = _mse(trained, x, y) if steps == BUDGET else float(loss[BUDGET])
    return {
        "name": name,
        "label": label,
        "via": "fit",
        "iterations": int(hist.steps),
        "stop_reason": hist.stop_reason,
        "first_call_s": first_s,
        "compile_s": hist.compile_time,
        "compiles_first_call": compiles_first,
        "compiles_warm_calls": compiles_warm,
        "run_s": budget["min"],
        "run_median_s": budget["median"],
        "per_iteration_s": budget["min"] / max(int(hist.steps), 1),
        "engine_run_s": budget["engine_min"],
        "iterations_to_target": k,
        "time_to_target_s": to_target.get("min"),
        "time_to_target_median_s": to_target.get("median"),
        "engine_time_to_target_s": to_target.get("engine_min"),
        "mse_at_target": None if reached is None else float(reached.final_loss),
        "final_mse_at_budget": at_budget,
        "final_mse": _mse(trained, x, y),
        "min_mse": float(np.nanmin(np.append(loss, hist.final_loss))),
    }


def _mse(model: Any, x: Any, y: Any) -> float:
    """The full-batch MSE of a trained lecture network, float64 NumPy."""
    return mse_of(model.to_params(), x, y)


# -- a solver driven directly: its step in the benchmark's own scan ------------------------------


def _objective(model: Any) -> Objective:
    _, frozen, static = split_model(model)
    return Objective(resolve_loss("mse"), frozen, static, l1=0.0, l2=0.0, tol=0.0)


def compile_run(solver: Any, model: Any, x: Any, y: Any, steps: int) -> Callable[[], Any]:
    """A compiled `() -> (params, losses)`: `steps` steps of `solver` in one `lax.scan`, as the
    engine runs them (the loss before each update is recorded; a step that reports convergence,
    or a non-finite loss, ends the run: later steps are masked)."""
    params, _, _ = split_model(model)
    objective = _objective(model)
    batch = (x, y, jnp.ones(x.shape[0], x.dtype))

    def run(params):
        def body(carry, _):
            p, state, done = carry
            out = solver.step(objective, p, state, batch)
            new_p, new_state, loss = out[:3]
            converged = out[3] if len(out) == 4 else jnp.zeros((), bool)
            take = ~done & jnp.isfinite(loss)
            p = jax.tree.map(lambda a, b: jnp.where(take, a, b), new_p, p)
            state = jax.tree.map(lambda a, b: jnp.where(take, a, b), new_state, state)
            return (p, state, done | ~take | converged), jnp.where(done, jnp.nan, loss)

        init = (params, solver.init(params), jnp.zeros((), bool))
        (p, _, _), losses = lax.scan(body, init, None, length=steps)
        return p, losses

    compiled = eqx.filter_jit(run).lower(params).compile()
    return lambda: compiled(params)


def _min_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = block(fn())  # warm
    best = float("inf")
    for _ in range(repeats):
        t, out = timed(fn)
        best = min(best, t)
    return best, out


def _final_mse(model: Any, params: Any, x: Any, y: Any) -> float:
    _, frozen, static = split_model(model)
    return _mse(eqx.combine(params, frozen, static), x, y)


def direct_runner(
    mode: Mode,
    name: str,
    label: str,
    solver: Any,
    model: Any,
    x: Any,
    y: Any,
    steps: int,
    calls: dict[str, Callable[[], Any]],
) -> dict[str, Any]:
    """One eqx_ffn solver in its own scan: a `steps`-step run timed (minimum over repeats); the
    time to the target pro rata of the steps. The compiled call is left in `calls[name]`."""
    t0 = time.perf_counter()
    call = compile_run(solver, model, x, y, steps)
    compile_s = time.perf_counter() - t0
    calls[name] = call
    timing = median_time(call, mode.repeats, warmup=1, min_time=mode.min_time)
    run_s, (params, losses) = timing["min"], timing["result"]
    losses = np.asarray(losses, np.float64)
    reach = first_reach(losses, TARGET)
    at_budget = _final_mse(model, params, x, y) if steps == BUDGET else float(losses[BUDGET])
    return {
        "name": name,
        "label": label,
        "via": "direct scan",
        "iterations": steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "per_iteration_s": run_s / steps,
        "iterations_to_target": reach,
        "time_to_target_s": None if reach is None else run_s * reach / steps,
        "final_mse_at_budget": at_budget,
        "final_mse": _final_mse(model, params, x, y),
        "min_mse": float(np.nanmin(losses)),
    }


# -- optimistix, through its own init/step ---------------------------------------------------


def optimistix_runner(
    mode: Mode, name: str, label: str, solver: Any, x: Any, y: Any, params: Any, steps: int
) -> dict[str, Any]:
    """An optimistix least-squares solver stepped `steps` times in one `lax.scan` (its state
    holds a jaxpr, so only its arrays are carried). One optimistix step is one trial point: an
    accepted or rejected step, each with a function evaluation and a linearisation."""
    model = eqx_ffn.FFN.from_params(params)
    p0, _, _ = split_model(model)
    objective = _objective(model)
    batch = (x, y, jnp.ones(x.shape[0], x.dtype))

    def fn(p, args):
        return objective.residuals(p, batch), None

    f_struct, aux_struct = jax.eval_shape(lambda: fn(p0, None))

    def run(p):
        state = solver.init(fn, p, None, {}, f_struct, aux_struct, frozenset())
        arrays, rest = eqx.partition(state, eqx.is_array)

        def body(carry, _):
            p, arrays = carry
            p, state, _ = solver.step(fn, p, None, {}, eqx.combine(arrays, rest), frozenset())
            return (p, eqx.partition(state, eqx.is_array)[0]), objective(p, batch)

        (p, _), losses = lax.scan(body, (p, arrays), None, length=steps)
        return p, losses

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(p0).compile()
    compile_s = time.perf_counter() - t0
    run_s, (p, losses) = _min_time(lambda: compiled(p0), mode.repeats)
    losses = np.asarray(losses, np.float64)  # losses[i]: after step i + 1
    hit = first_reach(losses, TARGET)
    reach = None if hit is None else hit + 1
    return {
        "name": name,
        "label": label,
        "via": "optimistix",
        "iterations": steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "per_iteration_s": run_s / steps,
        "iterations_to_target": reach,
        "time_to_target_s": None if reach is None else run_s * reach / steps,
        "final_mse_at_budget": float(losses[BUDGET - 1]),
        "final_mse": _final_mse(model, p, x, y),
        "min_mse": float(np.nanmin(losses)),
    }


# -- SciPy MINPACK, the external anchor --------------------------------------------------------


class _Reached(Exception):
    pass


def _lecture_residuals(x: np.ndarray, y: np.ndarray):
    """The lecture network's residuals `(pred - y) / sqrt(N)` and their analytic Jacobian, for
    `p = vec(W1, b1, W2, b2)`, in float64 NumPy."""
    n = x.shape[0]
    root = np.sqrt(n)

    def unpack(p):
        return p[0:16], p[16:32], p[32:48], p[48]

    def fun(p):
        w1, b1, w2, b2 = unpack(p)
        h = np.tanh(x * w1 + b1)  # (N, 16)
        return (h @ w2 + b2 - y[:, 0]) / root

    def jac(p):
        w1, b1, w2, _ = unpack(p)
        h = np.tanh(x * w1 + b1)
        dh = (1 - h**2) * w2  # d pred / d b1
        return np.hstack([dh * x, dh, h, np.ones((n, 1))]) / root

    return fun, jac


def scipy_runner(mode: Mode, x: Any, y: Any, params: Any) -> dict[str, Any]:
    """`scipy.optimize.least_squares(method="lm")`: MINPACK's lmder, float64, analytic Jacobian,
    default tolerances (1e-8). Iterations are Jacobian evaluations (`njev`); the time to the
    target is measured by stopping the solver at the first function value with MSE <= 1e-4;
    the MSE at the budget is the best function value seen within `BUDGET` Jacobians."""
    scipy_optimize = optional("scipy.optimize")
    if scipy_optimize is None:
        return {"name": "scipy_lm", "skipped": "SciPy not installed"}
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    p0 = np.concatenate(
        [np.ravel(np.asarray(params[k], np.float64)) for k in ("W1", "b1", "W2", "b2")]
    )
    fun, jac = _lecture_residuals(xn, yn)

    def solve(stop_at_target: bool):
        njev = [0]
        best_within_budget = [np.inf]

        def counted_jac(p):
            njev[0] += 1
            return jac(p)

        def checked_fun(p):
            r = fun(p)
            cost = float(r @ r)
            if njev[0] <= BUDGET:
                best_within_budget[0] = min(best_within_budget[0], cost)
            if stop_at_target and cost <= TARGET:
                raise _Reached(njev[0])
            return r

        try:
            out = scipy_optimize.least_squares(checked_fun, p0, jac=counted_jac, method="lm")
        except _Reached as e:
            out = e.args[0]
        return out, best_within_budget[0]

    # the solve to the target is cheap (tens of milliseconds): many repeats; the full solve
    # (thousands of iterations at float64 precision, seconds) `slow_repeats` times
    best_full, full, at_budget = float("inf"), None, None
    for _ in range(mode.slow_repeats):
        t0 = time.perf_counter()
        full, at_budget = solve(False)
        best_full = min(best_full, time.perf_counter() - t0)
    best_target, to_target = float("inf"), None
    for _ in range(mode.repeats + 2):
        t0 = time.perf_counter()
        to_target, _ = solve(True)
        best_target = min(best_target, time.perf_counter() - t0)
    assert full is not None
    residuals = fun(full.x)
    return {
        "name": "scipy_lm",
        "label": "SciPy least_squares(method='lm'), MINPACK, float64, analytic Jacobian",
        "via": "SciPy",
        "iterations": int(full.njev),
        "function_evaluations": int(full.nfev),
        "run_s": best_full,
        "per_iteration_s": best_full / max(int(full.njev), 1),
        "iterations_to_target": to_target if isinstance(to_target, int) else None,
        "time_to_target_s": best_target if isinstance(to_target, int) else None,
        "final_mse_at_budget": at_budget,
        "final_mse": float(residuals @ residuals),
        "status": full.message,
    }


# -- the benchmark -----------------------------------------------------------------------------


def _guard(
    records: list[dict[str, Any]], name: str, fn: Callable[..., dict[str, Any]], *args: Any
) -> None:
    """Append `fn(*args)`, or its error: one runner failing must not lose the others' figures."""
    try:
        records.append(fn(*args))
    except Exception as e:
        records.append({"name": name, "error": f"{type(e).__name__}: {e}"})


def _target_check(
    mode: Mode, model: Any, x: Any, y: Any, by_name: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """LM's time to MSE <= 1e-4 over L-BFGS's: each a warm `fit` of exactly the steps it needs
    (from its history), timed alternately; the ratio of the minimums is the verdict."""
    name = (
        f"fit(optimizer='lm') time to MSE <= 1e-4 at most {RATIO_TARGET}x fit(optimizer='lbfgs')'s"
    )
    k_lm = by_name.get("lm", {}).get("iterations_to_target")
    k_lbfgs = by_name.get("lbfgs", {}).get("iterations_to_target")
    if not (k_lm and k_lbfgs):
        return check(
            name, None, f"<= {RATIO_TARGET}", False, 14, how="a solver did not reach the target"
        ), {}
    before = compile_count()
    lm = _fit(model, x, y, "lm", k_lm)
    lbfgs = _fit(model, x, y, "lbfgs", k_lbfgs)
    pairs = 20 if mode.quick else 50  # a pair takes a few tens of milliseconds
    p = paired(lm, lbfgs, pairs, min_time=5 * mode.min_time)
    # the compiled loops alone: each fit's program called again on its arguments
    programs = paired(_program_call(lm), _program_call(lbfgs), pairs, min_time=5 * mode.min_time)
    detail = {
        **p,
        "iterations": {"lm": k_lm, "lbfgs": k_lbfgs},
        "program_lm_s": programs["a_min_s"],
        "program_lbfgs_s": programs["b_min_s"],
        "program_only": programs["min_ratio"],
        "compiles": delta(compile_count(), before),
    }
    result = check(
        name,
        p["min_ratio"],
        f"<= {RATIO_TARGET}",
        p["min_ratio"] <= RATIO_TARGET,
        14,
        how=f"warm fit calls of {k_lm} LM steps and {k_lbfgs} L-BFGS steps (each solver's steps "
        f"to the target, from its history), {p['pairs']} interleaved pairs, ratio of the minimums "
        f"({detail['compiles']} programs compiled while timing)",
        interleaved=p["ratio"],
        program_only=detail["program_only"],
    )
    return result, detail


def _fit_vs_direct(
    mode: Mode, model: Any, x: Any, y: Any, direct: Callable[[], Any] | None
) -> dict[str, Any]:
    """`BUDGET` LM steps through `fit` against the same driven directly, interleaved: what the
    engine adds (its call's argument preparation; in the compiled loop the padding of N to its
    size bucket, whole chunks of steps, the guards and the loss record)."""
    if direct is None:
        return {}
    call = _fit(model, x, y, "lm", BUDGET)
    program = _program_call(call)
    pairs = 10 if mode.quick else 30
    p = paired(call, direct, pairs, min_time=2 * mode.min_time)
    q = paired(program, direct, pairs, min_time=2 * mode.min_time)
    return {
        "steps": BUDGET,
        "fit_over_direct": p["min_ratio"],
        "interleaved": p["ratio"],
        "program_over_direct": q["min_ratio"],
        "fit_min_s": p["a_min_s"],
        "program_min_s": q["a_min_s"],
        "direct_min_s": p["b_min_s"],
        "pairs": p["pairs"],
    }


def run(mode: Mode) -> dict[str, Any]:
    """Every runner on the lecture problem, and the issue-14 target check (see the module)."""
    x, y, params, source = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    records: list[dict[str, Any]] = []
    fit_runs: list[tuple[str, str, Any, int]] = [
        ("lm", "fit(optimizer='lm'): LevenbergMarquardt() (3 dampings x 4 step lengths, "
         "Cholesky)", "lm", BUDGET),
        ("gauss_newton", "fit(optimizer='gauss_newton'): GaussNewton() (damping 1e-5, 16 step "
         "lengths)", "gauss_newton", BUDGET),
        ("lbfgs", "fit(optimizer='lbfgs'): optax.lbfgs, zoom line search", "lbfgs", LBFGS_STEPS),
    ]  # fmt: skip
    if not mode.quick:
        fit_runs += [
            ("lm_dampings_only", "fit(optimizer=LevenbergMarquardt(step_lengths=1)): 3 "
             "dampings, full steps", LevenbergMarquardt(step_lengths=1), BUDGET),
            ("lm_trainlm", "fit(optimizer=LevenbergMarquardt(dampings=1, step_lengths=1)): "
             "trainlm's schedule", LevenbergMarquardt(dampings=1, step_lengths=1), BUDGET),
            ("lm_svd", "fit(optimizer=LevenbergMarquardt(linear_solver='svd'))",
             LevenbergMarquardt(linear_solver="svd"), BUDGET),
        ]  # fmt: skip
    for name, label, opt, steps in fit_runs:
        _guard(records, name, fit_runner, mode, name, label, opt, model, x, y, steps)
    by_name = {r["name"]: r for r in records}
    target, detail = _target_check(mode, model, x, y, by_name)

    direct: list[tuple[str, str, Any, int]] = [
        ("lm_direct", "LevenbergMarquardt() driven directly (own lax.scan)", LevenbergMarquardt(),
         BUDGET)
    ]  # fmt: skip
    if not mode.quick:
        direct.append(
            (
                "lbfgs_direct",
                "optax.lbfgs through the Solver interface, driven directly",
                resolve_solver("lbfgs")[0],
                LBFGS_STEPS,
            )
        )
    calls: dict[str, Callable[[], Any]] = {}
    for name, label, solver, steps in direct:
        _guard(records, name, direct_runner, mode, name, label, solver, model, x, y, steps, calls)
    fit_vs_direct = _fit_vs_direct(mode, model, x, y, calls.get("lm_direct"))
    if mode.quick:
        records.append({"name": "optimistix", "skipped": "full mode only"})
    else:
        optx, lineax = optional("optimistix"), optional("lineax")
        if optx is None or lineax is None:
            records.append({"name": "optimistix", "skipped": "optimistix/lineax not installed"})
        else:
            normal = lineax.Normal(lineax.Cholesky())
            for name, label, solver in [
                ("optimistix_lm_qr", "optimistix LevenbergMarquardt (lineax QR, its default)",
                 optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)),
                ("optimistix_lm_cholesky", "optimistix LevenbergMarquardt (lineax "
                 "Normal(Cholesky))", optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8,
                                                              linear_solver=normal)),
                ("optimistix_gauss_newton", "optimistix GaussNewton (its defaults: no damping)",
                 optx.GaussNewton(rtol=1e-8, atol=1e-8)),
            ]:  # fmt: skip
                _guard(
                    records, name, optimistix_runner, mode, name, label, solver, x, y, params, 300
                )
    _guard(records, "scipy_lm", scipy_runner, mode, x, y, params)

    by_name = {r["name"]: r for r in records}
    lm, lbfgs, sp = (by_name.get(n, {}) for n in ("lm", "lbfgs", "scipy_lm"))
    return {
        "title": "Second-order least squares on the lecture problem (issue 14)",
        "data": f"N=200, 1-16-1 tanh, lecture init (source: {source}), float32 unless noted",
        "target_mse": TARGET,
        "budget_iterations": BUDGET,
        "initial_mse": mse_of(params, x, y),
        "runners": records,
        "time_to_target_check": detail,
        "lm_over_lbfgs_time_to_target": ratio(
            lm.get("time_to_target_s"), lbfgs.get("time_to_target_s")
        ),
        "lm_over_scipy_time_to_target": ratio(
            lm.get("time_to_target_s"), sp.get("time_to_target_s")
        ),
        "fit_vs_direct": fit_vs_direct,
        "checks": [target],
    }


if __name__ == "__main__":
    import argparse
    import json

    from ._cli import _clean

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, fewer runners")
    args = parser.parse_args()
    print(json.dumps(_clean(run(Mode(args.quick))), indent=2))
