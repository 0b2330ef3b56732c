"""Second-order least squares on the lecture's problem (REFERENCE.md section 1, lecture init).

Levenberg-Marquardt and Gauss-Newton (`eqx_ffn._least_squares`), L-BFGS (`optax.lbfgs` through
the same `Solver` interface), optimistix's Levenberg-Marquardt and Gauss-Newton (when installed)
and SciPy's MINPACK `least_squares(method="lm")` (float64, analytic Jacobian) as the external
anchor. Per runner: iterations and time to MSE <= 1e-4, time per iteration, final MSE after a
fixed budget of iterations. Compile time is excluded (every program is compiled before it is
timed); times are minimums over repeats.

`least_squares_benchmark()` returns the figures; `python -m benchmarks.least_squares [--quick]`
prints them as JSON.
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
from eqx_ffn._fit import split_model
from eqx_ffn._least_squares import GaussNewton, LevenbergMarquardt
from eqx_ffn._losses import resolve_loss
from eqx_ffn._objective import Objective
from eqx_ffn._solvers import resolve_solver

from ._common import Mode, environment, first_reach, lecture_data, mse_of, optional, ratio
from .lecture import _paired

TARGET = 1e-4  # MSE
BUDGET = 100  # iterations, for the final MSE of every runner
LBFGS_STEPS = 1000  # L-BFGS needs about 300 to reach TARGET

# -- eqx_ffn solvers, driven as the engine drives them -----------------------------------------


def _objective(model: Any) -> Objective:
    _, frozen, static = split_model(model)
    return Objective(resolve_loss("mse"), frozen, static, l1=0.0, l2=0.0, tol=0.0)


def compile_run(solver: Any, model: Any, x: Any, y: Any, steps: int) -> Callable[[], Any]:
    """A compiled `() -> (params, losses)`: `steps` engine steps of `solver` in one `lax.scan`,
    as the training engine runs them (the loss before each update is recorded; a step that
    reports convergence, or a non-finite loss, ends the run: later steps are masked)."""
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
    out = jax.block_until_ready(fn())  # warm
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best, out


def _final_mse(model: Any, params: Any, x: Any, y: Any) -> float:
    _, frozen, static = split_model(model)
    return mse_of(eqx.combine(params, frozen, static).to_params(), x, y)


def solver_runner(
    mode: Mode, name: str, label: str, solver: Any, model: Any, x: Any, y: Any, steps: int
) -> dict[str, Any]:
    """One eqx_ffn solver: a `steps`-step run timed (minimum over repeats), its loss trace."""
    t0 = time.perf_counter()
    call = compile_run(solver, model, x, y, steps)
    compile_s = time.perf_counter() - t0
    run_s, (params, losses) = _min_time(call, mode.repeats)
    losses = np.asarray(losses, np.float64)
    reach = first_reach(losses, TARGET)
    at_budget = _final_mse(model, params, x, y) if steps == BUDGET else float(losses[BUDGET])
    return {
        "name": name,
        "label": label,
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

    best_full, full, at_budget = float("inf"), None, None
    best_target, to_target = float("inf"), None
    for _ in range(mode.slow_repeats + 1):
        t0 = time.perf_counter()
        full, at_budget = solve(False)
        best_full = min(best_full, time.perf_counter() - t0)
        t0 = time.perf_counter()
        to_target, _ = solve(True)
        best_target = min(best_target, time.perf_counter() - t0)
    assert full is not None
    residuals = fun(full.x)
    return {
        "name": "scipy_lm",
        "label": "SciPy least_squares(method='lm'), MINPACK, float64, analytic Jacobian",
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


def least_squares_benchmark(quick: bool = False) -> dict[str, Any]:
    """Every runner on the lecture problem, and LM's time to MSE <= 1e-4 against L-BFGS's.

    The ratio is measured directly: each solver compiled for exactly its iterations to the
    target, the two timed alternately (`benchmarks.lecture._paired`), ratio of the minimums.
    """
    mode = Mode(quick)
    x, y, params, source = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    lbfgs = resolve_solver("lbfgs")
    eqx_runs = [
        ("lm", "eqx_ffn LevenbergMarquardt() (3 dampings x 4 step lengths, Cholesky)",
         LevenbergMarquardt(), BUDGET),
        ("lm_dampings_only", "LevenbergMarquardt(step_lengths=1): 3 dampings, full steps",
         LevenbergMarquardt(step_lengths=1), BUDGET),
        ("lm_trainlm", "LevenbergMarquardt(dampings=1, step_lengths=1): trainlm's schedule",
         LevenbergMarquardt(dampings=1, step_lengths=1), BUDGET),
        ("lm_svd", "LevenbergMarquardt(linear_solver='svd')",
         LevenbergMarquardt(linear_solver="svd"), BUDGET),
        ("gauss_newton", "eqx_ffn GaussNewton() (damping 1e-5, 16 step lengths)",
         GaussNewton(), BUDGET),
        ("lbfgs", "optax.lbfgs() through the Solver interface (as fit(optimizer='lbfgs'))",
         lbfgs, LBFGS_STEPS),
    ]  # fmt: skip
    records: list[dict[str, Any]] = []
    for name, label, solver, steps in eqx_runs:
        try:
            records.append(solver_runner(mode, name, label, solver, model, x, y, steps))
        except Exception as e:  # one runner failing must not lose the others' figures
            records.append({"name": name, "error": f"{type(e).__name__}: {e}"})
    optx = optional("optimistix")
    lineax = optional("lineax")
    if optx is not None and lineax is not None:
        normal = lineax.Normal(lineax.Cholesky())
        for name, label, solver in [
            ("optimistix_lm_qr", "optimistix LevenbergMarquardt (lineax QR, its default)",
             optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)),
            ("optimistix_lm_cholesky", "optimistix LevenbergMarquardt (lineax Normal(Cholesky))",
             optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8, linear_solver=normal)),
            ("optimistix_gauss_newton", "optimistix GaussNewton (its defaults: no damping)",
             optx.GaussNewton(rtol=1e-8, atol=1e-8)),
        ]:  # fmt: skip
            try:
                records.append(optimistix_runner(mode, name, label, solver, x, y, params, 300))
            except Exception as e:
                records.append({"name": name, "error": f"{type(e).__name__}: {e}"})
    else:
        records.append({"name": "optimistix", "skipped": "optimistix/lineax not installed"})
    records.append(scipy_runner(mode, x, y, params))

    by_name = {r["name"]: r for r in records}
    check: dict[str, Any] = {"name": "LM time to MSE <= 1e-4 at most 0.5x L-BFGS's"}
    k_lm = by_name.get("lm", {}).get("iterations_to_target")
    k_lbfgs = by_name.get("lbfgs", {}).get("iterations_to_target")
    if k_lm and k_lbfgs:
        lm_call = compile_run(LevenbergMarquardt(), model, x, y, k_lm)
        lbfgs_call = compile_run(lbfgs, model, x, y, k_lbfgs)
        reached = [_final_mse(model, c()[0], x, y) for c in (lm_call, lbfgs_call)]
        paired = _paired(lm_call, lbfgs_call, mode)
        check.update(
            value=paired["min_ratio"],
            target="<= 0.5",
            passed=paired["min_ratio"] <= 0.5,
            interleaved_median_ratio=paired["ratio"],
            lm_median_s=paired["a_s"],
            lbfgs_median_s=paired["b_s"],
            iterations={"lm": k_lm, "lbfgs": k_lbfgs},
            mse_reached={"lm": reached[0], "lbfgs": reached[1]},
            how=f"each compiled for exactly its iterations to the target; {paired['pairs']} "
            "interleaved pairs, ratio of the minimums",
        )
    else:
        check.update(value=None, passed=False, note="a runner did not reach the target")
    lm = by_name.get("lm", {})
    return {
        "title": "Second-order least squares on the lecture problem",
        "data": f"N=200, 1-16-1 tanh, lecture init (source: {source}), float32 unless noted",
        "target_mse": TARGET,
        "budget_iterations": BUDGET,
        "initial_mse": mse_of(params, x, y),
        "runners": records,
        "lm_over_lbfgs_time_to_target": ratio(
            lm.get("time_to_target_s"), by_name.get("lbfgs", {}).get("time_to_target_s")
        ),
        "checks": [check],
        "mode": mode.name,
        "env": environment(),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    print(json.dumps(least_squares_benchmark(args.quick), indent=2, default=str))
