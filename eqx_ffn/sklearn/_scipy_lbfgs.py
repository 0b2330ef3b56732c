"""The estimators' `solver="lbfgs"`: optax's L-BFGS stopping as SciPy's L-BFGS-B does.

scikit-learn's `MLPRegressor(solver="lbfgs")` runs `scipy.optimize.minimize(method="L-BFGS-B")`
with `gtol=tol` and SciPy's default `ftol`; `SCIPY_LBFGS` applies the same two stopping tests
inside `eqx_ffn.fit`'s compiled loop. SciPy itself is not imported.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ..solvers._solver import Solver

__all__ = ["SCIPY_FTOL", "SCIPY_LBFGS"]

SCIPY_FTOL = 2.220446049250313e-09
"""SciPy's default `ftol` for L-BFGS-B (`factr=1e7` times float64 epsilon), which
scikit-learn's `solver="lbfgs"` uses."""


class _SciPyLBFGS(Solver):
    """`optax.lbfgs()` stopping as SciPy's L-BFGS-B (which scikit-learn's `solver="lbfgs"` runs)
    does.

    Before an update, it stops when the largest gradient entry is at most `tol` (SciPy's
    `gtol`), or the last iteration decreased the loss by at most
    `SCIPY_FTOL * max(|f_old|, |f|, 1)`; the step then reports `converged` and applies no
    update, and the engine stops inside the compiled loop. Iterations run = steps - 1 when it
    converged.
    """

    tx: optax.GradientTransformationExtraArgs = eqx.field(static=True)

    @property
    def full_batch_only(self) -> bool:
        return True

    @property
    def convergence_test(self) -> bool:
        return True

    @property
    def flat_params(self) -> bool:
        return True

    def init(self, params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return self.tx.init(params), jnp.asarray(jnp.inf, dtype)

    def step(self, objective, params, state, batch):
        opt_state, previous = state

        def value_fn(p):
            return objective(p, batch)

        loss, grads = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
        gmax = optax.tree.max(jax.tree.map(jnp.abs, grads))
        scale = jnp.maximum(jnp.maximum(jnp.abs(previous), jnp.abs(loss)), 1.0)
        stalled = jnp.isfinite(previous) & ((previous - loss) <= SCIPY_FTOL * scale)
        done = (gmax <= objective.tol) | stalled
        updates, opt_state = self.tx.update(
            grads, opt_state, params, value=loss, grad=grads, value_fn=value_fn
        )
        new_params = jax.tree.map(
            lambda p, u: jnp.where(done, p, p + jnp.asarray(u).astype(p.dtype)), params, updates
        )
        return new_params, (opt_state, jnp.asarray(loss).astype(previous.dtype)), loss, done


SCIPY_LBFGS = _SciPyLBFGS(optax.lbfgs())
"""The one instance the estimators pass to `eqx_ffn.fit` (one compiled program per shape)."""
