"""What a `Solver` minimises: the training objective of one fit, as seen from inside the program."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import default_float
from ..model._rows import apply_rows
from ._losses import Loss

PyTree = Any


def _is_dense(node: Any) -> bool:
    from ..model._ffn import Dense

    return isinstance(node, Dense)


def penalty_flags(model: PyTree) -> PyTree:
    """A pytree shaped like `model`: `True` on the weights of every `Dense` layer (what `l1` and
    `l2` penalise), `False` on every other leaf (biases, scalers, activations)."""

    def mark(node):
        if _is_dense(node):
            return eqx.tree_at(lambda d: d.weight, jax.tree.map(lambda _: False, node), True)
        return False

    return jax.tree.map(mark, model, is_leaf=_is_dense)


class Objective:
    """The objective a `Solver` minimises in one fit.

    `objective(params, batch)` is the data loss plus the weight penalty
    `l1 * sum|W| + l2 * sum W**2` (weights of `Dense` layers, not biases), as a float32 (or
    float64) scalar. `batch = (x, y, w)`: `x` of shape `(B, in_size)`, `y` of shape
    `(B, out_size)` (or `(B,)` integer labels), `w` of shape `(B,)` per-sample weights (rows of
    weight 0 are padding and do not count).

    Attributes a solver may read (all traced scalars, so changing them never recompiles):
    `l1`, `l2` and `tol` (the fit's convergence tolerance). Least-squares solvers also use
    `residuals`, `data_residuals` and `penalty_mask`.
    """

    def __init__(
        self,
        loss: Loss,
        frozen: PyTree,
        static: PyTree,
        *,
        l1: Any,
        l2: Any,
        tol: Any,
        compute_dtype: Any = None,
        unravel: Any = None,
        terms: tuple[bool, bool] = (True, True),
        feature_major: bool = False,
    ):
        self.unravel = unravel  # params arrive as ONE vector (an elementwise solver) or a tree
        self.loss = loss
        self.frozen = frozen
        self.static = static
        self.l1 = l1
        self.l2 = l2
        self.tol = tol
        self.terms = terms  # which of the l1, l2 terms `penalty` computes (static)
        self.feature_major = feature_major  # an FFN's batch along the minor axis (`apply_rows`)
        self.compute_dtype = None if compute_dtype is None else jnp.dtype(compute_dtype)

    def tree(self, params: PyTree) -> PyTree:
        """The trained parameters as the model's pytree (unraveled when they arrive flat)."""
        return params if self.unravel is None else self.unravel(params)

    def model(self, params: PyTree) -> PyTree:
        """The model with these trained parameters, in the parameters' own dtype."""
        tree = self.tree(params)
        if self.frozen is None:
            return eqx.combine(tree, self.static)
        return eqx.combine(tree, self.frozen, self.static)

    def compute_model(self, params: PyTree) -> PyTree:
        """The model the forward pass runs: with `compute_dtype` set, every floating array cast
        to it (the gradient flows back to the parameters' own dtype through the cast)."""
        model = self.model(params)
        if self.compute_dtype is None:
            return model
        dt = self.compute_dtype
        return jax.tree.map(lambda a: a.astype(dt) if eqx.is_inexact_array(a) else a, model)

    def _inputs(self, x: jax.Array) -> jax.Array:
        return x if self.compute_dtype is None else x.astype(self.compute_dtype)

    def predictions(self, params: PyTree, x: jax.Array) -> jax.Array:
        """`vmap(model)(x)` (see `apply_rows`), computed in `compute_dtype`, returned in the
        loss dtype."""
        model = self.compute_model(params)
        pred = apply_rows(model, self._inputs(x), feature_major=self.feature_major)
        return pred.astype(loss_dtype(params))

    def data_loss(self, params: PyTree, batch: Any) -> jax.Array:
        """The weighted data loss, without the penalty."""
        x, y, w = batch
        out_dtype = loss_dtype(params)
        if self.loss.fn is not None:  # a user's loss(model, x, y): no weights, no padding
            value = self.loss.fn(self.compute_model(params), self._inputs(x), y)
            try:
                value = jnp.asarray(value)
            except TypeError:
                raise TypeError(
                    f"A callable loss must return a scalar array; it returned "
                    f"{type(value).__name__}."
                ) from None
            if value.shape != ():
                raise TypeError(
                    f"A callable loss must return a scalar (reduce over the batch, e.g. with "
                    f"jnp.mean); it returned shape {value.shape}."
                )
            if not jnp.issubdtype(value.dtype, jnp.floating):
                raise TypeError(
                    f"A callable loss must return a floating scalar; it returned dtype "
                    f"{value.dtype}."
                )
            return value.astype(out_dtype)
        return self.loss.on_predictions(self.predictions(params, x), y, w)

    def penalty(self, params: PyTree) -> jax.Array:
        """`l1 * sum|W| + l2 * sum W**2` over the penalised weights. A term left out of `terms`
        (its coefficient is 0 for every member of the fit) is not computed: it would add exact
        zeros to the loss and the gradient, at the cost of two passes over every weight a
        step."""
        dtype = loss_dtype(params)
        total = jnp.zeros((), dtype)
        use_l1, use_l2 = self.terms
        if not (use_l1 or use_l2):
            return total
        tree = self.tree(params)
        for p, m in zip(jax.tree.leaves(tree), jax.tree.leaves(self._flags(tree)), strict=True):
            if m:  # one fused reduction per weight, of the terms in use
                w = p.astype(dtype)
                terms = [self.l1 * jnp.abs(w)] if use_l1 else []
                terms += [self.l2 * (w * w)] if use_l2 else []
                total = total + jnp.sum(sum(terms[1:], terms[0]))
        return total

    def _flags(self, tree: PyTree) -> PyTree:
        flags = penalty_flags(self.model_of_tree(tree))
        return jax.tree.map(
            lambda p, f: None if p is None else f, tree, flags, is_leaf=lambda v: v is None
        )

    def __call__(self, params: PyTree, batch: Any) -> jax.Array:
        return self.data_loss(params, batch) + self.penalty(params)

    def data_residuals(self, params: PyTree, batch: Any) -> jax.Array:
        """A vector `r`, shape `(B * out_size,)`, with `sum(r**2) == data_loss(params, batch)`,
        for `loss="mse"`: `r = (pred - y) * sqrt(w / (sum(w) * out_size))`."""
        if self.loss.name != "mse":
            raise ValueError(f"Least-squares solvers need loss='mse'; got loss={self.loss.name!r}.")
        x, y, w = batch
        pred = self.predictions(params, x)
        r = pred - y.astype(pred.dtype)
        scale = jnp.sqrt(w.astype(pred.dtype) / (jnp.sum(w) * r.shape[1]))
        return (r * scale[:, None]).reshape(-1)

    def model_of_tree(self, tree: PyTree) -> PyTree:
        if self.frozen is None:
            return eqx.combine(tree, self.static)
        return eqx.combine(tree, self.frozen, self.static)

    def penalty_mask(self, params: PyTree) -> PyTree:
        """Shaped like `params`: ones on penalised weights, zeros elsewhere (same dtypes), so
        that the penalty is `l1 * sum(mask * |p|) + l2 * sum(mask * p**2)`."""
        tree = self.tree(params)
        mask = jax.tree.map(lambda p, f: jnp.full_like(p, 1 if f else 0), tree, self._flags(tree))
        if self.unravel is None:
            return mask
        return jnp.concatenate([leaf.reshape(-1) for leaf in jax.tree.leaves(mask)])

    def residuals(self, params: PyTree, batch: Any) -> jax.Array:
        """`data_residuals` followed by `sqrt(l2) * W` for every penalised weight: a vector whose
        squared norm is the whole objective (when `l1 == 0`)."""
        if self.loss.name != "mse":
            raise ValueError("Least-squares solvers need loss='mse'.")
        parts = [self.data_residuals(params, batch)]
        dtype = loss_dtype(params)
        mask = self.penalty_mask(params)
        for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask), strict=True):
            parts.append(jnp.sqrt(self.l2) * (m * p).astype(dtype).reshape(-1))
        return jnp.concatenate(parts)


def loss_dtype(params: PyTree) -> jnp.dtype:
    """The dtype losses are computed and recorded in: at least float32 (bfloat16 or float16
    parameters still report float32 losses), float64 with float64 parameters."""
    for leaf in jax.tree.leaves(params):
        if eqx.is_inexact_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct):
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                return jnp.promote_types(leaf.dtype, jnp.float32)
    return default_float()
