"""`sysid.fit`: a dynamical model fitted to measured records by simulation or prediction error."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._validation import ArgumentTypeError, check_bool, check_int, check_number, unknown_name
from ..training._driver import _sigint_as_flag
from ..training._history import History
from ._checkpoint import fingerprint, key_list, loss_dtype, session
from ._experiment import Experiment, Scaler, as_experiments
from ._models import NARX, check_model
from ._programs import (
    CHUNK,
    CONVERGED,
    NON_FINITE,
    compiled,
    join_static,
    lm_chunk,
    optax_chunk,
    split_static,
    sq_norm,
    train_loss,
    validation_loss,
)
from ._simulate import check_sizes, estimate_initial_state
from ._truncated import (
    attach_encoder,
    check_truncated,
    truncated_chunk,
    truncated_loss,
    window_data,
)

CRITERIA = ("simulation", "one_step", "truncated")
"""`"simulation"`: free-run simulation error from learned initial states (output error);
`"one_step"`: a NARX's one-step prediction error from measured regressors; `"truncated"`:
simulation error of mini-batches of short windows, each started from an encoded state."""

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lbfgs", "lm", "gauss_newton")
"""Optimizer names `sysid.fit` takes (or pass any `optax.GradientTransformation`)."""


class NonFiniteSimulationWarning(RuntimeWarning):
    """The training loss became NaN/inf (the simulation blew up); the last good model is kept."""


@functools.cache
def _named_optax(name: str) -> optax.GradientTransformation:
    """One transform object per name (the compiled programs are cached on it).

    The learning rate is the last link's injected `step_size` (`-learning_rate`, set per fit), so
    it is an input of the program; the rest is optax's own transform, so `"adam"` computes
    exactly `optax.adam(learning_rate)`'s updates.
    """
    if name == "lbfgs":
        return optax.lbfgs()
    direction = {
        "adam": optax.scale_by_adam,
        "adamw": lambda: optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(1e-4)),
        "sgd": optax.identity,
        "rmsprop": lambda: optax.scale_by_rms(decay=0.9, eps=1e-8),
    }[name]()
    return optax.chain(direction, optax.inject_hyperparams(optax.scale)(step_size=-1e-3))


@dataclasses.dataclass
class _Run:
    """What the step loop keeps between chunks."""

    vars: Any
    state: Any
    losses: list
    val_losses: list = dataclasses.field(default_factory=list)
    val_steps: list = dataclasses.field(default_factory=list)
    steps: int = 0
    compile_time: float = 0.0
    stop: str = "completed"
    best: Any = None
    best_step: int | None = None
    best_val: float = math.inf
    bad_evals: int = 0
    window: int = 0
    prior_wall: float = 0.0
    chunk: int = CHUNK


def _check_options(model, records, criterion, optimizer, learning_rate, steps, l2, x0):
    """Validate fit's arguments; returns `(optimizer_kind, learning_rate, x0s)`."""
    for i, e in enumerate(records):
        check_sizes(model, e, f"experiments[{i}]")
    if criterion not in CRITERIA:
        raise unknown_name("criterion", criterion, CRITERIA)
    if criterion == "one_step" and not isinstance(model, NARX):
        raise ValueError(
            "criterion='one_step' needs a NARX model (a state-space model's one-step "
            "prediction needs its state); use criterion='simulation'."
        )
    lag = model.lag if isinstance(model, NARX) else 0
    for i, e in enumerate(records):
        if e.T <= lag + 1:
            raise ValueError(
                f"experiments[{i}] has {e.T} samples; the NARX lags need more than {lag + 1}."
            )
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate applies to a named optimizer; an optax optimizer "
                "object carries its own (pass learning_rate=None)."
            )
        kind = "optax"
    elif isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        kind = "lm" if optimizer in ("lm", "gauss_newton") else optimizer
    else:
        raise unknown_name(
            "optimizer", optimizer, OPTIMIZERS, " or an optax.GradientTransformation"
        )
    if kind in ("lm", "lbfgs") and learning_rate is not None:
        raise ValueError(
            f"learning_rate does not apply to optimizer={optimizer!r} (its steps come from the "
            "model's curvature and a line search or damping); leave learning_rate=None."
        )
    lr = check_number(1e-3 if learning_rate is None else learning_rate, "learning_rate", 0.0)
    check_int(steps, "steps", 0)
    check_number(l2, "l2", 0.0, closed=True)
    n_x = model.state_size
    # the penalty's dtype, traced abstractly (an eager sum would compile a kernel a leaf)
    dtype = jax.eval_shape(sq_norm, eqx.filter(model, eqx.is_inexact_array)).dtype
    if x0 is None:
        x0s = jnp.zeros((len(records), n_x), dtype)
    else:
        x0s = jnp.asarray(x0, dtype).reshape(-1, n_x) if jnp.size(x0) % n_x == 0 else None
        if x0s is None or x0s.shape[0] != len(records):
            raise ValueError(
                f"x0 must have shape ({n_x},) for one record or ({len(records)}, "
                f"{n_x}) for {len(records)}; got {jnp.shape(x0)}."
            )
    return kind, lr, x0s


