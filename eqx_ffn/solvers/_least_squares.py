"""Second-order least-squares solvers: Levenberg-Marquardt and Gauss-Newton.

Both minimise the `loss="mse"` objective of a fit,

    f(p) = sum(r(p)**2) + l2 * sum(mask * p**2),

with `r = objective.data_residuals(params, batch)` (so `sum(r**2)` is the weighted MSE) and
`mask` the penalised weights (`objective.penalty_mask`). The L2 term is handled analytically:
`l2 * diag(mask)` joins `J^T J` and `l2 * mask * p` the gradient, so `J` has only the data rows
(the SVD path appends `diag(sqrt(l2 * mask))` rows itself, the same matrix `J^T J + l2 diag`).

One engine step is one Jacobian and one linear algebra pass, followed by several trial points
evaluated at once (vmapped): damping values times step lengths for Levenberg-Marquardt, step
lengths for Gauss-Newton. A step that does not decrease `f` is rejected (the parameters stay).
Each step is pure and traceable, with no Python control flow on traced values, so the engine
can scan it and vmap it over ensemble members.

Why not optimistix: on the lecture problem its `LevenbergMarquardt` (lineax QR) needs more
steps, each dearer, to the same MSE (steps and timings: benchmarks/BENCHMARKS.md, measured by
`benchmarks/least_squares.py`); its `GaussNewton` (undamped) diverges there; and its solver
state holds a jaxpr, which the engine's scan carry cannot hold as it is.

Memory: the dense path holds `J` (`N * out_size` by `P`) and a few `P x P` matrices. When these
exceed `jacobian_budget` bytes (decided at trace time, shapes are static) the step goes
matrix-free: the normal equations are solved by conjugate gradients through Jacobian-vector
products (`jax.linearize` and its transpose), never forming `J`.
"""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._validation import check_int, check_number, unknown_name
from ..training._flat import ravel_tree
from ._linalg import dense_bytes, linearise, loss_dtype, problem_sizes, value_at
from ._solver import Solver, SolverStep

PyTree = Any

LEAST_SQUARES_SOLVERS: tuple[str, ...] = ("levenberg_marquardt", "lm", "gauss_newton")
"""Names of the least-squares solvers (`"lm"` is `"levenberg_marquardt"`)."""

LINEAR_SOLVERS: tuple[str, ...] = ("cholesky", "svd")
"""How the dense path solves the (damped) normal equations."""


class _LeastSquares(Solver):
    """What both solvers share: full batch, `loss="mse"`, the memory budget, the trial step
    lengths and the convergence tests."""

    step_lengths: int = eqx.field(static=True, default=4, kw_only=True)
    linear_solver: str = eqx.field(static=True, default="cholesky", kw_only=True)
    jacobian_budget: int = eqx.field(static=True, default=2**30, kw_only=True)
    cg_max_steps: int = eqx.field(static=True, default=100, kw_only=True)
    tol: float = eqx.field(static=True, default=1e-7, kw_only=True)

    def __check_init__(self):
        check_int(self.step_lengths, "step_lengths", 1)
        if self.linear_solver not in LINEAR_SOLVERS:
            raise unknown_name(
                "linear_solver",
                self.linear_solver,
                LINEAR_SOLVERS,
                " ('cholesky': fast; 'svd': exact to float32 precision, slower on CPUs)",
            )
        check_int(self.jacobian_budget, "jacobian_budget", 0)
        check_int(self.cg_max_steps, "cg_max_steps", 1)
        if self.tol != 0:
            check_number(self.tol, "tol", 0.0, 1.0)

    full_batch_only = True
    least_squares = True
    convergence_test = True
    flat_params = True  # they work on the raveled parameter vector anyway

    @property
    def default_tol(self) -> float:
        return self.tol

    @property
    def _n_solves(self) -> int:
        return 1

    def method(self, objective: Any, params: PyTree, batch: Any) -> str:
        """How a step on this problem solves its linear systems: `linear_solver`, or
        `"matrix_free"` when the dense path's arrays (`dense_bytes`) would exceed
        `jacobian_budget`. Decided from shapes only, so at trace time."""
        m, p = problem_sizes(objective, params, batch)
        flat, _ = ravel_tree(params)
        itemsize = jnp.dtype(loss_dtype(flat)).itemsize
        need = dense_bytes(m, p, self.linear_solver, self._n_solves, itemsize)
        return "matrix_free" if need > self.jacobian_budget else self.linear_solver

    def _linearise(self, objective: Any, params: PyTree, batch: Any):
        return linearise(objective, params, batch, self.method(objective, params, batch))

    def _try(self, objective, unravel, batch, lin, flat, directions):
        """`f` at `flat + alpha * d` for each direction `d` (rows of `directions`) and each step
        length `alpha` in `1, 1/2, ..., 1/2**(step_lengths - 1)`, evaluated at once:
        shape `(directions, step_lengths)`; NaN or inf where the model overflows."""
        dtype = lin.f.dtype
        alphas = 0.5 ** jnp.arange(self.step_lengths, dtype=dtype)
        value = functools.partial(value_at, objective, unravel, batch, lin.pen)

        def at(d: Array, a: Array) -> Array:
            return value(flat + (a * d).astype(flat.dtype))

        inner = jax.vmap(at, in_axes=(None, 0))
        return alphas, jax.vmap(inner, in_axes=(0, None))(directions, alphas)

    def _converged(self, objective, lin, flat, delta, f_new, accepted) -> Array:
        """MINPACK-style tests against the fit's `tol` (all relative, so free of units):

        - gradient: `max|grad f| <= tol * f` (this also fires at an exact fit, `f == 0`);
        - step: an accepted step `d` with `|d| <= tol * (|p| + tol)`;
        - decrease: an accepted step whose actual and predicted decreases of `f` are both
          `<= tol * f`.
        """
        f = lin.f
        tol = jnp.asarray(objective.tol, f.dtype)
        grad_ok = jnp.max(jnp.abs(2 * lin.g)) <= tol * f
        p_norm = jnp.linalg.norm(flat.astype(f.dtype))
        step_ok = accepted & (jnp.linalg.norm(delta) <= tol * (p_norm + tol))
        predicted = lin.model_decrease(delta)
        decrease_ok = accepted & (f - f_new <= tol * f) & (predicted <= tol * f)
        return grad_ok | step_ok | decrease_ok


