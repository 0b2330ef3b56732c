"""Batched prediction with input checks: one compiled program per model structure and size
bucket of N (the rows are padded to the bucket and the padding cut off again: `predict_rows`,
the one padding rule of every prediction path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, Float

from ._cache_key import pytree_key
from ._compile_options import FAST_COMPILE_OPTIONS, compile_with_options
from ._data import check_features, float_dtype, model_sizes, on_host_if_cpu, pad_rows
from ._options import resolve_precision
from ._program import precision_context
from ._program_cache import _Cache, bucket, program_key


def predict_rows(
    model: Any, x: Any, apply: Callable[[Array], Array], *, argument: str = "x", row_axis=0
) -> Array:
    """`apply(rows)` on `x` checked against `model` (its `in_size`, cast to its float dtype),
    with the rows padded to `bucket(N)` and the padding cut off the result along `row_axis`."""
    in_size, _ = model_sizes(model)
    arr = check_features(x, in_size, argument, dtype=float_dtype(model))
    n = int(arr.shape[0])
    # NumPy rows (a CPU array's too, read in place) go to the program as they are
    out = apply(pad_rows(on_host_if_cpu(arr), bucket(n)))
    return first_rows(out, n, row_axis)


def first_rows(out: Array, n: int, axis: int = 0) -> Array:
    """The first `n` entries of `out` along `axis`. On one CPU device, a NumPy view of `out`
    copied to the device: `lax.slice_in_dim` would compile a program for each `n`, which a
    fresh process pays for (the padded size is a bucket, `n` any number of rows)."""
    if out.shape[axis] == n:
        return out
    host = on_host_if_cpu(out)
    if host is out:  # on an accelerator or several devices
        return jax.lax.slice_in_dim(out, 0, n, axis=axis)
    return jax.device_put(host[(slice(None),) * axis + (slice(0, n),)], out.sharding)


FAST_APPLY_MAX_FLOPS = 1e7
"""CPU prediction programs of at most this many multiply-adds (rows x weights) compile with
`FAST_COMPILE_OPTIONS`: they run once or a few times, and compiling dominates them (a fresh
process's first `predict`, ~40 ms less for a 10-64-1 network on 128 rows)."""

_applies = _Cache(64)


def _vmapped(model: Any, x: Any, precision: str | None) -> Array:
    with precision_context(precision):
        return jax.vmap(model.__call__)(x)


def _apply(model: Any, x: Any, precision: str | None) -> Array:
    """`jax.vmap(model)(x)`, compiled once per model structure, input signature and
    precision (as `eqx.filter_jit` would: the model's arrays are arguments, the rest static);
    traced inline inside a transformation."""
    if any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves((model, x))):
        return _vmapped(model, x, precision)
    dynamic, static = eqx.partition(model, eqx.is_array)
    key = program_key((pytree_key(static), precision), (dynamic, x))
    compiled = _applies.get(key)
    if compiled is None:

        def predict(arrays: Any, rows: Any) -> Array:
            return _vmapped(eqx.combine(arrays, static), rows, precision)

        lowered = jax.jit(predict).lower(dynamic, x)
        weights = sum(int(np.size(a)) for a in jax.tree.leaves(dynamic))
        cpu = all(d.platform == "cpu" for d in _devices((dynamic, x)))
        small = cpu and weights * int(np.shape(x)[0]) <= FAST_APPLY_MAX_FLOPS
        compiled = compile_with_options(lowered, FAST_COMPILE_OPTIONS if small else None)
        _applies.put(key, compiled)
    return compiled(dynamic, x)


def _devices(tree: Any) -> set[Any]:
    """The devices of the JAX arrays in `tree`, or JAX's default one for host data only."""
    found = set()
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            found |= leaf.sharding.device_set
    return found or {jax.devices()[0]}


def _batched(model: Any, x: Any, precision: str | None, argument: str = "x") -> Array:
    dtype = jnp.promote_types(float_dtype(model), jnp.float32)
    prec = resolve_precision(precision)
    out = predict_rows(model, x, lambda rows: _apply(model, rows, prec), argument=argument)
    return out.astype(jnp.promote_types(out.dtype, dtype))


def predict(model: Any, x: Any, *, precision: str | None = None) -> Float[Array, "N out_size"]:
    """`jax.vmap(model)(x)` after checking `x`, compiled once per model structure and size
    bucket of N.

    **Arguments:**

    - `model`: an `FFN`, `Standardized`, or any module with `in_size`/`out_size`.
    - `x`: shape `(N, in_size)`, finite (a JAX or NumPy array, a DataFrame, nested lists).
    - `precision`: matmul precision, `"default"`, `"high"` or `"highest"` (`None`: JAX's default).

    **Returns:** predictions of shape `(N, out_size)` (logits for a classifier), float32 or wider.

    ```python
    y_hat = eqx_ffn.predict(model, x_test)
    ```
    """
    return _batched(model, x, precision)


def predict_proba(
    model: Any, x: Any, *, precision: str | None = None
) -> Float[Array, "N n_classes"]:
    """Class probabilities of a classifier trained with `loss="softmax_cross_entropy"`: the
    softmax of `predict(model, x)` over its `out_size` outputs.

    **Returns:** shape `(N, n_classes)`, each row summing to 1.

    ```python
    proba = eqx_ffn.predict_proba(model, x_test)
    labels = proba.argmax(axis=1)
    ```
    """
    return jax.nn.softmax(_batched(model, x, precision), axis=-1)
