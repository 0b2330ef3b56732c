"""The lecture's flat parameter vector `p = vec(W1, b1, W2, b2, ...)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import equinox as eqx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

M = TypeVar("M", bound=eqx.Module)


def ravel(model: M) -> tuple[Float[Array, " n_params"], Callable[[Array], M]]:
    """Flatten a model's arrays into one vector, in the lecture's order.

    For an `FFN` the order is `W1, b1, W2, b2, ...`, each matrix flattened row-major, so for the
    lecture's 1-16-1 network `p` has 49 entries.

    **Returns:** `(p, unravel)` where `unravel(p)` rebuilds a model of the same structure; the round
    trip is exact.

    ```python
    p, unravel = eqx_ffn.ravel(model)
    model2 = unravel(p)
    ```
    """
    params, static = eqx.partition(model, eqx.is_array)
    flat, unravel_params = ravel_pytree(params)

    def unravel(p: Array) -> M:
        if getattr(p, "shape", None) != flat.shape:
            raise ValueError(
                f"unravel expects a vector of shape {flat.shape}; got {getattr(p, 'shape', p)}."
            )
        return eqx.combine(unravel_params(p), static)

    return flat, unravel
