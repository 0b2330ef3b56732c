"""The host driver: calls the compiled program chunk after chunk, records the losses, and turns
what the program reports into one `History` per member (and warnings)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _program_cache
from ._config import Config
from ._flat import unraveler
from ._history import DivergenceWarning, History, NonFiniteLossWarning
from ._prepare import Prepared
from ._program import DIVERGENCE_FACTOR, Scalars
from ._sampling import host_indices
from ._state import CONVERGED, DIVERGED, EARLY_STOPPING, NON_FINITE, RUNNING, MemberState

PyTree = Any

CALL_SECONDS = 0.5
"""Run time of one program call without a progress bar: the host checks for Ctrl-C between
calls. With a bar, calls last about 0.2 s (`FitOptions._call_seconds` sets another)."""

_STATUS_NAMES = {
    EARLY_STOPPING: "early_stopping",
    NON_FINITE: "non_finite_loss",
    CONVERGED: "converged",
    DIVERGED: "diverged",
}


def _tqdm(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=True)


@contextlib.contextmanager
def _sigint_as_flag():
    """While training, Ctrl-C sets a flag that the host loop reads between program calls (so the
    model and the History always agree); a second Ctrl-C interrupts at once."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag["set"]:
            signal.signal(signal.SIGINT, old)
            raise KeyboardInterrupt
        flag["set"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # pragma: no cover - not allowed here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


class _Record:
    """What the host knows of each member: its losses so far, status, steps and best step."""

    def __init__(self, k: int, steps: int, eval_every: int):
        self.k, self.steps, self.eval_every = k, steps, eval_every
        self.losses: list[list[np.ndarray]] = [[] for _ in range(k)]
        self.val_losses: list[list[np.ndarray]] = [[] for _ in range(k)]
        self.val_steps: list[list[np.ndarray]] = [[] for _ in range(k)]
        self.steps_run = np.zeros(k, int)
        self.status = np.zeros(k, int)
        self.best_step = np.full(k, -1)
        self.final_loss = np.full(k, np.nan)

    def add(self, t: int, out: dict) -> int:
        """Record one call that started at step `t`; returns the step it ended at."""
        k, steps = self.k, self.steps
        ints = np.asarray(out["ints"])
        t_end = int(ints[0])
        st, stop, best = ints[1:].reshape(3, k)
        buf = np.asarray(out["loss"]).reshape(k, -1)
        vbuf = None if out["val"] is None else np.asarray(out["val"]).reshape(k, -1)
        for j in range(k):
            if self.status[j] != RUNNING or self.steps_run[j] >= steps:
                continue
            after = stop[j] if st[j] != RUNNING else min(t_end, steps)
            ran = int(after) - t
            self.losses[j].append(buf[j, :ran])
            if vbuf is not None:
                s = np.arange(t + 1, t + ran + 1)
                at = (s % self.eval_every == 0) | (s == steps)
                # a member that stopped on a non-finite loss did not evaluate that step
                vals = vbuf[j, :ran][at]
                keep = np.isfinite(vals) | (st[j] != NON_FINITE)
                self.val_losses[j].append(vals[keep])
                self.val_steps[j].append(s[at][keep])
            self.steps_run[j] = after
        self.status, self.best_step = st, best
        self.final_loss = np.asarray(out["final_loss"]).reshape(k)
        return t_end

    def postfix(self) -> dict:
        """The progress bar's latest loss (and validation loss), averaged over members."""
        last = [chunks[-1][-1] for chunks in self.losses if chunks and len(chunks[-1])]
        post = {"loss": f"{np.mean(last):.4g}" if last else "nan"}
        vals = [v[-1][-1] for v in self.val_losses if v and len(v[-1])]
        if vals:
            post["val"] = f"{np.mean(vals):.4g}"
        return post

    def reasons(self) -> list[str]:
        out = []
        for j in range(self.k):
            if self.status[j] != RUNNING:
                out.append(_STATUS_NAMES[int(self.status[j])])
            elif self.steps_run[j] >= self.steps:
                out.append("completed")
            else:
                out.append("interrupted")
        return out


def _call(prep: Prepared, cfg: Config, state: MemberState, t: int, target: float):
    """One program call from step `t`, sized to run about `target` seconds: `(state, out,
    result, compile_seconds)`, `out` on the host (one transfer)."""
    options = prep.options
    steps, c_len = options.steps, cfg.chunk
    remaining = -(-(steps - t) // c_len)
    est = _program_cache.chunk_seconds(cfg) or c_len * prep.schedule.step_seconds
    m = max(1, min(cfg.max_chunks, remaining, int(target / max(est, 1e-9))))
    idx = None
    if prep.host_sampling:
        assert prep.key_data is not None
        count = min(m * c_len, steps - t)
        idx = host_indices(cfg, prep.key_data, prep.n, t, count)
    sc = Scalars(
        t0=t, max_chunks=m, end=steps, n=prep.n, n_iter_no_change=options.n_iter_no_change,
        eval_every=options.eval_every, patience=options.patience,
    )  # fmt: skip
    args = (state, prep.data, prep.val, idx, sc.vector())
    program, seconds = _program_cache.compiled_program(cfg, *args)
    t_call = time.perf_counter()
    state, out = program(*args)
    host = jax.device_get(
        {"ints": out.ints, "loss": out.loss, "val": out.val, "final_loss": out.final_loss}
    )
    elapsed = time.perf_counter() - t_call
    chunks = max(1, (int(host["ints"][0]) - t) // c_len)
    _program_cache.record_chunk_seconds(cfg, elapsed / chunks)
    return state, host, out.result, seconds


def run(
    prep: Prepared,
    cfg: Config,
    state: MemberState,
    *,
    desc: str = "fit",
    t_start: float | None = None,
    stacklevel: int = 2,
):
    """Drive the compiled program. Works for one model or a stacked ensemble.

    Returns `(result_params, histories)`: the parameters each member returns (stacked for an
    ensemble) and one `History` per member. Warnings point `stacklevel` frames above `run`.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    k = prep.ensemble or 1
    steps = prep.options.steps
    record = _Record(k, steps, prep.eval_every)
    compile_time = prep.init_compile_time
    bar = _tqdm(steps, prep.options.show_progress, desc)
    target = 0.2 if bar is not None else CALL_SECONDS
    if prep.options._call_seconds is not None:
        target = prep.options._call_seconds
    result = state.params
    t = 0
    interrupted = False
    try:
        with _sigint_as_flag() as sigint:
            while t < steps:
                state, host, result, seconds = _call(prep, cfg, state, t, target)
                compile_time += seconds
                t = record.add(t, host)
                if bar is not None:
                    bar.update(min(t, steps) - bar.n)
                    bar.set_postfix(record.postfix(), refresh=False)
                if sigint["set"]:
                    interrupted = True
                    break
                if not np.any(record.status == RUNNING):
                    break
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, with what the finished calls trained
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_start
    reasons = record.reasons()
    if interrupted and any(r == "interrupted" for r in reasons):
        good = state.good
        if cfg.param_spec is not None:
            unravel = unraveler(cfg.param_spec)
            good = jax.vmap(unravel)(good) if prep.ensemble is not None else unravel(good)
        result = _keep_finite(result, good, reasons, prep.ensemble is not None)
    return result, _histories(prep, record, reasons, wall, compile_time, stacklevel + 2)


def _message(prep: Prepared, reason: str, steps_run: int, returned, best_step) -> str:
    if reason == "non_finite_loss":
        return (
            f"The training loss became non-finite at step {steps_run}; returned the "
            f"model of step {returned}, the last with a finite loss. Lower the "
            "learning rate or standardise the data."
        )
    if reason == "diverged":
        return (
            f"The training loss diverged at step {steps_run} (it grew more than "
            f"{DIVERGENCE_FACTOR:g}-fold over its lowest value); returned the model of "
            f"step {returned}. Lower the learning rate or standardise the data."
        )
    if reason == "early_stopping":
        return (
            f"Validation loss did not improve for {prep.options.patience} evaluations; stopped "
            f"at step {steps_run} and returned the best model (step {best_step})."
        )
    if reason == "converged":
        return f"Converged after {steps_run} steps (tol={prep.options.tol:g})."
    if reason == "interrupted":
        return f"Interrupted after {steps_run} steps; returned the model trained so far."
    return f"Completed {steps_run} steps."


def _histories(
    prep: Prepared, record: _Record, reasons, wall, compile_time, stacklevel: int
) -> list[History]:
    """One `History` per member; a warning for each that stopped on a bad loss."""
    ldt = prep.loss_dtype
    histories = []
    for j, reason in enumerate(reasons):
        loss_j = np.concatenate(record.losses[j]) if record.losses[j] else np.zeros(0, ldt)
        vals = np.concatenate(record.val_losses[j]) if record.val_losses[j] else np.zeros(0, ldt)
        vsteps = np.concatenate(record.val_steps[j]) if record.val_steps[j] else np.zeros(0, int)
        steps_run, best_step = int(record.steps_run[j]), int(record.best_step[j])
        returned: int | None = None
        if reason in ("non_finite_loss", "diverged"):
            returned = max(steps_run - 1, 0)
        elif prep.options.patience and best_step >= 0 and best_step != steps_run:
            returned = best_step
        msg = _message(prep, reason, steps_run, returned, best_step)
        histories.append(
            History(
                loss=loss_j,
                val_loss=vals.astype(loss_j.dtype),
                val_steps=vsteps.astype(int),
                steps=steps_run,
                stop_reason=reason,
                best_step=returned,
                final_loss=float(record.final_loss[j]),
                wall_time=wall,
                compile_time=compile_time,
                message=msg,
            )
        )
        if reason in ("non_finite_loss", "diverged"):
            who = f"Ensemble member {j}: " if prep.ensemble is not None else ""
            kind = NonFiniteLossWarning if reason == "non_finite_loss" else DivergenceWarning
            warnings.warn(who + msg, kind, stacklevel=stacklevel)
    return histories


def _keep_finite(result: PyTree, good: PyTree, reasons: list[str], ens: bool) -> PyTree:
    """An interrupted member returns its latest parameters, or its last finite ones."""
    k = len(reasons)
    ok = np.ones(k, bool)
    for leaf in jax.tree.leaves(result):
        arr = np.asarray(leaf).reshape(k, -1) if ens else np.asarray(leaf).reshape(1, -1)
        ok &= np.isfinite(arr).all(axis=1)
    if ok.all():
        return result
    use_good = jnp.asarray(~ok)
    if not ens:
        return good
    return jax.tree.map(
        lambda g, r: jnp.where(use_good.reshape((-1,) + (1,) * (r.ndim - 1)), g, r), good, result
    )