def _split_model(model):
    """`(params, rest)`: the trainable arrays and everything else (the scaler included)."""
    spec = jax.tree.map(eqx.is_inexact_array, model)
    spec = eqx.tree_at(lambda m: m.scaler, spec, jax.tree.map(lambda _: False, model.scaler))
    return eqx.partition(model, spec)


def fit(
    model,
    experiments: Experiment | list[Experiment],
    *,
    criterion: str = "simulation",
    optimizer: Any = "adam",
    learning_rate: float | None = None,
    steps: int = 1000,
    l2: float = 0.0,
    x0: Any = None,
    standardize: bool = True,
    validation: Experiment | None = None,
    eval_every: int = 100,
    patience: int = 10,
    tol: float = 0.0,
    progress: bool = False,
    window: int | None = None,
    batch_size: int = 64,
    encoder: dict | None = None,
    key: Any = None,
    checkpoint: Any = None,
    checkpoint_every: float = 60.0,
    resume: Any = False,
    _chunk: int = CHUNK,
):
    """Fit a `NeuralStateSpace` or `NARX` to measured records.

    **Arguments:**

    - `model`: the model to train (its architecture and starting parameters).
    - `experiments`: one `Experiment` or a list (records of one system, each with its own
      initial state).
    - `criterion`: `"simulation"` (default: the mean squared free-run simulation error of every
      record, minimised over the parameters and each record's initial state, as the lecture),
      `"one_step"` (a NARX's one-step prediction error) or `"truncated"` (mini-batches of
      `batch_size` windows of `window` samples drawn from all records, each window's initial
      state from an encoder over the `n_init` measured samples before it, trained jointly; a
      NARX starts from its measured memory instead).
    - `optimizer`: `"adam"` (default), `"adamw"`, `"sgd"`, `"rmsprop"`, `"lbfgs"`, `"lm"`
      (Levenberg-Marquardt on the residuals, Jacobian through the simulation; `"gauss_newton"`
      is the same), or any `optax.GradientTransformation` (then `learning_rate=None`).
    - `learning_rate`: a named optax optimizer's (default 1e-3).
    - `steps`: optimizer steps (LM: iterations), run in compiled chunks of up to 100.
    - `l2`: penalty `l2 * ||params||²` added to the loss (initial states not penalised).
    - `x0`: starting initial state(s), `(n_x,)` or `(E, n_x)`; default zeros.
    - `standardize`: fit `model.scaler` to the training records (default); `False` keeps the
      model's scaler.
    - `validation`: a record for early stopping: every `eval_every` steps its simulation error
      after its first `validation.n_init` samples (50 when 0), its initial state estimated from
      them, is measured; after `patience` evaluations without improvement the fit stops and the
      best model is returned.
    - `tol`: LM stops (`"converged"`) when the gradient's largest entry falls below `tol`.
    - `progress`: show a progress bar (tqdm).
    - `window`, `batch_size`: the truncated criterion's window length and windows per step.
    - `encoder`: the truncated criterion's encoder settings, `{"n_init": 50, "hidden_sizes":
      (64,)}` by default; the encoder (an `FFN`) becomes `model.encoder` and serves
      `estimate_initial_state`; a model that has one of that `n_init` keeps it.
    - `key`: a `jax.random` key for the truncated criterion's windows and encoder (default
      `jax.random.key(0)`).
    - `checkpoint`: a file path: the fit writes there, atomically (a reader sees the old file or
      the new one), everything it needs to continue (the parameters and initial states, the
      optimizer state, the steps run, the losses so far, the early-stopping state), as
      `eqx_ffn.fit` does: after a compiled chunk once `checkpoint_every` seconds have passed
      since the last checkpoint (default 60; 0: after every chunk), and when the fit ends or is
      interrupted (Ctrl-C). Checkpointing leaves the chunks as they are: the fit's result is
      the same, bit for bit, with or without it.
    - `resume`: a checkpoint file to continue from (it must exist), or `True`: continue from
      `checkpoint` if that file exists, else start afresh. Pass the same model, records and
      options as the fit that wrote it (`checkpoint_every` may differ): a checkpoint of another
      model structure, other records or other options raises `eqx_ffn.CheckpointError`, naming
      the file. The resumed fit returns the same model, initial states and `History.loss`, bit
      for bit on the same machine, as the uninterrupted one (`wall_time` sums the sessions).

    **Returns:** `(model, x0, history)`: the trained model (its scaler set), the learned initial
    state(s) in the model's units (`(n_x,)` for one `Experiment`, `(E, n_x)` for a list;
    estimated from each record's first samples for `"one_step"` and `"truncated"`), and an
    `eqx_ffn.History`. A non-finite loss stops the fit with a `NonFiniteSimulationWarning` and
    returns the last model whose loss was finite; Ctrl-C returns the model trained so far.
    Steps, learning rate and `l2` are inputs of the compiled program: another fit of the same
    structure compiles nothing.

    The underscored `_chunk` (steps per program call at most, default and largest 100) is a
    setting for tests, not a keyword to use: it shapes Levenberg-Marquardt's result.
    """
    start = time.perf_counter()
    model = check_model(model)
    records = as_experiments(experiments)
    kind, lr, x0s = _check_options(
        model, records, criterion, optimizer, learning_rate, steps, l2, x0
    )
    check_bool(standardize, "standardize")
    chunk = check_int(_chunk, "_chunk", 1, CHUNK)
    ses = session(checkpoint, checkpoint_every, resume)
    ses.start = start
    if standardize:
        model = eqx.tree_at(lambda m: m.scaler, model, Scaler.fit(records))
    trunc = None
    if criterion == "truncated":
        win, batch, settings = check_truncated(model, records, window, batch_size, encoder, kind)
        key = jax.random.key(0) if key is None else key
        k_enc, key = jax.random.split(key)
        model = attach_encoder(model, settings, k_enc)
        trunc = (settings["n_init"], win, batch, key)
    val = _validation_setup(model, validation, eval_every, patience)
    params, rest = _split_model(model)
    rest_arrays, rest_static = split_static(rest)
    sc = model.scaler
    data = tuple((sc.u_in(jnp.asarray(e.u)), sc.y_in(jnp.asarray(e.y))) for e in records)
    dtype = x0s.dtype
    l2a = jnp.asarray(l2, dtype)
    run = _Run(vars=(params, x0s.astype(dtype)), state=None, losses=[], chunk=chunk)
    if trunc is not None:
        data = window_data(records, sc, trunc[0], trunc[1])
        run.window = trunc[1]
        call = _truncated_call(
            run, kind, optimizer, lr, dtype, rest_static, rest_arrays, data, l2a, trunc
        )
    elif kind == "lm":
        run.state = (jnp.asarray(-1.0, dtype), jnp.asarray(2.0, dtype))
        tol_a = jnp.asarray(check_number(tol, "tol", 0.0, closed=True), dtype)

        def call(n):
            program, t = compiled(
                "lm",
                lm_chunk,
                (rest_static, criterion),
                (run.vars, run.state, rest_arrays, data, l2a, n, tol_a),
            )
            run.compile_time += t
            return program((run.vars, run.state, rest_arrays, data, l2a, n, tol_a))
    else:
        opt = _named_optax(kind) if kind != "optax" else optimizer
        run.state = opt.init(run.vars)
        if kind not in ("optax", "lbfgs"):
            run.state[-1].hyperparams["step_size"] = jnp.asarray(-lr, dtype)
        static = (rest_static, opt, criterion, kind == "lbfgs")

        def call(n):
            program, t = compiled(
                "optax", optax_chunk, static, (run.vars, run.state, rest_arrays, data, l2a, n)
            )
            run.compile_time += t
            return program((run.vars, run.state, rest_arrays, data, l2a, n))

    if ses.active:
        opts = (kind, optimizer, criterion, lr, steps, l2, tol, standardize, val, trunc, chunk)
        ses.fingerprint = fingerprint(model, records, validation, _options_fingerprint(*opts))
    dtype_loss = loss_dtype(kind, run.vars)
    ses.restore_run(run, dtype_loss, steps)
    _loop(run, call, steps, val, (rest_static, rest_arrays), progress, (ses, dtype_loss))
    return _finish(
        run, model, records, experiments, criterion, rest_static, rest_arrays, data, l2a, start
    )


