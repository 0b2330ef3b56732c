"""The estimators' network: its scalers, row-wise prediction, and a picklable description.

`model_` is an `eqx_ffn.Standardized` wrapping an `eqx_ffn.FFN`; these helpers build its
scalers, predict in fixed-size blocks, and turn it into plain arrays for pickle and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model._ffn import FFN
from ..model._standardize import Standardized, Standardizer
from ..training._data import float_dtype
from ..training._predict import _apply

__all__ = ["PREDICT_ROWS", "from_portable", "portable", "predict_rows", "scaler"]

PREDICT_ROWS = 1024
"""Rows per compiled prediction call (the last block is padded)."""


def predict_rows(model: Any, x: np.ndarray) -> np.ndarray:
    """`jax.vmap(model)(x)` as float64, in blocks of `PREDICT_ROWS` rows.

    One compiled program per network, and each row's prediction bit for bit the same whatever
    the other rows are (a matmul's rounding can depend on how many rows it has).

    **Arguments:** `model`, `x` (N, d).

    **Returns:** float64 array (N, out_size).
    """
    dtype = float_dtype(model)
    block = np.zeros((PREDICT_ROWS, x.shape[1]), dtype)
    out = []
    for start in range(0, x.shape[0], PREDICT_ROWS):
        part = x[start : start + PREDICT_ROWS]
        block[: len(part)] = part
        block[len(part) :] = 0
        out.append(np.asarray(_apply(model, block, None))[: len(part)])
    return np.concatenate(out).astype(np.float64)


def scaler(a: np.ndarray, weight: np.ndarray | None, dtype: Any) -> Standardizer:
    """A `Standardizer` with the (sample-weighted) mean and standard deviation of `a`'s columns
    (a zero deviation becomes 1)."""
    mean = np.average(a, axis=0, weights=weight)
    std = np.sqrt(np.average((a - mean) ** 2, axis=0, weights=weight))
    std = np.where(std > 0, std, 1.0)
    return Standardizer(np.asarray(mean, dtype), np.asarray(std, dtype))


def portable(model: Standardized) -> dict[str, Any]:
    """A picklable description of a `Standardized(FFN)` (jax.nn.relu and friends are
    `custom_jvp` objects that pickle cannot find by name)."""
    ffn = model.model
    if not isinstance(ffn, FFN):
        raise TypeError(f"expected a Standardized FFN; got one around {type(ffn).__name__}.")

    def arrays(s):
        return None if s is None else (np.asarray(s.mean), np.asarray(s.scale))

    return {
        "params": {k: np.asarray(v) for k, v in ffn.to_params().items()},
        "activation": ffn.activation_name,
        "final_activation": ffn.final_activation_name,
        "x_scaler": arrays(model.x_scaler),
        "y_scaler": arrays(model.y_scaler),
    }


def from_portable(state: dict[str, Any]) -> Standardized:
    """The `Standardized(FFN)` that `portable` described."""
    ffn = FFN.from_params(
        state["params"],
        activation=state["activation"],
        final_activation=state["final_activation"],
    )

    def standardizer(s):
        return None if s is None else Standardizer(s[0], s[1])

    return Standardized(ffn, standardizer(state["x_scaler"]), standardizer(state["y_scaler"]))
