"""Export a trained model as a StableHLO program that runs where eqx_ffn is not installed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._atomic import _atomic_write

_EXTRA = 'pip install "eqx_ffn[export]"'


def _sizes(model: Any) -> tuple[int, int]:
    sizes = getattr(model, "in_size", None), getattr(model, "out_size", None)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        raise TypeError(
            "export: model must be an eqx_ffn network (an FFN, a Standardized model, or a module "
            f"with integer in_size and out_size); got {type(model).__name__}."
        )
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    if not leaves:
        raise TypeError("export: model has no floating-point parameters to export.")
    first = getattr(model, "layers", None)
    if first and getattr(first[0], "weight", None) is not None and first[0].weight.ndim != 2:
        raise ValueError(
            "export: model is a stacked ensemble (its weights have a member axis); export one "
            "member, eqx_ffn.ensemble_member(models, i), or each in turn."
        )
    return sizes[0], sizes[1]  # type: ignore[return-value]


def _input_dtype(model: Any, dtype: Any) -> np.dtype:
    if dtype is None:
        leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
        return np.dtype(leaves[0].dtype)
    try:
        out = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"export: dtype must be a floating dtype; got {dtype!r}.") from None
    if not np.issubdtype(out, np.floating):
        raise TypeError(f"export: dtype must be a floating dtype; got {out}.")
    return out


def export(
    model: Any,
    path: str | os.PathLike[str],
    *,
    dtype: Any = None,
    platforms: Sequence[str] | None = None,
) -> Path:
    """Write `model`'s batched prediction as a serialised `jax.export` program (StableHLO).

    The file holds the whole computation with the parameters as constants — for a
    `Standardized` model the input and output scalers too — for inputs of shape
    `(batch, in_size)` with a **symbolic** batch size. Reading it needs JAX (and flatbuffers),
    not eqx_ffn:

    ```python
    from jax import export
    with open("model.stablehlo", "rb") as f:
        program = export.deserialize(f.read())
    y = program.call(x)            # x: (batch, in_size) -> y: (batch, out_size)
    ```

    A classifier exports its logits (apply `jax.nn.softmax` for probabilities).

    **Arguments:**

    - `model`: an `FFN`, a `Standardized` model, or any single-sample module with integer
      `in_size` and `out_size` (one model, not a stacked ensemble).
    - `path`: the file to write (atomically: an existing file is replaced only once the new one
      is complete).
    - `dtype`: the input dtype (default: the parameters' dtype).
    - `platforms`: the platforms to lower for, e.g. `("cpu", "cuda")` (default: the platform JAX
      runs on here). A program lowered for several runs on each.

    **Returns:** the path written.

    **Raises:** `ImportError` when flatbuffers (the `export` extra) is missing; `TypeError` /
    `ValueError` for a model that cannot be exported, naming what to do.
    """
    in_size, _ = _sizes(model)
    in_dtype = _input_dtype(model, dtype)
    if platforms is not None and (
        isinstance(platforms, str) or not all(isinstance(p, str) for p in platforms)
    ):
        raise TypeError(
            f"export: platforms must be a sequence of names such as ('cpu', 'cuda'); "
            f"got {platforms!r}."
        )
    if isinstance(path, (bytes, int)) or not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"export: path must be a file path; got {path!r}.")
    try:
        import flatbuffers  # noqa: F401  (jax.export's serialisation needs it)
    except ImportError:
        raise ImportError(f"eqx_ffn.export needs flatbuffers: {_EXTRA}") from None
    params, static = eqx.partition(model, eqx.is_array)

    def predict(x: jax.Array) -> jax.Array:
        net = eqx.combine(params, static)
        return jax.vmap(net)(x)

    (batch,) = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, in_size), jnp.dtype(in_dtype))
    lowered_for = None if platforms is None else tuple(platforms)
    exported = jax.export.export(jax.jit(predict), platforms=lowered_for)(spec)
    target = Path(path)
    try:
        _atomic_write(target, bytes(exported.serialize()))
    except OSError as e:
        raise OSError(
            e.errno, f"could not write the exported model to {target}: {e.strerror or e}"
        ) from None
    return target
