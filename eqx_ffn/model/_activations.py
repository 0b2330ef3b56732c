"""Activation functions, looked up by name or passed as callables."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .._validation import unknown_name


def identity(x: jax.Array) -> jax.Array:
    """Return `x` unchanged (the 'linear' activation)."""
    return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
    "identity": identity,
}


def resolve_activation(
    activation: str | Callable | None, *, argument: str = "activation"
) -> tuple[Callable[[jax.Array], jax.Array], str | None]:
    """Turn a name, a callable or `None` into `(function, name)`.

    `None` means the identity. `name` is `None` for a user's own callable, which is used as given.
    An unknown name raises `ValueError` listing the valid names.
    """
    if activation is None:
        return identity, "identity"
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation], activation
        except KeyError:
            raise unknown_name(
                argument,
                activation,
                ACTIVATIONS,
                ", or pass any callable that maps an array to an array of the same shape",
            ) from None
    if callable(activation):
        for name, fn in ACTIVATIONS.items():
            if activation is fn:
                return fn, name
        return activation, None
    raise TypeError(
        f"{argument} must be a name (one of {', '.join(ACTIVATIONS)}) or a callable; "
        f"got {type(activation).__name__}."
    )
