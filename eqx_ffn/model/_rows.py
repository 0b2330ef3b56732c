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


def _feature_major_ffn(static: Any) -> FFN | None:
    """The `FFN` that `static` (a model, or its non-array part) computes, alone or inside
    `Standardized`, if it can be computed feature-major: `Dense` layers, named (elementwise)
    activations and every weight at most `FEATURE_MAJOR_MAX_WEIGHT` entries; else None."""
    ffn = static.model if type(static) is Standardized else static
    if type(ffn) is not FFN or ffn.activation_name is None or ffn.final_activation_name is None:
        return None
    if not all(type(layer) is Dense for layer in ffn.layers):  # (edited with eqx.tree_at)
        return None
    sizes = (ffn.in_size, *ffn.hidden_sizes, ffn.out_size)
    if max(a * b for a, b in itertools.pairwise(sizes)) > FEATURE_MAJOR_MAX_WEIGHT:
        return None
    return ffn


def feature_major_ok(static: Any) -> bool:
    """Whether `apply_rows(..., feature_major=True)` computes `static`'s model feature-major
    (see `_feature_major_ffn`). `static` may be the model's non-array part (its sizes are
    static fields)."""
    return _feature_major_ffn(static) is not None


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
    ffn = _feature_major_ffn(model) if feature_major else None
    # (a stacked ensemble's weights are 3-D)
    if ffn is not None and all(layer.weight.ndim == 2 for layer in ffn.layers):
        if isinstance(model, Standardized):
            return model._around(lambda z: _ffn_rows(ffn, z), x)
        return _ffn_rows(ffn, x)
    # the bound method, not the module: JAX names a vmapped module by formatting it
    return jax.vmap(model.__call__)(x)
