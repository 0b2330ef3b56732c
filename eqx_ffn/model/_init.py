"""Weight initialisation schemes for a dense layer with `weight (out, in)` and `bias (out,)`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.nn import initializers

from .._validation import unknown_name

# Our weights are stored (out, in), as in the lecture's `W @ x`, so fan-in is the last axis.
_FAN = {"in_axis": -1, "out_axis": -2}

_WEIGHT_INITS = {
    "glorot_uniform": initializers.glorot_uniform(**_FAN),
    "glorot_normal": initializers.glorot_normal(**_FAN),
    "kaiming_uniform": initializers.he_uniform(**_FAN),
    "kaiming_normal": initializers.he_normal(**_FAN),
    "lecun_normal": initializers.lecun_normal(**_FAN),
}

INITS: tuple[str, ...] = ("normal", "equinox", *_WEIGHT_INITS)
"""Names accepted by `FFN(init=...)`."""


def check_init(init: str) -> str:
    """Raise `ValueError` naming the valid schemes when `init` is not one of them."""
    if not isinstance(init, str) or init not in INITS:
        raise unknown_name("init", init, INITS)
    return init


def init_dense(
    init: str, in_size: int, out_size: int, use_bias: bool, dtype, *, key: jax.Array
) -> tuple[jax.Array, jax.Array | None]:
    """Draw `(weight, bias)` for one layer.

    - `"normal"`: every weight and bias entry standard normal, as the lecture does.
    - `"equinox"`: exactly what `eqx.nn.Linear` does (uniform in `±1/sqrt(in_size)`, biases too).
    - `"glorot_*"`, `"kaiming_*"` (He), `"lecun_normal"`: `jax.nn.initializers` with
      fan-in = `in_size`, fan-out = `out_size`; biases are zero.
    """
    check_init(init)
    if init == "equinox":
        lin = eqx.nn.Linear(in_size, out_size, use_bias=use_bias, dtype=dtype, key=key)
        return lin.weight, lin.bias
    wkey, bkey = jr.split(key)
    shape = (out_size, in_size)
    if init == "normal":
        weight = jr.normal(wkey, shape, dtype)
        bias = jr.normal(bkey, (out_size,), dtype) if use_bias else None
        return weight, bias
    weight = _WEIGHT_INITS[init](wkey, shape, dtype)
    bias = jnp.zeros((out_size,), dtype) if use_bias else None
    return weight, bias
