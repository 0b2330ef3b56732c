"""A model on a batch of rows, as the training programs compute it: `jax.vmap(model.__call__)`,
or, for an `FFN` on a CPU, the same network with the batch along the minor axis.

Why: `vmap` of `W @ x` gives row-major activations `(B, width)`, and the gradient of each weight
is then a product that contracts the rows, the MAJOR axis of both operands. XLA's CPU backend
hands such a dot to its Eigen path (YNNPACK refuses an LHS contracted along its major axis),
which runs it 2-3x slower than a BLAS. Computed feature-major, `H = W @ X.T`, activations are
`(width, B)`: every product of the forward and backward pass then contracts a minor axis, or a
weight's (small, cheap to transpose). On an 8-64-64-1 network over 20,480 rows a whole Adam step
takes 4.7 ms against 6.7 ms (and PyTorch's 6.4 ms); see benchmarks/BENCHMARKS.md.

It is the same arithmetic (the same products, sums and activations) in another layout, so it
agrees with `vmap` to rounding; XLA may sum a product in another order, so results can differ in
the last bits (not from run to run).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp

from ._ffn import FFN, Dense
from ._standardize import Standardized

FEATURE_MAJOR_MAX_WEIGHT = 1 << 16
"""The largest weight (out x in entries) of a network computed feature-major. Measured on a
2-core Xeon (whole Adam steps, hand-written scans): feature-major is faster for networks whose
weights are at most 256 x 256 (1.2-1.5x on 1-16-1 over 200 rows, 1-64-64-1 over 256, 8-64-64-1
over 20,000, 32-256-256-256-1 over 2,048); at 784 x 256 (MNIST-size, batches of 128) it was
faster in a hand-written scan and slower inside `fit`; at 784 x 512 as fast, and 5% slower at
784 x 1024 and 1024 x 1024."""


def _ffn_of(static: Any) -> FFN | None:
    """The `FFN` that `static` (a model, or its non-array part) computes, or None."""
    if type(static) is Standardized:
        static = static.model
    return static if type(static) is FFN else None


def feature_major_ok(static: Any) -> bool:
    """Whether `apply_rows(..., feature_major=True)` computes `static`'s model feature-major:
    an `FFN` (alone or inside `Standardized`) with named (elementwise) activations and every
    weight at most `FEATURE_MAJOR_MAX_WEIGHT` entries. `static` may be the model's non-array
    part (its sizes are static fields)."""
    ffn = _ffn_of(static)
    if ffn is None or ffn.activation_name is None or ffn.final_activation_name is None:
        return False
    if not all(type(layer) is Dense for layer in ffn.layers):  # (edited with eqx.tree_at)
        return False
    sizes = (ffn.in_size, *ffn.hidden_sizes, ffn.out_size)
    return max(a * b for a, b in itertools.pairwise(sizes)) <= FEATURE_MAJOR_MAX_WEIGHT


def _dense_columns(layer: Dense, h: jax.Array) -> jax.Array:
    """`layer` on every column of `h`, shape `(in_size, B)` -> `(out_size, B)`."""
    y = jnp.matmul(layer.weight, h, precision=layer.precision)
    return y if layer.bias is None else y + layer.bias[:, None]


def _ffn_rows(ffn: FFN, x: jax.Array) -> jax.Array:
    h = x.T
    for layer in ffn.layers[:-1]:
        h = ffn.activation(_dense_columns(layer, h))
    return ffn.final_activation(_dense_columns(ffn.layers[-1], h)).T


def apply_rows(model: Any, x: jax.Array, *, feature_major: bool = False) -> jax.Array:
    """`jax.vmap(model.__call__)(x)` for rows `x` of shape `(B, in_size)`; with
    `feature_major=True` and a model that `feature_major_ok` accepts, the same network computed
    with the batch along the minor axis (see the module's docstring)."""
    ffn = _ffn_of(model) if feature_major and feature_major_ok(model) else None
    if ffn is not None and all(layer.weight.ndim == 2 for layer in ffn.layers):
        if not isinstance(model, Standardized):  # (a stacked ensemble's weights are 3-D)
            return _ffn_rows(ffn, x)
        z = x if model.x_scaler is None else model.x_scaler.transform(x)
        out = _ffn_rows(ffn, z)
        return out if model.y_scaler is None else model.y_scaler.inverse_transform(out)
    # the bound method, not the module: JAX names a vmapped module by formatting it
    return jax.vmap(model.__call__)(x)