class LevenbergMarquardt(_LeastSquares):
    """Levenberg-Marquardt for `loss="mse"` fits (full batch, sample weights, an `l2` penalty).

    Minimises `f(p) = sum(r**2) + l2 * sum(mask * p**2)`, where `r` are the data residuals
    (`sum(r**2)` is the weighted MSE) and `mask` marks the penalised weights. Each step computes
    the Jacobian `J` of `r` once, and the damped Gauss-Newton steps
    `d(mu) = -(J^T J + l2 diag(mask) + mu I)^-1 (J^T r + l2 mask p)` for `dampings` values
    `mu, 10 mu, 100 mu` (one Cholesky factorisation each, batched). For each it tries the step
    lengths `1, 1/2, ..., 1/2**(step_lengths - 1)`; all these trial points are evaluated at
    once (vmapped). It takes the least damped `d(mu)` whose best step length decreases `f`:
    MATLAB's `trainlm` raises `mu` until a step decreases the error; this makes up to
    `dampings` of those tries in one step, each with a short line search. Then `mu` shrinks by
    `mu_decrease`. When nothing decreases `f` the parameters stay and `mu` grows by
    `mu_increase ** dampings`. `mu` applies to `f` as the fit reports it (a mean, not a sum, of
    squared errors).

    On the lecture problem (float32, CPU) the defaults reach MSE `1e-6` within 100 steps
    through `fit`, far fewer than one damping value with full steps (`trainlm`: `dampings=1,
    step_lengths=1`) needs; the step counts are in benchmarks/BENCHMARKS.md.

    Forming `J^T J` in float32 loses the smallest singular values of `J` to rounding, so the
    damping cannot usefully go below about `1e-6` of the largest curvature and the fit levels
    off near MSE `3e-8` to `1e-7` on the lecture problem. `linear_solver="svd"` factors `J`
    itself (one SVD serves every damping value) and goes on to `1e-12`, at a much higher cost
    per step on CPUs. In float64 the Cholesky path has no such floor in practice.

    Convergence (the step returns `converged=True`, the fit stops with
    `stop_reason="converged"`) against the fit's `tol`: a relative gradient
    `max|grad f| <= tol * f`, a relative step `|d| <= tol * (|p| + tol)`, actual and predicted
    relative decreases both `<= tol * f`, or `mu` driven to `mu_max` (no decreasing step
    exists at this precision).

    **Arguments** (keyword-only; the damping schedule is `trainlm`'s):

    - `mu`: initial damping, `1e-3`.
    - `mu_increase`: factor on a rejected try, `10`; `mu_decrease`: factor after an accepted
      step, `0.1`.
    - `mu_max`: upper bound on `mu`, `1e10`; `mu_min`: lower bound, `1e-20`.
    - `dampings`: damping values tried per step, `3`.
    - `step_lengths`: step lengths tried per damping value, `4`.
    - `linear_solver`: `"cholesky"` (default) or `"svd"` (see above).
    - `jacobian_budget`: bytes the dense path may use (`dense_bytes`: the Jacobian, and
      `J^T J` with its factors or the SVD factors), default 1 GiB. Above it a step solves the
      damped normal equations by conjugate gradients through Jacobian-vector products (at most
      `cg_max_steps`, default 100), never forming `J`.
    - `tol`: the `tol` a fit uses when given none, `1e-7`.

    ```python
    solver = LevenbergMarquardt()
    model, history = eqx_ffn.fit(model, x, y, optimizer=solver, steps=100)
    ```
    """

    mu: float = eqx.field(static=True, default=1e-3, kw_only=True)
    mu_increase: float = eqx.field(static=True, default=10.0, kw_only=True)
    mu_decrease: float = eqx.field(static=True, default=0.1, kw_only=True)
    mu_max: float = eqx.field(static=True, default=1e10, kw_only=True)
    mu_min: float = eqx.field(static=True, default=1e-20, kw_only=True)
    dampings: int = eqx.field(static=True, default=3, kw_only=True)

    def __check_init__(self):
        super().__check_init__()
        for name in ("mu", "mu_max", "mu_min"):
            check_number(getattr(self, name), name, 0.0)
        check_number(self.mu_increase, "mu_increase", 1.0)
        check_number(self.mu_decrease, "mu_decrease", 0.0, 1.0)
        if not self.mu_min <= self.mu <= self.mu_max:
            raise ValueError(
                f"Need mu_min <= mu <= mu_max; got mu_min={self.mu_min!r}, mu={self.mu!r}, "
                f"mu_max={self.mu_max!r}."
            )
        check_int(self.dampings, "dampings", 1)

    @property
    def _n_solves(self) -> int:
        return self.dampings

    def init(self, params: PyTree) -> dict[str, Array]:
        """`{"mu": mu}`, the damping, as a scalar of the loss dtype."""
        flat, _ = ravel_tree(params)
        return {"mu": jnp.asarray(self.mu, loss_dtype(flat))}

    def step(self, objective: Any, params: PyTree, state: Any, batch: Any):
        lin, flat, unravel = self._linearise(objective, params, batch)
        dtype = lin.f.dtype
        powers = jnp.arange(self.dampings, dtype=dtype)
        mus = state["mu"].astype(dtype) * jnp.asarray(self.mu_increase, dtype) ** powers
        directions = jax.vmap(lambda mu: lin.solve(mu, self.cg_max_steps))(mus)  # (dampings, P)
        alphas, f_try = self._try(objective, unravel, batch, lin, flat, directions)
        f_try = jnp.where(jnp.isfinite(f_try), f_try, jnp.inf)
        best = jnp.argmin(f_try, axis=1)  # the best step length for each damping value
        f_best = jnp.take_along_axis(f_try, best[:, None], axis=1)[:, 0]
        decrease = f_best < lin.f
        accepted = jnp.any(decrease)
        k = jnp.argmax(decrease)  # the least damped decreasing one
        delta = jnp.where(accepted, alphas[best[k]] * directions[k], 0)
        mu_next = jnp.where(accepted, mus[k] * self.mu_decrease, mus[-1] * self.mu_increase)
        mu_next = jnp.clip(mu_next, self.mu_min, self.mu_max).astype(dtype)
        stalled = ~accepted & (mus[-1] * self.mu_increase >= self.mu_max)
        converged = stalled | self._converged(objective, lin, flat, delta, f_best[k], accepted)
        new_params = unravel(flat + delta.astype(flat.dtype))
        return SolverStep(new_params, {"mu": mu_next}, lin.f, converged)


