"""The trained parameters as ONE vector (flat mode), for solvers that work element by element.

`param_spec` is the layout as a hashable value (it is part of a program's cache key);
`ravel_params` and `unraveler(spec)` go there and back inside a traced program; `ravel_tree`
does both at once (the least-squares solvers). The way back
splits with `lax.split`, whose transpose is one concatenate (slices would transpose to a pad and
an add per array). `eqx_ffn.ravel` (model/_ravel.py) is the user-facing form: a whole model, with
its own checks, outside any program.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from ._cache_key import identity_memo

PyTree = Any


@identity_memo
def param_spec(params: PyTree) -> Any:
    """The layout of `params` raveled into one vector (hashable), or None when the leaves do
    not share one floating dtype."""
    leaves, treedef = jax.tree.flatten(params)
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) != 1 or not leaves:
        return None
    try:
        hash(treedef)
    except TypeError:  # a static field holding something unhashable: keep the tree
        return None
    shapes = tuple(tuple(int(d) for d in leaf.shape) for leaf in leaves)
    return (treedef, shapes, str(dtypes.pop()))


def ravel_params(params: PyTree) -> jax.Array:
    """The trained arrays as ONE vector, in leaf order."""
    return jnp.concatenate([leaf.reshape(-1) for leaf in jax.tree.leaves(params)])


def unraveler(spec: Any):
    """The inverse of `ravel_params` for the layout `spec`."""
    treedef, shapes, _ = spec
    sizes = [int(np.prod(shape)) for shape in shapes]

    def unravel(flat: jax.Array) -> PyTree:
        parts = lax.split(flat, sizes)
        return jax.tree.unflatten(
            treedef, [p.reshape(shape) for p, shape in zip(parts, shapes, strict=True)]
        )

    return unravel


def ravel_tree(tree: PyTree) -> tuple[jax.Array, Any]:
    """`(flat, unravel)` for the arrays of `tree` (a vector stays itself): the layout above
    when they share one floating dtype, else JAX's `ravel_pytree` (which promotes)."""
    spec = param_spec(tree)
    if spec is None:
        return ravel_pytree(tree)
    return ravel_params(tree), unraveler(spec)