def _options_fingerprint(
    kind, optimizer, criterion, lr, steps, l2, tol, standardize, val, trunc, chunk
):
    """The options of `fit` that shape its trajectory, as JSON values (for a checkpoint)."""
    return {
        "criterion": criterion,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
        "learning_rate": None if kind in ("lm", "lbfgs") else float(lr),
        "steps": int(steps),
        "l2": float(l2),
        "tol": float(tol) if kind == "lm" else None,
        "standardize": bool(standardize),
        "eval_every": None if val is None else val["every"],
        "patience": None if val is None else val["patience"],
        "truncated": None if trunc is None else [*trunc[:3], key_list(trunc[3])],
        "chunk": int(chunk),
    }


def _truncated_call(run, kind, optimizer, lr, dtype, rest_static, rest_arrays, data, l2a, trunc):
    """The chunk caller of the truncated criterion (its state: the optimizer's and the key)."""
    n_init, win, batch, key = trunc
    opt = _named_optax(kind) if kind != "optax" else optimizer
    opt_state: Any = opt.init(run.vars)
    if kind != "optax":
        opt_state[-1].hyperparams["step_size"] = jnp.asarray(-lr, dtype)
    run.state = (opt_state, key)
    static = (rest_static, opt, n_init, win, batch)

    def call(n):
        dyn = (run.vars, run.state, rest_arrays, data, l2a, n)
        program, t = compiled("truncated", truncated_chunk, static, dyn)
        run.compile_time += t
        return program(dyn)

    return call


