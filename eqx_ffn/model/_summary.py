"""A readable summary of a network."""

from __future__ import annotations

from ._ffn import FFN


def summary(model: FFN) -> str:
    """Return a table of the layers of `model`: shapes, activation and parameter counts.

    ```
    FFN 1 -> [16] -> 1, activation=tanh, final_activation=identity, dtype=float32
      layer  weight    bias   params  then
      1      (16, 1)   (16,)  32      tanh
      2      (1, 16)   (1,)   17      identity
      total                   49
    ```
    """
    if not isinstance(model, FFN):
        raise TypeError(f"summary expects an eqx_ffn.FFN; got {type(model).__name__}.")
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
    lines = [
        f"FFN {model.in_size} -> {hidden} -> {model.out_size}, activation={act}, "
        f"final_activation={fin}, dtype={model.dtype}"
    ]
    for r in rows:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
