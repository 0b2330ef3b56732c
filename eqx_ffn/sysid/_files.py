"""Saving and loading sysid models: a JSON header, then the arrays (`eqx.tree_serialise_leaves`).

The file starts with the line `EQXFFN-SYSID 1`, then one line of JSON naming the model kind,
its constructor sizes and options (a `NeuralStateSpace`'s `linear` bypass), its activation, its
encoder's window and sizes (when it has one), the scaler and the initial state(s) (readable with
any text tool), then the parameters. `load` checks the header completely (kind among the known
ones, every size an integer, the initial state's shape) before it builds anything; nothing in
the file is executed.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_regular_file
from ..io._atomic import _atomic_write
from ._models import NARX, NeuralStateSpace, check_model, with_encoder

MAGIC = b"EQXFFN-SYSID 1\n"
MAX_HEADER = 1 << 20


class SysidFileError(ValueError):
    """A file that is not a valid sysid model file (wrong magic, header or arrays)."""


def _config(model) -> dict[str, Any]:
    if isinstance(model, NeuralStateSpace):
        nets = (model.f, model.g) if model.output == "ffn" else (model.f,)
        config = {
            "n_u": model.n_u,
            "n_x": model.n_x,
            "n_y": model.n_y,
            "hidden_sizes": list(model.f.hidden_sizes),
            "residual": model.residual,
            "output": model.output,
            "output_hidden_sizes": list(model.g.hidden_sizes) if model.output == "ffn" else [16],
            "linear": model.linear,
        }
        if model.encoder is not None:
            config["encoder_n_init"] = model.encoder_n_init
            config["encoder_hidden_sizes"] = list(model.encoder.hidden_sizes)
    else:
        nets = (model.net,)
        config = {
            "n_u": model.n_u,
            "n_y": model.n_y,
            "na": model.na,
            "nb": model.nb,
            "nk": model.nk,
            "hidden_sizes": list(model.net.hidden_sizes),
        }
    names = {n.activation_name for n in nets}
    if None in names or len(names) != 1:
        raise ValueError(
            "save needs a model whose networks use one named activation (e.g. 'tanh'); a custom "
            "callable cannot be written to a file."
        )
    config["activation"] = names.pop()
    return config


def save(path: str | os.PathLike[str], model, x0: Any = None, *, metadata: Any = None) -> None:
    """Write `model` (a `NeuralStateSpace` or `NARX`, scaler included) and `x0` to `path`.

    **Arguments:** `path`; `model`; `x0`: initial state(s) `(n_x,)` or `(E, n_x)`, or `None`;
    `metadata`: JSON-serialisable data kept in the header (e.g. column names), read back by
    `read_header`.
    """
    model = check_model(model)
    header: dict[str, Any] = {
        "kind": type(model).__name__,
        "config": _config(model),
        "dtype": str(model.scaler.u_mean.dtype),
        "scaler": {
            k: np.asarray(getattr(model.scaler, k)).tolist()
            for k in ("u_mean", "u_std", "y_mean", "y_std")
        },
        "x0": None if x0 is None else np.asarray(x0, dtype=np.float64).tolist(),
    }
    if metadata is not None:
        header["metadata"] = metadata
    if x0 is not None:
        _check_x0(np.asarray(x0), model.state_size, "x0")
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    data = MAGIC + json.dumps(header).encode() + b"\n" + buf.getvalue()
    _atomic_write(Path(path), data)  # a crash never leaves a half-written file


def _check_x0(x0: np.ndarray, n_x: int, where: str) -> None:
    if x0.ndim not in (1, 2) or x0.shape[-1] != n_x or not np.isfinite(x0).all():
        raise SysidFileError(
            f"{where} must be finite with shape ({n_x},) or (E, {n_x}); got shape {x0.shape}."
        )


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    check_regular_file(path, "sysid model file")
    raw = Path(path).read_bytes()
    if not raw.startswith(MAGIC):
        raise SysidFileError(
            f"{path} is not a sysid model file (it does not start with {MAGIC.strip().decode()!r})."
        )
    end = raw.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise SysidFileError(f"{path}: the header line is missing or longer than 1 MiB.")
    try:
        header = json.loads(raw[len(MAGIC) : end].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SysidFileError(f"{path}: the header is not valid JSON ({e}).") from None
    if not isinstance(header, dict) or header.get("kind") not in ("NeuralStateSpace", "NARX"):
        raise SysidFileError(
            f"{path}: the header must name the kind 'NeuralStateSpace' or "
            f"'NARX'; got {header.get('kind') if isinstance(header, dict) else header!r}."
        )
    if not isinstance(header.get("config"), dict):
        raise SysidFileError(f"{path}: the header's config must be an object.")
    return header, raw[end + 1 :]


_ALLOWED = {
    "NeuralStateSpace": {
        "n_u",
        "n_x",
        "n_y",
        "hidden_sizes",
        "residual",
        "output",
        "output_hidden_sizes",
        "linear",
        "activation",
        "encoder_n_init",
        "encoder_hidden_sizes",
    },
    "NARX": {"n_u", "n_y", "na", "nb", "nk", "hidden_sizes", "activation"},
}


def load(path: str | os.PathLike[str]) -> tuple[Any, jnp.ndarray | None]:
    """Read a file written by `save`: returns `(model, x0)` (`x0` is `None` when none was saved).

    Raises `SysidFileError` (a `ValueError`) for a file that is not a valid sysid model file.
    """
    header, payload = read_header(path)
    kind, config = header["kind"], dict(header["config"])
    unknown = set(config) - _ALLOWED[kind]
    if unknown:
        raise SysidFileError(f"{path}: unknown entries {sorted(unknown)} in the header's config.")
    for name in ("hidden_sizes", "output_hidden_sizes", "encoder_hidden_sizes"):
        if name in config:
            if not isinstance(config[name], list):
                raise SysidFileError(f"{path}: config {name} must be a list of integers.")
            config[name] = tuple(config[name])
    cls = NeuralStateSpace if kind == "NeuralStateSpace" else NARX
    enc = (config.pop("encoder_n_init", None), config.pop("encoder_hidden_sizes", (64,)))
    try:
        skeleton = cls(**config, key=jr.key(0))
        if enc[0] is not None and isinstance(skeleton, NeuralStateSpace):
            skeleton = with_encoder(skeleton, enc[0], enc[1], key=jr.key(0))
    except (TypeError, ValueError) as e:
        raise SysidFileError(f"{path}: the header's config is not valid: {e}") from None
    try:
        model = eqx.tree_deserialise_leaves(io.BytesIO(payload), skeleton)
    except Exception as e:
        raise SysidFileError(f"{path}: the arrays do not match the header's model ({e}).") from None
    x0 = header.get("x0")
    if x0 is not None:
        try:
            x0 = np.asarray(x0, dtype=np.float64)
        except (TypeError, ValueError):
            raise SysidFileError(f"{path}: the header's x0 is not an array of numbers.") from None
        _check_x0(x0, model.state_size, f"{path}: x0")
        x0 = jnp.asarray(x0, model.scaler.u_mean.dtype)
    return model, x0
