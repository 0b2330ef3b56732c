"""Training losses by name, or a user's callable `loss(model, x, y) -> scalar`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .._validation import unknown_name

LOSSES: tuple[str, ...] = ("mse", "mae", "huber", "softmax_cross_entropy")
"""Names accepted by `fit(loss=...)`."""


def _per_sample(name: str, pred: Array, y: Array) -> Array:
    """Per-element loss, shape `(B, out)` for regression or `(B,)` for classification."""
    if name == "mse":
        return (y - pred) ** 2  # the lecture's order of operations
    if name == "mae":
        return jnp.abs(y - pred)
    if name == "huber":
        return optax.losses.huber_loss(pred, y, delta=1.0)
    if name == "softmax_cross_entropy":
        return optax.losses.softmax_cross_entropy_with_integer_labels(pred, y)
    raise AssertionError(name)  # pragma: no cover - names are checked in resolve_loss


class Loss(eqx.Module):
    """A loss on a batch: `loss(model, x, y, weight=None) -> scalar`.

    Named losses average over samples and outputs. With a per-sample `weight` of shape `(B,)` the
    average over samples is weighted: `sum(w_i * l_i) / sum(w_i)`, with `l_i` the mean over outputs.
    """

    name: str = eqx.field(static=True)
    fn: Callable[..., Array] | None = eqx.field(static=True, default=None)

    @property
    def classification(self) -> bool:
        return self.name == "softmax_cross_entropy"

    @property
    def weightable(self) -> bool:
        return self.fn is None

    def __call__(self, model: Any, x: Array, y: Array, weight: Array | None = None) -> Array:
        if self.fn is not None:
            if weight is not None:
                raise ValueError("A callable loss cannot take sample weights.")
            return jnp.asarray(self.fn(model, x, y))
        return self.on_predictions(jax.vmap(model.__call__)(x), y, weight)

    def on_predictions(self, pred: Array, y: Array, weight: Array | None = None) -> Array:
        """The loss of predictions `pred` (`(B, out)`) against targets `y` (named losses only),
        weighted per sample when `weight` (`(B,)`) is given."""
        if self.fn is not None:
            raise ValueError("A callable loss needs the model, not predictions.")
        per = _per_sample(self.name, pred, y)
        if weight is None:
            return jnp.mean(per)
        if per.ndim == 2:
            per = jnp.mean(per, axis=1)
        weight = weight.astype(per.dtype)
        return jnp.sum(weight * per) / jnp.sum(weight)


@functools.cache
def _named_loss(name: str) -> Loss:
    return Loss(name)  # one object a name: its cache key is computed once


def resolve_loss(loss: str | Callable | Loss) -> Loss:
    """Turn `"mse"`, `"mae"`, `"huber"`, `"softmax_cross_entropy"` or a callable into a `Loss`."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise unknown_name(
                "loss", loss, LOSSES, ", or pass a callable loss(model, x, y) -> scalar"
            )
        return _named_loss(loss)
    if callable(loss):
        try:
            inspect.signature(loss).bind(None, None, None)
        except TypeError as err:
            raise TypeError(
                f"A callable loss is called as loss(model, x_batch, y_batch) -> scalar; "
                f"{getattr(loss, '__name__', type(loss).__name__)} cannot take those three "
                f"arguments ({err})."
            ) from None
        except ValueError:  # no signature to inspect (a builtin): trust it
            pass
        return Loss("custom", loss)
    raise TypeError(f"loss must be a name or a callable; got {type(loss).__name__}.")


def weight_penalty(
    model: Any,
    l1: Float[Array, ""] | float,
    l2: Float[Array, ""] | float,
    *,
    use_l1: bool = True,
    use_l2: bool = True,
) -> Array:
    """`l1 * sum|W| + l2 * sum W**2` over the weights of every `Dense` layer (not biases)."""
    from ..model._ffn import Dense

    layers = [
        node
        for node in jax.tree.leaves(model, is_leaf=lambda n: isinstance(n, Dense))
        if isinstance(node, Dense)
    ]
    total = jnp.zeros((), layers[0].weight.dtype if layers else jnp.float32)
    for layer in layers:
        if use_l1:
            total = total + l1 * jnp.sum(jnp.abs(layer.weight))
        if use_l2:
            total = total + l2 * jnp.sum(layer.weight**2)
    return total
