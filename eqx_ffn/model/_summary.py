"""A readable summary of a network (or of a `Standardized` one)."""

from __future__ import annotations

from ._ffn import FFN
from ._standardize import Standardized, Standardizer


def _scaler(name: str, scaler: Standardizer | None) -> str:
    if scaler is None:
        return f"{name} none"
    return f"{name} {scaler.mean.shape[0]} columns"


def summary(model: FFN | Standardized) -> str:
    """Return a table of the layers of `model`: shapes, activation and parameter counts.

    **Arguments:**

    - `model`: an `FFN`, or a `Standardized` around one (as `eqx-ffn fit` saves): then a first
      line names its scalers (how many columns each standardises; their means and scales are
      not trained) and the network's table follows.

    **Returns:** the summary, several lines:

    ```
    FFN 1 -> [16] -> 1, activation=tanh, final_activation=identity, dtype=float32
      layer  weight    bias   params  then
      1      (16, 1)   (16,)  32      tanh
      2      (1, 16)   (1,)   17      identity
      total                   49
    ```

    **Raises:** `TypeError` for anything else (a `Standardized` around another model included).
    """
    if isinstance(model, Standardized) and isinstance(model.model, FFN):
        scalers = f"{_scaler('x_scaler', model.x_scaler)}, {_scaler('y_scaler', model.y_scaler)}"
        return f"Standardized: {scalers} (means and scales, not trained)\n{summary(model.model)}"
    if not isinstance(model, FFN):
        inner = f" around a {type(model.model).__name__}" if isinstance(model, Standardized) else ""
        raise TypeError(
            "summary expects an eqx_ffn.FFN or a Standardized around one; got "
            f"{type(model).__name__}{inner}."
        )
    act = model.activation_name or getattr(model.activation, "__name__", repr(model.activation))
    fin = model.final_activation_name or getattr(
        model.final_activation, "__name__", repr(model.final_activation)
    )
    hidden = list(model.hidden_sizes)
    rows = [("layer", "weight", "bias", "params", "then")]
    for i, layer in enumerate(model.layers, start=1):
        n = layer.weight.size + (0 if layer.bias is None else layer.bias.size)
        bias = "-" if layer.bias is None else str(tuple(layer.bias.shape))
        then = act if i < len(model.layers) else fin
        rows.append((str(i), str(tuple(layer.weight.shape)), bias, str(n), then))
    rows.append(("total", "", "", str(model.n_params), ""))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    members = model.layers[0].weight.shape[0] if model.layers[0].weight.ndim == 3 else None
    lines = [
        f"FFN {model.in_size} -> {hidden} -> {model.out_size}, activation={act}, "
        f"final_activation={fin}, dtype={model.dtype}"
        + ("" if members is None else f"; a stacked ensemble of {members} members (each row: all)")
    ]
    for r in rows:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