class GaussNewton(_LeastSquares):
    """Gauss-Newton with a fixed tiny damping and a backtracking line search, for `loss="mse"`.

    Each step solves the Gauss-Newton normal equations of `f(p) = sum(r**2) + l2 sum(mask p**2)`
    with a small fixed damping, `damping * max(diag(J^T J))` (default `damping=1e-5`: it only
    matters where `J` is nearly rank-deficient, as it is for a network at its random
    initialisation; without it the step is huge there and no step length helps), and tries the
    step lengths `1, 1/2, ..., 1/2**(step_lengths - 1)` at once (default 16), taking the
    longest with a sufficient decrease (Armijo, `armijo=1e-4`). A direction that is not finite
    (the factorisation failed in this precision) is replaced by steepest descent. When no step
    length decreases `f` the parameters stay and the step reports convergence: Gauss-Newton
    has nothing else to try. The other convergence tests are those of `LevenbergMarquardt`.
    The objective never increases, so the fit cannot diverge; on the lecture problem it levels
    off above Levenberg-Marquardt's floor (step counts: benchmarks/BENCHMARKS.md).

    On the matrix-free path (above `jacobian_budget`) the direction is the conjugate-gradient
    solution of the undamped normal equations after at most `cg_max_steps` iterations.

    **Arguments** (keyword-only): `damping`, `step_lengths`, `armijo`, and `linear_solver`,
    `jacobian_budget`, `cg_max_steps`, `tol` as for `LevenbergMarquardt`.

    ```python
    model, history = eqx_ffn.fit(model, x, y, optimizer=GaussNewton(), steps=100)
    ```
    """

    damping: float = eqx.field(static=True, default=1e-5, kw_only=True)
    armijo: float = eqx.field(static=True, default=1e-4, kw_only=True)
    step_lengths: int = eqx.field(static=True, default=16, kw_only=True)

    def __check_init__(self):
        super().__check_init__()
        if self.damping != 0:
            check_number(self.damping, "damping", 0.0)
        check_number(self.armijo, "armijo", 0.0, 1.0)

    def init(self, params: PyTree) -> None:
        return None

    def step(self, objective: Any, params: PyTree, state: Any, batch: Any):
        lin, flat, unravel = self._linearise(objective, params, batch)
        dtype = lin.f.dtype
        mu = self.damping * lin.max_diag() if lin.dense else jnp.zeros((), dtype)
        direction = lin.solve(mu, self.cg_max_steps)
        # A Cholesky factorisation that fails in this precision: steepest descent instead
        direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, -lin.g)
        alphas, f_try = self._try(objective, unravel, batch, lin, flat, direction[None])
        f_try = f_try[0]
        slope = 2 * jnp.dot(lin.g, direction)  # the directional derivative of f
        enough = jnp.isfinite(f_try) & (f_try <= lin.f + self.armijo * alphas * slope)
        ok = enough & (f_try < lin.f)
        accepted = jnp.any(ok)
        k = jnp.argmax(ok)  # the longest step that decreases f enough
        delta = jnp.where(accepted, alphas[k] * direction, 0)
        converged = ~accepted | self._converged(objective, lin, flat, delta, f_try[k], accepted)
        return SolverStep(unravel(flat + delta.astype(flat.dtype)), state, lin.f, converged)