def _validation_setup(model, validation, eval_every, patience):
    if validation is None:
        return None
    if not isinstance(validation, Experiment):
        raise ArgumentTypeError(
            f"validation must be a sysid.Experiment or None; got {type(validation).__name__}."
        )
    check_sizes(model, validation, "validation")
    n_init = validation.n_init or min(50, validation.T // 2)
    if validation.T - n_init < 1:
        raise ValueError(f"validation has {validation.T} samples, no more than its n_init.")
    return {
        "record": validation,
        "n_init": n_init,
        "every": check_int(eval_every, "eval_every"),
        "patience": check_int(patience, "patience"),
    }


def _evaluate(run: _Run, val, rest_static, rest_arrays) -> None:
    """Measure the validation loss at the current parameters; track the best (early stopping)."""
    params, x0s = run.vars
    model = eqx.combine(params, join_static(rest_arrays, rest_static))
    sc = model.scaler
    rec = val["record"]
    uy = (sc.u_in(jnp.asarray(rec.u)), sc.y_in(jnp.asarray(rec.y)))
    starts = jnp.concatenate([jnp.zeros((1, x0s.shape[1]), x0s.dtype), jnp.mean(x0s, 0)[None]])
    model_arrays, model_static = split_static(model)
    dyn = (model_arrays, uy, starts)
    program, t = compiled("validation", validation_loss, (model_static, val["n_init"]), dyn)
    run.compile_time += t
    value = float(program(dyn))
    run.val_losses.append(value)
    run.val_steps.append(run.steps)
    if value < run.best_val:
        run.best_val, run.best, run.best_step, run.bad_evals = value, run.vars, run.steps, 0
    else:
        run.bad_evals += 1
        if run.bad_evals >= val["patience"]:
            run.stop = "early_stopping"


def _loop(run: _Run, call, steps: int, val, rest, progress: bool, saving) -> None:
    """Call the chunk program until `steps` are run or a stop condition holds; checkpoints
    (`saving`: the `Session` and the loss dtype) after a chunk once `checkpoint_every` seconds
    have passed, and at the end."""
    ses, dtype = saving
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="sysid.fit", unit="step", initial=run.steps)
    try:
        with _sigint_as_flag() as sigint:
            if val is not None and not run.val_steps:  # a resumed fit has evaluated step 0
                _evaluate(run, val, *rest)
            while run.steps < steps and run.stop == "completed":
                n = min(run.chunk, steps - run.steps)
                if val is not None:
                    n = min(n, val["every"] - run.steps % val["every"])
                out = call(jnp.asarray(n, jnp.int32))
                run.vars, run.state, buf, done, code = out
                done, code = int(done), int(code)
                run.losses.append(np.asarray(buf)[:done])  # (a device slice compiles a size)
                run.steps += done
                if bar is not None:
                    bar.update(done)
                    bar.set_postfix(loss=f"{float(buf[done - 1]):.4g}" if done else "n/a")
                if code == NON_FINITE:
                    run.stop = "non_finite_loss"
                elif code == CONVERGED:
                    run.stop = "converged"
                elif val is not None and run.steps % val["every"] == 0:
                    _evaluate(run, val, *rest)
                if sigint["set"] and run.stop == "completed":
                    run.stop = "interrupted"
                elif ses.due():
                    ses.save_run(run, dtype)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, with what the finished chunks trained
        run.stop = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    ses.save_run(run, dtype)


