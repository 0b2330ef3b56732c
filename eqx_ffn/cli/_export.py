"""`eqx-ffn export`: a saved model as a StableHLO program (`jax.export`) that runs without
eqx_ffn."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ._common import UsageError, one_line
from ._predict import load_model


def _check_output(text: str, model_path: Path) -> Path:
    """The file to write: a name, not a folder, in a folder that exists and can be written."""
    if not text.strip():
        raise UsageError(
            "the output needs a file name such as model.stablehlo; got an empty string"
        )
    target = Path(text)
    if target.is_dir():
        raise UsageError(f"output {target} is a folder; give a file name such as model.stablehlo")
    if target.resolve() == model_path.resolve():
        raise UsageError(f"output {target} is the model file itself; give another name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {target}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {target}: no permission to write in {folder}")
    return target


def _described(model: Any, meta: dict[str, Any]) -> tuple[str, str]:
    """`(inputs, outputs)` in words: shapes with the symbolic batch, dtype, column names."""
    import equinox as eqx
    import jax

    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    dtype = leaves[0].dtype if leaves else "float"
    inputs = f"inputs (batch, {model.in_size}) {dtype}"
    if meta.get("x_cols"):
        inputs += f" [{', '.join(meta['x_cols'])}]"
    if meta.get("task") == "classify":
        classes = ", ".join(map(str, meta["classes"]))
        outputs = f"logits (batch, {model.out_size}) [{classes}; softmax for probabilities]"
    else:
        outputs = f"outputs (batch, {model.out_size})"
        if meta.get("y_cols"):
            outputs += f" [{', '.join(meta['y_cols'])}]"
    if type(model).__name__ == "Standardized":
        outputs += ", scalers inside"
    return inputs, outputs


def export(args: argparse.Namespace) -> int:
    """Run `eqx-ffn export`: load the model file, write its StableHLO program, say so."""
    from ..io._export import export as export_model

    path, model, meta = load_model(args.model)
    target = _check_output(args.output, path)
    try:
        export_model(model, target, platforms=args.platforms)
    except ImportError as e:  # flatbuffers missing: the message names the extra to install
        raise UsageError(one_line(e)) from None
    except (TypeError, ValueError) as e:  # a model the exporter refuses
        raise UsageError(f"cannot export {path}: {one_line(e)}") from None
    inputs, outputs = _described(model, meta)
    if args.platforms:
        platforms = ", ".join(args.platforms)
    else:
        import jax

        platforms = f"this machine's platform ({jax.default_backend()})"
    print(
        f"wrote {target}: a StableHLO program mapping {inputs} to {outputs}, batch size "
        f"symbolic, lowered for {platforms}; read it without eqx_ffn with "
        f"jax.export.deserialize(open({str(target)!r}, 'rb').read()).call(x)"
    )
    return 0
