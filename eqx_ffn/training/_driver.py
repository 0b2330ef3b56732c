"""The host driver: calls the compiled program chunk after chunk, records the losses, and turns
what the program reports into one `History` per member (and warnings).

Calls are pipelined: the next call is dispatched (its inputs are the device's future outputs of
this one) before the host reads this call's losses, runs the callbacks, writes a checkpoint or
updates the progress bar, so the host's work between calls overlaps the device's. A call
dispatched past the end of the fit (a callback, Ctrl-C, or every member stopping) is left to
finish and its results are not used: the model and History are those of the calls read."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _program_cache
from ._callbacks import (
    STOP_REASON,
    FitInfo,
    run_callbacks,
    sized_for_callbacks,
    snapshot_steps,
    unpack,
)
from ._checkpoint import CheckpointError, fingerprint_of, load_checkpoint, save_checkpoint
from ._config import Config
from ._flat import unraveler
from ._history import DivergenceWarning, History, NonFiniteLossWarning
from ._prepare import Prepared
from ._program import DIVERGENCE_FACTOR, Scalars, lazy_final_losses
from ._sampling import host_indices
from ._state import CONVERGED, DIVERGED, EARLY_STOPPING, NON_FINITE, RUNNING, Ints, MemberState

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


class _Buffer:
    """A growing 1-D array (amortised O(1) appends; `view` is O(1))."""

    def __init__(self, dtype: Any):
        self.data, self.n = np.zeros(0, dtype), 0

    def append(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.zeros(max(need, 2 * len(self.data), 256), self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : need] = values
        self.n = need

    def view(self) -> np.ndarray:
        out = self.data[: self.n]
        out.flags.writeable = False
        return out


class _Record:
    """What the host knows of each member: its losses so far, status, steps and best step.
    `penalised`: some member has an `l1`/`l2` penalty (only then is the data loss recorded
    apart: without one it is the loss)."""

    def __init__(self, k: int, steps: int, eval_every: int, dtype: Any, penalised: bool = False):
        self.k, self.steps, self.eval_every, self.dtype = k, steps, eval_every, np.dtype(dtype)
        self.penalised = penalised
        names = ("loss", "data_loss") if penalised else ("loss",)
        self.buffers = {
            (name, j): _Buffer(int if name == "val_steps" else dtype)
            for j in range(k)
            for name in (*names, "val_loss", "val_steps")
        }
        self.steps_run = np.zeros(k, np.int64)
        self.status = np.zeros(k, np.int64)
        self.best_step = np.full(k, -1, np.int64)
        self.final_loss = np.full(k, np.nan, self.dtype)
        self.finals: Any = None  # each member's History.final_loss (a number or a function)

    def view(self, name: str, j: int) -> np.ndarray:
        """Member `j`'s `"loss"`, `"data_loss"`, `"val_loss"` or `"val_steps"` so far
        (read-only)."""
        if name == "data_loss" and not self.penalised:
            name = "loss"
        return self.buffers[(name, j)].view()

    def add(self, t: int, out: dict) -> int:
        """Record one call that started at step `t`; returns the step it ended at."""
        k, steps = self.k, self.steps
        ints = np.asarray(out["ints"])
        t_end = int(ints[0])
        st, stop, best = ints[1:].reshape(3, k)
        buf = np.asarray(out["loss"]).reshape(k, -1)
        dbuf = None if out.get("data_loss") is None else np.asarray(out["data_loss"]).reshape(k, -1)
        vbuf = None if out["val"] is None else np.asarray(out["val"]).reshape(k, -1)
        for j in range(k):
            if self.status[j] != RUNNING or self.steps_run[j] >= steps:
                continue
            after = stop[j] if st[j] != RUNNING else min(t_end, steps)
            ran = int(after) - t
            self.buffers[("loss", j)].append(buf[j, :ran])
            if self.penalised:
                assert dbuf is not None
                self.buffers[("data_loss", j)].append(dbuf[j, :ran])
            if vbuf is not None:
                s = np.arange(t + 1, t + ran + 1)
                at = (s % self.eval_every == 0) | (s == steps)
                # a member that stopped on a non-finite loss did not evaluate that step
                vals = vbuf[j, :ran][at]
                keep = np.isfinite(vals) | (st[j] != NON_FINITE)
                self.buffers[("val_loss", j)].append(vals[keep])
                self.buffers[("val_steps", j)].append(s[at][keep])
            self.steps_run[j] = after
        self.status, self.best_step = st.astype(np.int64), best.astype(np.int64)
        self.final_loss = np.asarray(out["final_loss"]).reshape(k).astype(self.dtype)
        return t_end

    def truncate(self, t: int, ints: np.ndarray) -> None:
        """Cut the record back to step `t` (a callback stopped the fit at a snapshot); `ints`:
        each member's `Ints` there."""
        ints = ints.reshape(self.k, -1)
        for j in range(self.k):
            keep = int(min(self.steps_run[j], t))
            for name in ("loss", "data_loss") if self.penalised else ("loss",):
                self.buffers[(name, j)].n = keep
            n_val = int(np.searchsorted(self.view("val_steps", j), t, side="right"))
            self.buffers[("val_loss", j)].n = self.buffers[("val_steps", j)].n = n_val
            self.steps_run[j] = keep
        self.status = ints[:, Ints._fields.index("status")].astype(np.int64)
        self.best_step = ints[:, Ints._fields.index("best_step")].astype(np.int64)
        self.final_loss = np.full(self.k, np.nan, self.dtype)

    def layout(self) -> dict[str, str]:
        """The names and dtypes of `arrays()`, in order (what a checkpoint holds)."""
        out = {name: np.dtype(buf.data.dtype).name for (name, _), buf in self._named()}
        for name in ("steps_run", "status", "best_step"):
            out[name] = "int64"
        out["final_loss"] = self.dtype.name
        return out

    def _named(self):
        return [((f"{name}/{j}", j), buf) for (name, j), buf in self.buffers.items()]

    def arrays(self) -> dict[str, np.ndarray]:
        """The record as named arrays (for a checkpoint)."""
        out = {name: buf.view() for (name, _), buf in self._named()}
        out.update(
            steps_run=self.steps_run, status=self.status, best_step=self.best_step,
            final_loss=self.final_loss,
        )  # fmt: skip
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> bool:
        """Take the record from a checkpoint's arrays; False if they do not hang together."""
        for (name, j), buf in self.buffers.items():
            buf.n = 0
            buf.append(arrays[f"{name}/{j}"])
        for name in ("steps_run", "status", "best_step", "final_loss"):
            if arrays[name].shape != (self.k,):
                return False
            setattr(self, name, arrays[name].copy())
        lengths = np.array([self.buffers[("loss", j)].n for j in range(self.k)])
        ok_status = np.isin(self.status, [*_STATUS_NAMES, RUNNING])
        steps_ok = np.all((self.steps_run >= 0) & (self.steps_run <= self.steps))
        return bool(ok_status.all() and steps_ok and np.array_equal(lengths, self.steps_run))

    def postfix(self) -> dict:
        """The progress bar's latest loss (and validation loss), averaged over members."""
        last = [b.data[b.n - 1] for (n, _), b in self.buffers.items() if n == "loss" and b.n]
        post = {"loss": f"{np.mean(last):.4g}" if last else "nan"}
        vals = [b.data[b.n - 1] for (n, _), b in self.buffers.items() if n == "val_loss" and b.n]
        if vals:
            post["val"] = f"{np.mean(vals):.4g}"
        return post

    def running(self) -> bool:
        """Whether some member still has steps to run."""
        return bool(np.any((self.status == RUNNING) & (self.steps_run < self.steps)))

    def reasons(self, stopped: str = "interrupted") -> list[str]:
        out = []
        for j in range(self.k):
            if self.status[j] != RUNNING:
                out.append(_STATUS_NAMES[int(self.status[j])])
            elif self.steps_run[j] >= self.steps:
                out.append("completed")
            else:
                out.append(stopped)
        return out