def _n_init(model, record: Experiment) -> int:
    """The window that estimates a record's initial state after a fit without learned ones."""
    return min(record.T, getattr(model, "encoder_n_init", 0) or 50)


_MESSAGES = {
    "completed": "ran all {steps} steps",
    "converged": "converged after {steps} steps",
    "early_stopping": "stopped early after {steps} steps; the best validation model (step "
    "{best}) is returned",
    "non_finite_loss": "the training loss became non-finite after {steps} steps (the simulation "
    "blew up); the last model with a finite loss is returned. Lower the learning rate, "
    "standardise the data, or add l2",
    "interrupted": "interrupted after {steps} steps",
}


def _finish(
    run, model, records, experiments, criterion, rest_static, rest_arrays, data, l2a, start
):
    """Assemble `(model, x0, history)` from the loop's state."""
    if run.best is not None and run.best_step != run.steps:
        run.vars = run.best  # the best validation model
    else:
        run.best_step = None
    params, x0s = run.vars
    _, rest = _split_model(model)
    trained = eqx.combine(params, rest)
    final = math.nan
    if run.stop != "interrupted":
        dyn = (run.vars, rest_arrays, data, l2a)
        if criterion == "truncated":
            n_init = getattr(trained, "encoder_n_init", 0) or trained.lag
            static = (rest_static, n_init, run.window)
            program, t = compiled("truncated_loss", truncated_loss, static, dyn)
        else:
            program, t = compiled("loss", train_loss, (rest_static, criterion), dyn)
        run.compile_time += t
        final = float(program(dyn))
    if criterion != "simulation":  # no initial state was learned: estimate each record's
        x0s = jnp.stack([estimate_initial_state(trained, e, _n_init(trained, e)) for e in records])
    message = _MESSAGES[run.stop].format(steps=run.steps, best=run.best_step)
    if run.stop == "non_finite_loss":
        warnings.warn(message, NonFiniteSimulationWarning, stacklevel=3)
    loss = np.concatenate(run.losses) if run.losses else np.zeros(0, np.float32)
    history = History(
        loss=loss,
        val_loss=np.asarray(run.val_losses, np.float32),
        val_steps=np.asarray(run.val_steps, np.int64),
        steps=run.steps,
        stop_reason=run.stop,
        best_step=run.best_step,
        final_loss=final,
        wall_time=run.prior_wall + time.perf_counter() - start,
        compile_time=run.compile_time,
        message=f"sysid.fit {message}.",
        # without l2 the loss is the data loss; with it, the per-step penalty is not recorded
        data_loss=loss if float(l2a) == 0.0 else None,
    )
    x0_out = x0s[0] if isinstance(experiments, Experiment) else x0s
    return trained, x0_out, history
