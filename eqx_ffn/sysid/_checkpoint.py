"""Checkpoints of `sysid.fit` and `sysid.fit_ensemble`, in `eqx_ffn`'s checkpoint format.

A checkpoint holds everything the next program call depends on: the parameters and initial
states, the optimizer state (Levenberg-Marquardt's damping, the truncated criterion's key), the
steps run, the losses so far and the early-stopping state (the best parameters, their step and
validation loss, the evaluations without improvement, the validation losses). The file is
`training/_checkpoint.py`'s (written atomically, read back as untrusted data, refused when it
was written by another fit: another model structure, other records or other options).

`checkpoint_every` counts seconds, as `eqx_ffn.fit`'s: a checkpoint is written at the first
chunk boundary once that many seconds have passed since the last one (0: after every chunk),
and always when the fit ends or is interrupted. Checkpointing never changes where the compiled
chunks end (a Levenberg-Marquardt chunk starts by linearising afresh, so the chunks' ends shape
its result): a checkpointed fit equals the plain one bit for bit, and `checkpoint_every` is no
part of the check that a checkpoint belongs to the fit resuming from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..training._checkpoint import (
    CheckpointError,
    check_checkpoint_arguments,
    load_checkpoint,
    save_checkpoint,
    structure_text,
)

_CODES = {"completed": 0, "interrupted": 0, "early_stopping": 1, "non_finite_loss": 2}
_CODES["converged"] = 3
_NAMES = {0: "completed", 1: "early_stopping", 2: "non_finite_loss", 3: "converged"}


def loss_dtype(kind: str, vars_: Any) -> str:
    """The dtype of the chunk programs' loss buffers (`_programs`, `_truncated`): the
    parameters' for Levenberg-Marquardt, JAX's default float for the optax optimizers."""
    if kind == "lm":
        return np.dtype(jax.eval_shape(lambda v: ravel_pytree(v)[0], vars_).dtype).name
    return np.dtype(jnp.result_type(float)).name


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(model, records, validation, options: dict) -> dict[str, Any]:
    """What a checkpoint shares with the fit that resumes from it: the model's structure and
    array shapes, the records' shapes and values (a digest), and the options that shape the
    trajectory (`options`, JSON values)."""
    arrays = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    val = [] if validation is None else [validation]
    return {
        "model": structure_text(model),
        "arrays": [[list(a.shape), np.dtype(a.dtype).name] for a in arrays],
        "records": [[list(np.shape(e.u)), list(np.shape(e.y))] for e in records],
        "validation": [[list(np.shape(e.u)), list(np.shape(e.y)), e.n_init] for e in val],
        "data_sha256": _digest([a for e in [*records, *val] for a in (e.u, e.y)]),
        **options,
    }


def key_list(key: Any) -> list | None:
    """A `jax.random` key as a JSON list (for a fingerprint)."""
    if key is None:
        return None
    return np.asarray(jax.random.key_data(key)).tolist()


@dataclasses.dataclass
class Session:
    """Where and when a sysid fit writes checkpoints, and what it resumes from."""

    path: Path | None
    every: float
    source: Path | None
    start: float = dataclasses.field(default_factory=time.perf_counter)
    last_save: float = dataclasses.field(default_factory=time.perf_counter)
    fingerprint: dict | None = None
    saved: Any = None

    @property
    def active(self) -> bool:
        """Whether the fit writes or reads a checkpoint (then it needs its fingerprint)."""
        return self.path is not None or self.source is not None

    def due(self) -> bool:
        """Whether `every` seconds have passed since the last checkpoint (or the start)."""
        return self.path is not None and time.perf_counter() - self.last_save >= self.every

    def _write(self, tree, step: int, record: dict, times: tuple[float, float], mark) -> None:
        """Save unless this very state (`mark`: its step and stop codes) was saved last."""
        if self.path is None or self.fingerprint is None:
            return
        if (step, mark) == self.saved:
            return
        save_checkpoint(self.path, self.fingerprint, tree, step, record, times)
        self.saved = (step, mark)
        self.last_save = time.perf_counter()

    def times(self, prior_wall: float, compile_time: float) -> tuple[float, float]:
        """`(wall, compile)` seconds of the fit so far, earlier sessions included."""
        return prior_wall + time.perf_counter() - self.start, compile_time

    def _load(self, like, dtypes: dict[str, str]):
        assert self.source is not None and self.fingerprint is not None
        return load_checkpoint(self.source, self.fingerprint, like, dtypes)

    def _bad(self) -> CheckpointError:
        return CheckpointError(
            f"Cannot resume from {self.source}: its record of losses does not match its state."
        )

    # ---- sysid.fit --------------------------------------------------------------------------

    def save_run(self, run, dtype: str) -> None:
        """Write `run` (`sysid._fit._Run`) when a checkpoint path is set."""
        if self.path is None:
            return
        best = run.vars if run.best is None else run.best
        has_best = run.best is not None
        meta = [_CODES[run.stop], -1 if run.best_step is None else run.best_step, run.bad_evals]
        record = {
            "loss": np.concatenate([np.zeros(0, dtype), *run.losses]).astype(dtype),
            "val_loss": np.asarray(run.val_losses, np.float64),
            "val_steps": np.asarray(run.val_steps, np.int64),
            "meta": np.asarray([*meta, int(has_best)], np.int64),
            "best_val": np.asarray([run.best_val], np.float64),
        }
        tree = (run.vars, run.state, best)
        times = self.times(run.prior_wall, run.compile_time)
        self._write(tree, run.steps, record, times, meta[0])

    def restore_run(self, run, dtype: str, steps: int) -> None:
        """Continue `run` (fresh) from the checkpoint `source`, when one is set."""
        if self.source is None:
            return
        dtypes = {"loss": dtype, "val_loss": "float64", "val_steps": "int64"}
        dtypes.update(meta="int64", best_val="float64")
        tree, step, rec, times = self._load((run.vars, run.state, run.vars), dtypes)
        meta = rec["meta"]
        ok = (
            meta.shape == (4,)
            and rec["best_val"].shape == (1,)
            and int(meta[0]) in _NAMES
            and rec["loss"].shape == (step,)
            and step <= steps
            and rec["val_loss"].shape == rec["val_steps"].shape
            and -1 <= int(meta[1]) <= step
        )
        if not ok:
            raise self._bad()
        run.vars, run.state, best = tree
        run.losses = [rec["loss"]] if step else []
        run.val_losses = [float(v) for v in rec["val_loss"]]
        run.val_steps = [int(s) for s in rec["val_steps"]]
        run.steps, run.stop = step, _NAMES[int(meta[0])]
        run.best_step = None if meta[1] < 0 else int(meta[1])
        run.bad_evals, run.best = int(meta[2]), best if meta[3] else None
        run.best_val = float(rec["best_val"][0])
        run.prior_wall, run.compile_time = times

    # ---- sysid.fit_ensemble -----------------------------------------------------------------

    def save_ensemble(self, ens, dtype: str) -> None:
        """Write the ensemble's loop state (`sysid._ensemble._Loop`)."""
        if self.path is None:
            return
        k = len(ens.done)
        record = {
            f"loss/{i}": np.concatenate([np.zeros(0, dtype), *(b[i] for b in ens.buffers)])
            for i in range(k)
        }
        record["done"] = np.asarray(ens.done, np.int64)
        record["codes"] = np.asarray(ens.codes, np.int64)
        step = int(ens.done.max(initial=0))
        times = self.times(ens.prior_wall, ens.compile_time)
        self._write((ens.vars, ens.state), step, record, times, tuple(record["codes"].tolist()))

    def restore_ensemble(self, ens, dtype: str, steps: int) -> None:
        """Continue the ensemble's loop state from the checkpoint `source`, when one is set."""
        if self.source is None:
            return
        k = len(ens.done)
        dtypes = {f"loss/{i}": dtype for i in range(k)}
        dtypes.update(done="int64", codes="int64")
        tree, _, rec, times = self._load((ens.vars, ens.state), dtypes)
        done, codes = rec["done"], rec["codes"]
        ok = done.shape == codes.shape == (k,) and bool(np.all((done >= 0) & (done <= steps)))
        if not ok or any(rec[f"loss/{i}"].shape != (done[i],) for i in range(k)):
            raise self._bad()
        ens.vars, ens.state = tree
        ens.buffers = [[rec[f"loss/{i}"] for i in range(k)]]
        ens.done, ens.codes = done.copy(), codes.copy()
        ens.prior_wall, ens.compile_time = times


def session(checkpoint: Any, checkpoint_every: Any, resume: Any) -> Session:
    """The checked `checkpoint`, `checkpoint_every` and `resume` arguments as a `Session`."""
    path, every, resume = check_checkpoint_arguments(checkpoint, checkpoint_every, resume)
    if resume is True:
        return Session(path, every, path if path is not None and path.exists() else None)
    return Session(path, every, resume or None)
