"""The fitted map's Jacobian with respect to its input, and its linearisation at an operating
point: what system identification does with a fitted static map (gains, local linear models)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from .._validation import as_jax_array
from ..training._data import check_features, float_dtype, model_sizes


def _input_jacobian(model: Any):
    """`x -> d model(x) / dx` for one sample: forward mode when `in_size <= out_size` (one
    Jacobian-vector product per input), reverse mode otherwise (one per output)."""
    in_size, out_size = model_sizes(model)
    return jax.jacfwd(model) if in_size <= out_size else jax.jacrev(model)


@eqx.filter_jit
def _jacobian_batch(model: Any, x: Array) -> Array:
    return jax.vmap(_input_jacobian(model))(x)


@eqx.filter_jit
def _linearize_batch(model: Any, x: Array) -> tuple[Array, Array]:
    return jax.vmap(model)(x), jax.vmap(_input_jacobian(model))(x)


def _check_points(model: Any, x: Any, argument: str) -> tuple[Array, bool]:
    """`x` as a `(N, in_size)` array of the model's dtype, and whether it was one sample."""
    in_size, _ = model_sizes(model)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(
            f"{argument} must be a JAX or NumPy array of shape ({in_size},) (one sample) or "
            f"(N, {in_size}) (a batch); got {type(x).__name__}."
        )
    single = len(shape) == 1
    if len(shape) not in (1, 2) or shape[-1] != in_size:
        hint = " Reshape it with x[:, None]." if len(shape) == 1 and in_size == 1 else ""
        raise ValueError(
            f"{argument} must have shape (in_size,) = ({in_size},) for one sample or "
            f"(N, in_size) = (N, {in_size}) for a batch; got {tuple(shape)}.{hint}"
        )
    arr = check_features(np.asarray(x)[None] if single else x, in_size, argument)
    return as_jax_array(arr, float_dtype(model)), single


def jacobian(
    model: Any, x: Any
) -> Float[Array, "out_size in_size"] | Float[Array, "N out_size in_size"]:
    """The Jacobian `d model(x) / dx` of a fitted model with respect to its input.

    **Arguments:**

    - `model`: an `FFN`, a `Standardized` (the Jacobian is then in physical units), or any
      model with `in_size` and `out_size` whose `__call__` takes one sample.
    - `x`: one sample of shape `(in_size,)`, or a batch of shape `(N, in_size)`; finite.

    **Returns:** shape `(out_size, in_size)` for one sample, `(N, out_size, in_size)` for a
    batch: entry `[..., i, j]` is `d y_i / d x_j`. Computed by `jax.jacfwd` vmapped over the
    samples (`jax.jacrev` when there are more inputs than outputs), one compiled program per
    shape.

    ```python
    model = eqx_ffn.FFN(2, 1, (16,), key=jax.random.key(0))
    a = eqx_ffn.jacobian(model, jnp.array([0.5, -1.0]))    # (1, 2)
    a = eqx_ffn.jacobian(model, jnp.zeros((10, 2)))        # (10, 1, 2)
    ```
    """
    arr, single = _check_points(model, x, "x")
    jac = _jacobian_batch(model, arr)
    return jac[0] if single else jac


def linearize(
    model: Any, x0: Any
) -> (
    tuple[Float[Array, " out_size"], Float[Array, "out_size in_size"]]
    | tuple[Float[Array, "N out_size"], Float[Array, "N out_size in_size"]]
):
    """The local linear model of a fitted map at an operating point `x0`:
    `model(x) ≈ y0 + A @ (x - x0)` for `x` near `x0`, with an error of order `|x - x0|**2`.

    **Arguments:**

    - `model`: an `FFN`, a `Standardized`, or any model with `in_size` and `out_size`.
    - `x0`: the operating point, shape `(in_size,)`; or several, shape `(N, in_size)`.

    **Returns:** `(y0, A)`: `y0 = model(x0)` of shape `(out_size,)` and `A = jacobian(model,
    x0)` of shape `(out_size, in_size)`; with a batch of operating points, shapes
    `(N, out_size)` and `(N, out_size, in_size)`.

    ```python
    x0 = jnp.array([0.5, -1.0])
    y0, a = eqx_ffn.linearize(model, x0)
    y = y0 + a @ (x - x0)          # ≈ model(x) near x0
    ```
    """
    arr, single = _check_points(model, x0, "x0")
    y0, jac = _linearize_batch(model, arr)
    return (y0[0], jac[0]) if single else (y0, jac)
