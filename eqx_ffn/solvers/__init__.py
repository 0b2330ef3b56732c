"""Solvers: the `Solver` interface the engine talks to, optax's optimizers and L-BFGS behind it
(`OptaxSolver`), and the least-squares solvers (`LevenbergMarquardt`, `GaussNewton`) with their
linear algebra.

The public names are re-exported by `eqx_ffn`; import them from there.
"""
