"""One epoch of `eqx_ffn.fit`'s compiled program from a given network, optimizer state and
epoch: what `partial_fit` runs.

`eqx_ffn.fit` starts every fit at step 0 with a fresh optimizer and returns the network only;
`partial_fit` keeps the optimizer's state between calls (Adam's moments and step count), and
each call's epoch is the next epoch of one long fit. This builds the training state as `fit`
does, puts the kept optimizer state in it, and drives the same compiled program with the
engine's driver pieces from step `epoch * steps_per_epoch` for one epoch. The batches are a
function of the key and the step alone, so K calls on the same data run the steps of one fit
of K epochs, through the program `fit` compiles (none per call).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from ..training._driver import CALL_SECONDS, _call, _histories, _Record
from ..training._fit import as_master, as_model_dtypes, split_model, with_frozen
from ..training._history import History
from ..training._options import MAX_STEPS, FitOptions, check_key
from ..training._prepare import Prepared, initial_state
from ..training._program import lazy_final_losses

__all__ = ["EpochResult", "run_epoch"]


class EpochResult(NamedTuple):
    """What one epoch returned."""

    model: Any  # the trained model (the last with a finite loss if the loss became non-finite)
    history: History  # this epoch's steps
    opt: Any  # the optimizer state to continue from; None after a non-finite loss


def _same_layout(a: Any, b: Any) -> bool:
    """Whether two optimizer states have the same tree, shapes and dtypes."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.shape(x) == np.shape(y) and getattr(x, "dtype", None) == getattr(y, "dtype", None)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _continued(kept: Any, fresh: Any) -> Any:
    """The kept optimizer state, with the fresh one's hyperparameters (the current learning
    rate) where the optimizer injects them; the fresh state when the layouts differ (another
    solver)."""
    if kept is None or not _same_layout(kept, fresh):
        return fresh
    if hasattr(kept, "hyperparams") and hasattr(fresh, "hyperparams"):
        return kept._replace(hyperparams=fresh.hyperparams)
    return kept


def run_epoch(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    kwargs: dict[str, Any],
    *,
    epoch: int,
    steps_per_epoch: int,
    opt: Any,
    stacklevel: int = 2,
) -> EpochResult:
    """Train `model` for one epoch of `eqx_ffn.fit(model, x, y, **kwargs)`: the steps of epoch
    `epoch` of that fit, from the optimizer state `opt` (None: a fresh one).

    **Arguments:** `model`, `x`, `y`, `kwargs` (`fit`'s keywords, without `steps`; no
    validation), `epoch` (which epoch's batches to draw), `steps_per_epoch` (the fit's),
    `opt`, `stacklevel` (of the warnings, above the caller).

    **Returns:** an `EpochResult`.
    """
    t_start = time.perf_counter()
    spe = int(steps_per_epoch)
    t0 = (int(epoch) % max(1, MAX_STEPS // spe - 1)) * spe  # the step counter is an int32
    options = FitOptions.of({**kwargs, "steps": t0 + spe})
    prep = Prepared(model, x, y, options)
    params, frozen, static = split_model(model)
    master = as_master(params, prep.master_dtype)
    key = check_key(options.key)
    state = initial_state(prep, master, frozen, key, options.l1, options.l2, options.rate)
    state = state.update(opt=_continued(opt, state.opt))
    # One chunk of exactly the epoch's steps: the program's optimizer state is then the one
    # after the epoch's last step (steps past the end of a chunk leave the parameters alone but
    # not the optimizer state, which `fit` never reads back).
    cfg = prep.config(static)
    cfg = dataclasses.replace(cfg, chunk=spe, max_chunks=1, unroll=max(1, min(cfg.unroll, spe)))
    penalised = options.penalised
    record = _Record(1, options.steps, prep.eval_every, prep.loss_dtype, penalised)
    record.steps_run[:] = t0
    t, compile_time, result = t0, prep.init_compile_time, state.params
    while record.running():
        state, host, result, seconds = _call(prep, cfg, state, t, CALL_SECONDS, penalised)
        compile_time += seconds
        t = record.add(t, host)
    reasons = record.reasons()
    record.finals = lazy_final_losses(cfg, state, result, prep.data, record.final_loss, reasons)
    record.steps_run = record.steps_run - t0  # the History counts this epoch's steps
    wall = time.perf_counter() - t_start
    (history,) = _histories(prep, record, reasons, wall, compile_time, stacklevel + 1)
    if prep.master_dtype is not None:
        result = as_model_dtypes(result, params)
    trained = with_frozen(result, state.frozen, static)
    keep = state.opt if reasons[0] == "completed" else None
    return EpochResult(trained, history, keep)
