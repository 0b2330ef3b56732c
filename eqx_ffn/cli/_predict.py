"""`eqx-ffn predict`: a saved model on the rows of a table, as CSV (labels and probabilities for a
classifier)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._common import TEMPORARY, UsageError, check_file, float_dtype, note, one_line, predict_proba


def _valid_names(value: Any, count: int | None, field: str) -> list[str]:
    from ..io._table import _NAME_SAFE, MAX_NAME_CHARS

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of column names")
    if count is not None and len(value) != count:
        raise ValueError(f"{field} names {len(value)} columns but the network has {count}")
    for v in value:
        if not v or len(v) > MAX_NAME_CHARS or _NAME_SAFE.search(v):
            raise ValueError(f"{field} holds an invalid name {v[:40]!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{field} repeats a name")
    return value


def _classes(meta: dict[str, Any], model: Any) -> list[Any]:
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(
        isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in classes
    ):
        raise ValueError("classes must be a list of labels (strings or numbers)")
    if len(classes) != model.out_size or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be {model.out_size} distinct labels (one per output)")
    _valid_names([str(c) for c in classes], None, "classes")
    return classes


def _model_metadata(path: Path, header: dict[str, Any], model: Any) -> dict[str, Any]:
    """The metadata `eqx-ffn fit` stores, checked against the network (`{}` when there is none)."""
    meta = header.get("metadata")
    if meta is None:
        return {}
    try:
        if not isinstance(meta, dict):
            raise ValueError("it is not a mapping")
        task = meta.get("task", "regress")
        if task not in ("regress", "classify"):
            raise ValueError(f"task is {task!r}, not 'regress' or 'classify'")
        out: dict[str, Any] = {"task": task}
        if "x_cols" in meta:
            out["x_cols"] = _valid_names(meta["x_cols"], model.in_size, "x_cols")
        if "x_arrays" in meta:
            out["x_arrays"] = _valid_names(meta["x_arrays"], None, "x_arrays")
        if task == "classify":
            out["classes"] = _classes(meta, model)
            out["y_cols"] = _valid_names(meta.get("y_cols", ["class"]), 1, "y_cols")
        elif "y_cols" in meta:
            out["y_cols"] = _valid_names(meta["y_cols"], model.out_size, "y_cols")
        return out
    except ValueError as e:
        raise UsageError(
            f"{path}: the model's metadata is malformed ({e}); was it written by eqx-ffn fit?"
        ) from None


def load_model(path_text: str) -> tuple[Path, Any, dict[str, Any]]:
    """`(path, model, metadata)` of a model file, or a one-line `UsageError`."""
    from ..io._model_file import ModelFileError, load, read_header

    path = check_file(path_text, "model file")
    try:
        header = read_header(path)
        model = load(path)
    except ModelFileError as e:
        raise UsageError(one_line(e)) from None
    except (RecursionError, MemoryError, UnicodeError, KeyError, TypeError) as e:
        raise UsageError(
            f"Cannot load {path}: not a valid model file ({type(e).__name__})"
        ) from None
    if not hasattr(model, "in_size") or not hasattr(model, "out_size"):
        raise UsageError(f"{path} holds a {type(model).__name__}, not a network eqx-ffn can use")
    return path, model, _model_metadata(path, header, model)


def _check_args(args: argparse.Namespace, path: Path, model: Any, meta: dict[str, Any]) -> Any:
    """The input columns to read (checked against the model), before the table is read."""
    if args.proba and meta.get("task", "regress") != "classify":
        raise UsageError(
            f"--proba needs a classifier, but {path} was fitted for regression; leave out --proba"
        )
    npz = Path(args.data).suffix.lower() == ".npz"
    x_cols = args.x_cols or meta.get("x_arrays" if npz and "x_arrays" in meta else "x_cols")
    if not x_cols:
        raise UsageError(f"{path} does not record its input columns; name them with --x-cols")
    if len(x_cols) != model.in_size and not npz:
        raise UsageError(
            f"--x-cols names {len(x_cols)} columns but the model takes {model.in_size} "
            f"inputs{_fitted_on(meta)}"
        )
    if args.out is not None:
        if not args.out.strip():
            raise UsageError("--out needs a file name; got an empty string")
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is a folder; give a file name such as preds.csv")
    return x_cols


def _fitted_on(meta: dict[str, Any]) -> str:
    return f" (it was fitted on {', '.join(meta['x_cols'])})" if "x_cols" in meta else ""


def _columns(args: argparse.Namespace, meta: dict[str, Any], out: Any, n_out: int) -> tuple:
    """`(header, columns)` of the CSV: labels (and probabilities), or the predicted outputs."""
    import numpy as np

    if meta.get("task", "regress") == "classify":
        classes = meta["classes"]
        name = meta["y_cols"][0]
        labels = np.asarray([str(c) for c in classes])[out.argmax(axis=1)]
        header = [f"{name}_pred"]
        cols: list[Any] = [labels]
        if args.proba:
            header += [f"P({name}={c})" for c in classes]
            cols += list(out.T)
        return header, cols
    names = meta.get("y_cols") or [f"y{i + 1}" for i in range(n_out)]
    return [f"{n}_pred" for n in names], list(out.T)


def predict(args: argparse.Namespace) -> int:
    """Run `eqx-ffn predict`."""
    import numpy as np

    from ..io._read_table import read_table
    from ..io._write_csv import _write_rows, write_csv
    from ..training._predict import predict as predict_rows

    path, model, meta = load_model(args.model)
    x_cols = _check_args(args, path, model, meta)
    table = read_table(
        args.data,
        x_cols,
        [],
        delimiter=args.delimiter,
        drop_missing=args.drop_missing,
        dtype=float_dtype(),
    )
    if table.x.shape[1] != model.in_size:  # arrays of an .npz: counted once read
        raise UsageError(
            f"--x-cols arrays {', '.join(map(str, x_cols))} give {table.x.shape[1]} columns but "
            f"the model takes {model.in_size} inputs{_fitted_on(meta)}"
        )
    if table.n_dropped:
        note(
            args,
            f"note: dropped {table.n_dropped} rows with missing values (--drop-missing); the "
            "predictions are for the other rows",
        )
    x = table.x.astype(float_dtype())
    classify = meta.get("task", "regress") == "classify"
    out = predict_proba(model, x) if classify else np.asarray(predict_rows(model, x))
    bad = np.asarray(~np.isfinite(out).all(axis=1))
    if bad.any():
        raise UsageError(
            f"{path} gives NaN or inf for {int(bad.sum())} of {bad.size} rows (the first is data "
            f"row {int(np.argmax(bad)) + 1}); its parameters or these inputs are out of range"
        )
    header, cols = _columns(args, meta, out, model.out_size)
    if args.out is None:
        _write_rows(sys.stdout, header, cols, ",")
        return 0
    target = Path(args.out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    TEMPORARY.add(tmp)
    try:  # written whole or not at all (Ctrl-C, a full disk)
        write_csv(tmp, cols, header)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        TEMPORARY.discard(tmp)
    print(f"wrote {len(cols[0])} predictions to {args.out}", file=sys.stderr)
    return 0
