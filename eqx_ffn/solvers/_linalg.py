"""The linear algebra of the least-squares solvers: residuals and their Jacobian, the
linearised problem of one step (`Linearised`) in its three forms (Cholesky, SVD, matrix-free
conjugate gradients), and the objective at trial points."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg as jsla
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ..training._flat import ravel_tree

PyTree = Any

_HIGHEST = lax.Precision.HIGHEST  # J^T J in full precision (GPUs default to TF32 otherwise)


# -- residuals and Jacobian -------------------------------------------------------------------


def loss_dtype(flat: Array) -> jnp.dtype:
    return jnp.promote_types(flat.dtype, jnp.float32)


def _residual_fn(objective: Any, unravel: Any, batch: Any):
    def fn(p: Array) -> Array:
        return objective.data_residuals(unravel(p), batch)

    return fn


def dense_jacobian(
    objective: Any, flat: Float[Array, " P"], unravel: Any, batch: Any
) -> Float[Array, "M P"]:
    """`d data_residuals / dp`, shape `(N * out_size, P)`, one sample at a time.

    The residuals are per sample, `r_i = s_i * (model(x_i) - y_i)` with
    `s_i = sqrt(w_i / (sum(w) * out_size))` (as `Objective.data_residuals` defines them), so the
    Jacobian is built from per-sample Jacobians of the model's output: reverse mode (`out_size`
    vector-Jacobian products a sample) when `out_size <= P`, forward mode otherwise. That costs
    about `min(out_size, P)` passes over the batch, where `jax.jacfwd` of the whole residual
    vector costs `P` and `jax.jacrev` `N * out_size`.
    """
    x, _, w = batch
    dtype = loss_dtype(flat)

    def pred_one(p: Array, xi: Array) -> Array:
        return objective.predictions(unravel(p), xi[None])[0]

    out_size = jax.eval_shape(pred_one, flat, x[0]).shape[0]
    one = jax.jacrev(pred_one) if out_size <= flat.size else jax.jacfwd(pred_one)
    jac = jax.vmap(one, in_axes=(None, 0))(flat, x).astype(dtype)  # (N, out, P)
    wt = w.astype(dtype)
    scale = jnp.sqrt(wt / (jnp.sum(w) * out_size))
    return (jac * scale[:, None, None]).reshape(-1, flat.size)


def problem_sizes(objective: Any, params: PyTree, batch: Any) -> tuple[int, int]:
    """`(M, P)`: residual rows and parameters, from shapes only."""
    flat, unravel = ravel_tree(params)
    r = jax.eval_shape(_residual_fn(objective, unravel, batch), flat)
    return int(r.shape[0]), int(flat.size)


def dense_bytes(m: int, p: int, method: str, n_solves: int, itemsize: int) -> int:
    """Bytes of the dense path's largest arrays for `M` residuals and `P` parameters: `J`, and
    `J^T J` with one Cholesky factor per damping value (`"cholesky"`), or the augmented
    Jacobian with its SVD factors (`"svd"`)."""
    if method == "svd":
        return itemsize * (2 * (m + p) * p + 2 * p * p)
    return itemsize * (m * p + (1 + n_solves) * p * p)


class Linearised:
    """What one step knows about `f` at `p`: `f`, the half gradient `g = J^T r + l2 mask p`, and
    `A = J^T J + l2 diag(mask)` in one of three forms:

    - `"cholesky"`: `A` itself (`jtj`); each damped system is solved by a Cholesky factorisation
      (a non-positive-definite `A + mu I` in float32 gives NaN, and that try is rejected);
    - `"svd"`: the SVD of the augmented Jacobian `[J; diag(sqrt(l2 mask))] = U diag(s) V^T`
      (`s`, `vt` and `c = U^T [r; sqrt(l2 mask) p]`): every damping value for the price of one
      factorisation, and no squaring of the condition number;
    - matrix-free: `jvp(v) = J v` and `vjp(u) = J^T u`; systems solved by conjugate gradients.
    """

    def __init__(self, f, g, pen, *, jtj=None, svd=None, jvp=None, vjp=None):
        self.f, self.g, self.pen = f, g, pen
        self.jtj, self.svd, self.jvp, self.vjp = jtj, svd, jvp, vjp

    @property
    def dense(self) -> bool:
        return self.jtj is not None or self.svd is not None

    def apply(self, v: Array) -> Array:
        """`A v`."""
        if self.jtj is not None:
            return jnp.dot(self.jtj, v, precision=_HIGHEST)
        if self.svd is not None:
            s, vt, _ = self.svd
            return jnp.dot(vt.T, s * s * jnp.dot(vt, v, precision=_HIGHEST), precision=_HIGHEST)
        assert self.jvp is not None and self.vjp is not None
        return self.vjp(self.jvp(v)) + self.pen * v

    def max_diag(self) -> Array:
        """`max(diag(A))` (dense forms only)."""
        if self.jtj is not None:
            return jnp.max(jnp.diag(self.jtj))
        assert self.svd is not None
        s, vt, _ = self.svd
        return jnp.max(jnp.dot(s * s, vt * vt, precision=_HIGHEST))

    def solve(self, mu: Array, cg_max_steps: int) -> Array:
        """`d = -(A + mu I)^-1 g`."""
        if self.jtj is not None:
            return _cholesky_solve(
                self.jtj + mu * jnp.eye(self.g.size, dtype=self.g.dtype), -self.g
            )
        if self.svd is not None:
            s, vt, c = self.svd
            coef = s * c / jnp.where(s * s + mu > 0, s * s + mu, 1)
            return -jnp.dot(vt.T, coef, precision=_HIGHEST)

        def matvec(v: Array) -> Array:
            return self.apply(v) + mu * v

        tol = float(np.sqrt(np.finfo(self.g.dtype).eps))
        d, _ = jsla.cg(matvec, -self.g, tol=tol, maxiter=cg_max_steps)
        return d

    def model_decrease(self, delta: Array) -> Array:
        """`f(p) - m(p + delta)` for the Gauss-Newton model `m(p + d) = f + 2 g.d + d.A.d`."""
        return -(2 * jnp.dot(self.g, delta) + jnp.dot(delta, self.apply(delta)))


def _cholesky_solve(a: Array, b: Array) -> Array:
    """`a^-1 b` for a symmetric positive definite `a` (NaN where the factorisation fails).

    At the matrix's own size, not padded to a larger block (faster to run and no slower to
    compile; see benchmarks/BENCHMARKS.md).
    """
    chol = jnp.linalg.cholesky(a)
    return jax.scipy.linalg.cho_solve((chol, True), b)


def linearise(
    objective: Any, params: PyTree, batch: Any, method: str
) -> tuple[Linearised, Array, Any]:
    """`(lin, flat, unravel)` at `params`; `method` is `"cholesky"`, `"svd"` or `"matrix_free"`."""
    flat, unravel = ravel_tree(params)
    dtype = loss_dtype(flat)
    mask, _ = ravel_tree(objective.penalty_mask(params))
    pen = jnp.asarray(objective.l2, dtype) * mask.astype(dtype)
    fn = _residual_fn(objective, unravel, batch)
    flat_d = flat.astype(dtype)
    f_pen = jnp.sum(pen * flat_d * flat_d)
    if method == "matrix_free":
        r, lin = jax.linearize(fn, flat)
        lin_t = jax.linear_transpose(lin, flat)

        def jvp(v: Array) -> Array:
            return lin(v.astype(flat.dtype)).astype(dtype)

        def vjp(u: Array) -> Array:
            return lin_t(u.astype(r.dtype))[0].astype(dtype)

        r = r.astype(dtype)
        g = vjp(r) + pen * flat_d
        return Linearised(jnp.sum(r * r) + f_pen, g, pen, jvp=jvp, vjp=vjp), flat, unravel
    r = fn(flat).astype(dtype)
    jac = dense_jacobian(objective, flat, unravel, batch)
    g = jnp.dot(r, jac, precision=_HIGHEST) + pen * flat_d
    f = jnp.sum(r * r) + f_pen
    if method == "cholesky":
        jtj = jnp.dot(jac.T, jac, precision=_HIGHEST) + jnp.diag(pen)
        return Linearised(f, g, pen, jtj=jtj), flat, unravel
    root = jnp.sqrt(pen)
    j_aug = jnp.concatenate([jac, jnp.diag(root)])
    r_aug = jnp.concatenate([r, root * flat_d])
    u, s, vt = jnp.linalg.svd(j_aug, full_matrices=False)
    c = jnp.dot(u.T, r_aug, precision=_HIGHEST)
    return Linearised(f, g, pen, svd=(s, vt, c)), flat, unravel


def value_at(objective: Any, unravel: Any, batch: Any, pen: Array, p: Array) -> Array:
    """`f(p)`, computed as `_linearise` computes it (so that accepting a step is consistent)."""
    r = objective.data_residuals(unravel(p), batch)
    dtype = pen.dtype
    r = r.astype(dtype)
    pd = p.astype(dtype)
    return jnp.sum(r * r) + jnp.sum(pen * pd * pd)
