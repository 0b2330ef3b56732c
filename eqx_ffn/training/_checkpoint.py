"""Checkpoints of a running fit: the training state, the step and the History so far, in one
file written atomically, and read back as untrusted data.

File layout (integers little-endian):

| bytes | content                                                                     |
|-------|-----------------------------------------------------------------------------|
| 8     | magic `b"\\x89EQXCKP\\n"`                                                   |
| 8     | `h`, length of the header (uint64)                                          |
| h     | header: UTF-8 JSON (format, version, the fit's fingerprint, array layout)   |
| p     | payload: the state's leaves, then the record's arrays, raw C-order bytes    |
| 32    | SHA-256 of everything before it                                             |

What a checkpoint holds is the whole of what the next program call depends on: the state (the
parameters, the optimizer state, the bookkeeping: early-stopping counters, the best model, the
epoch sums, the device sampler's key and permutation cache), the step (the host sampler draws
each step's batch from the fit's key and the step alone), and the losses recorded so far. So a
resumed fit continues bit for bit.

Reading: the file must be a regular file; the magic, the header's length and the checksum are
checked before the header is parsed; the header must describe this very fit (the fingerprint:
the model's structure, the data's sizes, the options that shape the trajectory) and its arrays
must have exactly the shapes and dtypes this fit's state has, before any byte of the payload is
used. Loading never runs code (JSON and raw numbers, no pickle).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import ArgumentTypeError, check_number, check_path
from ..io._atomic import _atomic_write

PyTree = Any

MAGIC = b"\x89EQXCKP\n"
FORMAT = "eqx_ffn-checkpoint"
FORMAT_VERSION = 1
_LEN = struct.Struct("<Q")
_DIGEST = 32
_MAX_HEADER = 1 << 26


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from: damaged, not a checkpoint, or written by a
    different fit (another model structure, data size or options). The message names the file."""


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"Cannot resume from {path}: {problem}")


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _host(leaf: Any) -> np.ndarray:
    """A leaf as a host array (a typed key as its raw data)."""
    return np.asarray(jax.device_get(jr.key_data(leaf) if _is_key(leaf) else leaf))


def _spec(name: str, arr: Any) -> list[Any]:
    return [name, [int(s) for s in arr.shape], np.dtype(arr.dtype).name]


def state_spec(state: PyTree) -> list[list[Any]]:
    """`[path, shape, dtype]` of each leaf of a training state (keys as their raw data)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    out = []
    for path, leaf in flat:
        shape = jax.eval_shape(jr.key_data, leaf) if _is_key(leaf) else leaf
        out.append(_spec(jax.tree_util.keystr(path), shape))
    return out


def structure_text(tree: PyTree) -> str:
    """The tree's structure as text, without memory addresses (stable across processes)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(jax.tree.structure(tree)))


def _plain(value: Any) -> Any:
    """A JSON value for a fingerprint entry."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return np.asarray(value).tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return type(value).__name__


def save_checkpoint(
    path: Path, fingerprint: dict, state: PyTree, step: int, record: dict, times: tuple
) -> None:
    """Write the state, the step and the record (`name -> array`) to `path` atomically."""
    leaves = [_host(leaf) for leaf in jax.tree.leaves(state)]
    arrays = [np.ascontiguousarray(a) for a in record.values()]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "state": state_spec(state),
        "record": [_spec(name, a) for name, a in zip(record, arrays, strict=True)],
        "step": int(step),
        "times": [float(t) for t in times],
    }
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    parts = [MAGIC, _LEN.pack(len(head)), head, *(a.tobytes() for a in leaves + arrays)]
    body = b"".join(parts)
    _atomic_write(path, body + hashlib.sha256(body).digest())


def _read(path: Path) -> tuple[dict, memoryview]:
    """The checked header and the payload of a checkpoint file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"No checkpoint to resume from: {path} does not exist.") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(path, "it is not a regular file.")
    with open(path, "rb") as f:
        data = f.read(info.st_size)
    head_end = len(MAGIC) + _LEN.size
    if len(data) < head_end + _DIGEST or not data.startswith(MAGIC):
        raise _fail(path, "not an eqx_ffn checkpoint (wrong magic bytes or truncated).")
    (n_head,) = _LEN.unpack_from(data, len(MAGIC))
    if n_head > min(_MAX_HEADER, len(data) - head_end - _DIGEST):
        raise _fail(path, "the header's length field exceeds the file: it is damaged.")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise _fail(path, "the checksum does not match: the file is damaged or was edited.")
    try:
        header = json.loads(data[head_end : head_end + n_head].decode("utf-8"))
    except (ValueError, RecursionError):
        raise _fail(path, "the header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object.")
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise _fail(
            path,
            f"unknown format {header.get('format')!r} version {header.get('format_version')!r} "
            f"(this eqx_ffn reads {FORMAT!r} version {FORMAT_VERSION}).",
        )
    return header, memoryview(data)[head_end + n_head : -_DIGEST]


def _differences(theirs: Any, ours: dict) -> list[str]:
    if not isinstance(theirs, dict):
        return ["the fingerprint is missing"]
    out = []
    for name in sorted(set(ours) | set(theirs)):
        if theirs.get(name) != ours.get(name):
            out.append(f"{name}: {theirs.get(name)!r} in the checkpoint, {ours.get(name)!r} here")
    return out