class _Pending(NamedTuple):
    """A program call dispatched (running, or queued behind the previous one): its outputs are
    device arrays until `_fetch` reads them."""

    t: int  # the step it starts at
    end: int  # the step it ends at when no member stops: t + its chunks * chunk
    state: MemberState
    out: Any  # the program's `Output`
    compile_seconds: float
    dispatched: float  # perf_counter() when dispatched


def _dispatch(
    prep: Prepared,
    cfg: Config,
    state: MemberState,
    t: int,
    target: float,
    programs: dict | None = None,
) -> _Pending:
    """Dispatch one program call from step `t`, sized to run about `target` seconds (within the
    chunks `cfg` allows: `sized_for_callbacks` caps them at one callback interval, or makes a
    call end on one when it snapshots them); it runs while the host goes on. `programs` (one
    fit's calls share it) keeps the program found for each index shape: the later calls of a
    fit skip the program cache's key (a signature of every argument)."""
    options = prep.options
    steps, c_len = options.steps, cfg.chunk
    remaining = max(1, -(-(steps - t) // c_len))
    est = _program_cache.chunk_seconds(cfg) or c_len * prep.schedule.step_seconds
    m = max(1, min(cfg.max_chunks, remaining, int(target / max(est, 1e-9))))
    if cfg.snap_chunks:  # a call that snapshots its callback intervals ends on one
        m = max(cfg.snap_chunks, m - m % cfg.snap_chunks)
    idx = None
    if prep.host_sampling:
        assert prep.key_data is not None
        count = max(0, min(m * c_len, steps - t))
        idx = host_indices(cfg, prep.key_data, prep.n, t, count)
    sc = Scalars(
        t0=t, max_chunks=m, end=steps, n=prep.n, n_iter_no_change=options.n_iter_no_change,
        eval_every=options.eval_every, patience=options.patience,
    )  # fmt: skip
    args = (state, prep.data, prep.val, idx, sc.vector())
    shape = None if idx is None else idx.shape
    program = None if programs is None else programs.get(shape)
    seconds = 0.0
    if program is None:
        program, seconds = _program_cache.compiled_program(cfg, *args)
        if programs is not None:
            programs[shape] = program
    dispatched = time.perf_counter()
    state, out = program(*args)
    return _Pending(t, t + m * c_len, state, out, seconds, dispatched)


def _fetch(cfg: Config, call: _Pending, penalised, busy_until: float) -> dict:
    """Wait for a dispatched call and read its outputs onto the host (one transfer); records
    the run time of its chunks (from when it could start: its dispatch, or the end of the call
    before it, `busy_until`)."""
    out = call.out
    data_loss = out.data_loss if penalised else None  # else equal to `loss`
    host = jax.device_get(
        {"ints": out.ints, "loss": out.loss, "data_loss": data_loss, "val": out.val,
         "final_loss": out.final_loss}
    )  # fmt: skip
    elapsed = time.perf_counter() - max(call.dispatched, busy_until)
    chunks = (int(host["ints"][0]) - call.t) // cfg.chunk
    if chunks > 0:
        _program_cache.record_chunk_seconds(cfg, elapsed / chunks)
    return host


def _call(
    prep: Prepared,
    cfg: Config,
    state: MemberState,
    t: int,
    target: float,
    penalised,
    programs: dict | None = None,
):
    """One program call from step `t`, waited for: `(state, host, result, compile_seconds)`,
    `host` the outputs on the host (see `_dispatch`, `_fetch`)."""
    call = _dispatch(prep, cfg, state, t, target, programs)
    host = _fetch(cfg, call, penalised, 0.0)
    return call.state, host, call.out.result, call.compile_seconds


class _Session:
    """Checkpoints and callbacks around the driver's loop (host work between program calls)."""

    def __init__(self, prep: Prepared, cfg: Config, record: _Record, to_model: Callable | None):
        o = prep.options
        self.prep, self.cfg, self.record, self.to_model = prep, cfg, record, to_model
        self.path = o.checkpoint
        self.every = o.checkpoint_every
        self.last_save = time.perf_counter()
        self.fingerprint: dict | None = None

    def resume(self, state: MemberState) -> tuple[MemberState, int, tuple[float, float]]:
        """The state, step and prior `(wall, compile)` seconds to start from."""
        o, record = self.prep.options, self.record
        source = self.path if o.resume is True else o.resume
        if not source or (o.resume is True and not os.path.exists(source)):
            return state, 0, (0.0, 0.0)
        source = Path(source)
        fp = self._fingerprint(state)
        state, t, arrays, times = load_checkpoint(source, fp, state, record.layout())
        if not record.restore(arrays) or t > o.steps + self.cfg.chunk * self.cfg.max_chunks:
            raise CheckpointError(
                f"Cannot resume from {source}: its record of losses does not match its state."
            )
        return state, t, times

    def _fingerprint(self, state: MemberState) -> dict:
        if self.fingerprint is None:
            self.fingerprint = fingerprint_of(self.prep, self.cfg, state)
        return self.fingerprint

    def save(self, state: MemberState, t: int, times: tuple, force: bool) -> None:
        """Write the checkpoint when `checkpoint_every` seconds have passed (or `force`)."""
        now = time.perf_counter()
        if self.path is None or not (force or now - self.last_save >= self.every):
            return
        fp = self._fingerprint(state)
        save_checkpoint(Path(self.path), fp, state, t, self.record.arrays(), times)
        self.last_save = time.perf_counter()

    def callbacks(self, call: _Pending, t: int, result: PyTree, state: MemberState):
        """Run the callbacks where they are due in a call that ended at step `t`: at each of
        its snapshots, then at its end. When one asks to stop: `(step, state, result)` to end
        the fit with (the record cut back to that step); else None."""
        snaps = call.out.snaps
        for i, b in enumerate(snapshot_steps(self.cfg, call.t, t)):
            # read from the device once, and only if the callback asks for the model or stops
            slot = functools.cache(lambda i=i: unpack(snaps, i, (state, result)))
            if self._run(b, lambda slot=slot: slot()[1], state):
                s_state, s_result = slot()
                self.record.truncate(b, np.asarray(s_state.ints))
                return b, s_state, s_result
        return (t, state, result) if self._run(t, lambda: result, state) else None

    def _run(self, t: int, result_fn: Callable, state: MemberState) -> bool:
        cfg, to_model = self.cfg, self.to_model

        def model():
            result = result_fn()
            if to_model is not None:
                return to_model(result)
            parts = (result,) if state.frozen is None else (result, state.frozen)
            return eqx.combine(*parts, cfg.static)

        steps = self.prep.options.steps
        info = FitInfo(int(min(t, steps)), steps, self.record, self.prep.ensemble, model, t)
        return run_callbacks(self.prep.options.callbacks, info)


def run(
    prep: Prepared,
    cfg: Config,
    state: MemberState,
    *,
    desc: str = "fit",
    t_start: float | None = None,
    stacklevel: int = 2,
    to_model: Callable | None = None,
):
    """Drive the compiled program. Works for one model or a stacked ensemble.

    Resumes from a checkpoint and writes checkpoints when the options ask for it, and runs the
    callbacks after each call (`to_model(result)` builds the model they see; default: the
    trained arrays with the state's fixed ones and the static part).

    Returns `(result_params, histories)`: the parameters each member returns (stacked for an
    ensemble) and one `History` per member. Warnings point `stacklevel` frames above `run`.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    steps = prep.options.steps
    cfg = sized_for_callbacks(prep.options, cfg, prep.schedule.step_seconds, state)
    penalised = prep.options.penalised
    record = _Record(prep.ensemble or 1, steps, prep.eval_every, prep.loss_dtype, penalised)
    session = _Session(prep, cfg, record, to_model)
    state, t, (prior_wall, prior_compile) = session.resume(state)
    compile_time = prep.init_compile_time + prior_compile
    bar = _tqdm(steps, prep.options.show_progress, desc)
    if bar is not None and t:
        bar.update(min(t, steps))
    target = 0.2 if bar is not None else CALL_SECONDS
    if prep.options._call_seconds is not None:
        target = prep.options._call_seconds
    result = state.params
    stopped = None
    programs: dict = {}
    ahead: _Pending | None = None  # the next call, dispatched before the host reads this one
    try:
        with _sigint_as_flag() as sigint:
            call: _Pending | None = _dispatch(prep, cfg, state, t, target, programs)
            busy_until = 0.0
            while call is not None:
                compile_time += call.compile_seconds
                # the next call runs on the device while the host reads, records and calls
                # back on this one (it is discarded if this one ends the fit)
                ahead = None
                if call.end < steps:
                    ahead = _dispatch(prep, cfg, call.state, call.end, target, programs)
                host = _fetch(cfg, call, penalised, busy_until)
                busy_until = time.perf_counter()
                state, result = call.state, call.out.result
                t = record.add(call.t, host)
                if bar is not None:
                    bar.update(min(t, steps) - bar.n)
                    bar.set_postfix(record.postfix(), refresh=False)
                if prep.options.callbacks:
                    stop = session.callbacks(call, t, result, state)
                    if stop is not None:
                        stopped, (t, state, result) = STOP_REASON, stop
                        if bar is not None:
                            bar.update(min(t, steps) - bar.n)
                if sigint["set"]:
                    stopped = "interrupted"
                times = (prior_wall + time.perf_counter() - t_start, compile_time)
                session.save(state, t, times, force=stopped is not None or not record.running())
                if stopped is not None or not record.running():
                    break
                assert ahead is not None and ahead.t == t  # running members: steps remain
                call, ahead = ahead, None
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, with what the finished calls trained
        stopped = "interrupted"
    finally:
        if ahead is not None:  # a call past the end of the fit: let it finish, unused
            jax.block_until_ready(ahead.out.ints)
        if bar is not None:
            bar.close()
    wall = prior_wall + time.perf_counter() - t_start
    reasons = record.reasons(stopped or "interrupted")
    if stopped is not None and any(r == stopped for r in reasons):
        good = state.good
        if cfg.param_spec is not None:
            unravel = unraveler(cfg.param_spec)
            good = jax.vmap(unravel)(good) if prep.ensemble is not None else unravel(good)
        result = _keep_finite(result, good, reasons, prep.ensemble is not None)
    record.finals = lazy_final_losses(cfg, state, result, prep.data, record.final_loss, reasons)
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
    if reason == STOP_REASON:
        return f"Stopped by a callback after {steps_run} steps; returned the model trained so far."
    return f"Completed {steps_run} steps."


def _histories(
    prep: Prepared, record: _Record, reasons, wall, compile_time, stacklevel: int
) -> list[History]:
    """One `History` per member; a warning for each that stopped on a bad loss."""
    histories = []
    for j, reason in enumerate(reasons):
        loss_j = record.view("loss", j).copy()
        # without a penalty the data loss IS the loss: the same array
        data_j = record.view("data_loss", j).copy() if record.penalised else loss_j
        vals, vsteps = record.view("val_loss", j).copy(), record.view("val_steps", j).copy()
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
                data_loss=data_j,
                val_loss=vals.astype(loss_j.dtype),
                val_steps=vsteps.astype(int),
                steps=steps_run,
                stop_reason=reason,
                best_step=returned,
                final_loss=record.finals[j],
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
    if not ens:
        return good
    use_good = jax.device_put(~ok)
    return jax.tree.map(
        lambda g, r: jnp.where(use_good.reshape((-1,) + (1,) * (r.ndim - 1)), g, r), good, result
    )