# -- for the engine ---------------------------------------------------------------------------


def least_squares_solver(name: str) -> Solver:
    """The least-squares solver of this name with its defaults: `"levenberg_marquardt"` (or
    `"lm"`) or `"gauss_newton"`. A name (or its alias) always gives the same object."""
    if name not in LEAST_SQUARES_SOLVERS:
        raise unknown_name("optimizer", name, LEAST_SQUARES_SOLVERS)
    return _default_solver("levenberg_marquardt" if name == "lm" else name)


@functools.cache
def _default_solver(name: str) -> Solver:
    return LevenbergMarquardt() if name == "levenberg_marquardt" else GaussNewton()


_TITLES = {
    LevenbergMarquardt: "Levenberg-Marquardt",
    GaussNewton: "Gauss-Newton",
}


def check_least_squares(
    loss_name: str,
    l1: Any,
    batch_size: int | None,
    solver: str | Solver = "levenberg_marquardt",
) -> None:
    """Refuse, before compiling, what a least-squares solver cannot fit.

    **Arguments:** `loss_name` (the fit's loss name, `"custom"` for a callable), `l1` (a number
    or per-member array), `batch_size` (`None` for the full batch), and the `solver` (a name or
    a `Solver`, for the message).

    **Raises:** `ValueError` for a loss other than `"mse"`, a nonzero `l1`, or mini-batches.
    """
    if isinstance(solver, str):
        solver = least_squares_solver(solver)
    title = _TITLES.get(type(solver), type(solver).__name__)
    if loss_name != "mse":
        raise ValueError(
            f"{title} needs loss='mse' (got {loss_name!r}); use L-BFGS or Adam for other losses."
        )
    if np.any(np.asarray(l1) != 0):
        raise ValueError(
            f"{title} does not support an l1 penalty (got l1={l1!r}); use l2, or L-BFGS or "
            "Adam with l1."
        )
    if batch_size is not None:
        raise ValueError(
            f"{title} works on the full batch (got batch_size={batch_size!r}); use "
            "batch_size=None, or Adam for mini-batches."
        )