def _valid_record_spec(spec: Any, expected: dict[str, str]) -> bool:
    """The record's layout: exactly the expected names, each 1-D with the expected dtype."""
    if not isinstance(spec, list) or [s[0] if isinstance(s, list) else None for s in spec] != list(
        expected
    ):
        return False
    for name, shape, dtype in spec:
        ok_shape = isinstance(shape, list) and len(shape) == 1
        if not ok_shape or type(shape[0]) is not int or shape[0] < 0 or dtype != expected[name]:
            return False
    return True


def load_checkpoint(
    path: Path, fingerprint: dict, like: PyTree, record_dtypes: dict[str, str]
) -> tuple[PyTree, int, dict[str, np.ndarray], tuple[float, float]]:
    """`(state, step, record, times)` from `path`, checked against this fit.

    **Arguments:** `fingerprint` of this fit; `like`, its fresh initial state (the shapes,
    dtypes, key types and placement the restored state takes); `record_dtypes`, the record's
    array names and dtypes, in order.

    **Raises:** `FileNotFoundError`; `CheckpointError` naming the file and what is wrong.
    """
    header, payload = _read(path)
    diffs = _differences(header.get("fingerprint"), fingerprint)
    if diffs:
        raise _fail(path, "it was written by a different fit (" + "; ".join(diffs) + ").")
    if header.get("state") != state_spec(like):
        raise _fail(path, "its training state does not match this model and optimizer.")
    spec = header.get("record")
    if not _valid_record_spec(spec, record_dtypes):
        raise _fail(path, "its record of losses is malformed.")
    step = header.get("step")
    times = header.get("times")
    if type(step) is not int or step < 0 or not isinstance(times, list) or len(times) != 2:
        raise _fail(path, "its step or times are malformed.")
    like_leaves, treedef = jax.tree.flatten(like)
    sizes = [int(np.prod(s[1])) * np.dtype(s[2]).itemsize for s in header["state"] + spec]
    if sum(sizes) != len(payload):
        raise _fail(path, f"its payload holds {len(payload)} bytes; its header says {sum(sizes)}.")
    arrays, offset = [], 0
    for (_, shape, dtype), size in zip(header["state"] + spec, sizes, strict=True):
        raw = np.frombuffer(payload[offset : offset + size], dtype=dtype).reshape(shape)
        arrays.append(raw.copy())
        offset += size
    leaves = []
    for raw, leaf in zip(arrays, like_leaves, strict=False):
        value = jr.wrap_key_data(raw, impl=jr.key_impl(leaf)) if _is_key(leaf) else raw
        sharding = getattr(leaf, "sharding", None)
        leaves.append(jax.device_put(value, sharding) if sharding is not None else value)
    record = dict(zip(record_dtypes, arrays[len(like_leaves) :], strict=True))
    state = jax.tree.unflatten(treedef, leaves)
    return state, step, record, (float(times[0]), float(times[1]))


def fingerprint_of(prep: Any, cfg: Any, state: PyTree) -> dict[str, Any]:
    """What a checkpoint must share with the fit that resumes from it: the model's structure,
    the data's sizes, and the options that shape the trajectory."""
    o = prep.options
    val = None if prep.val is None else [_plain(a.shape) for a in jax.tree.leaves(prep.val)]
    key = prep.key_data if prep.key_data is not None else state.key
    return {
        "model": structure_text(cfg.static),
        "ensemble": prep.ensemble,
        "n": prep.n,
        "data": [_plain(a.shape) for a in jax.tree.leaves(prep.data)],
        "validation": val,
        "steps": o.steps,
        "batch_size": prep.batch_size,
        "sampling": o.sampling,
        "drop_last": prep.drop_last,
        "eval_every": prep.eval_every,
        "patience": o.patience,
        "tol": o.tol,
        "n_iter_no_change": o.n_iter_no_change,
        "l1": _plain(o.l1),
        "l2": _plain(o.l2),
        "learning_rate": _plain(o.rate),
        "optimizer": o.optimizer if isinstance(o.optimizer, str) else type(o.optimizer).__name__,
        "loss": o.objective.name,
        "compute_dtype": None if prep.compute_dtype is None else str(prep.compute_dtype),
        "precision": o.matmul_precision,
        "chunk": cfg.chunk,
        "key": None if key is None else _host(key).tolist(),
    }


def check_checkpoint_arguments(
    checkpoint: Any, checkpoint_every: Any, resume: Any
) -> tuple[Path | None, float, bool | Path]:
    """`fit`'s and `sysid.fit`'s `checkpoint`, `checkpoint_every` (seconds) and `resume`,
    checked: `(path or None, seconds, resume)`, `resume` False, True (from `checkpoint`, when
    that file exists) or the path of an existing checkpoint file."""
    path = None
    if checkpoint is not None:
        path = check_path(
            checkpoint, "checkpoint", empty_hint="pass a file path such as 'fit.ckpt'"
        )
    if resume is True and path is None:
        raise ValueError("resume=True resumes from checkpoint=path: pass checkpoint too.")
    every = check_number(checkpoint_every, "checkpoint_every", 0, math.inf, closed=True)
    if resume is None or resume is False or resume is True:
        return path, every, bool(resume)
    if isinstance(resume, (bool, np.bool_)):
        raise ArgumentTypeError(f"resume must be a file path, True or False; got {resume!r}.")
    source = check_path(resume, "resume", empty_hint="pass the checkpoint file to resume from")
    if not source.exists():
        raise FileNotFoundError(
            f"resume={str(source)!r}: no checkpoint to resume from ({source} does not exist)."
        )
    return path, every, source
