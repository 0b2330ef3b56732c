"""The public training entry points: `fit` (one compiled loop for a whole fit) and `make_step`
(the lecture's step, for hand-written loops).

The path the data take through `fit`: the keywords become one `FitOptions` (checked once) ->
`Prepared` checks the data, places and pads them, and sizes the schedule -> the initial state
(one compiled call) -> the program is compiled or reused (`_program_cache`) -> the host driver
runs its chunks (`_driver.run`) -> a `History`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..model._standardize import Standardizer
from ..solvers._resolve import resolve_solver
from ..solvers._solver import Solver, as_step
from ._cache_key import identity_memo
from ._driver import run
from ._history import History
from ._losses import resolve_loss
from ._objective import Objective, loss_dtype
from ._options import FitOptions, check_compute_dtype, check_key, resolve_precision
from ._placement import Device
from ._prepare import Prepared, initial_state
from ._program import precision_context

PyTree = Any
Model = TypeVar("Model")


def make_step(
    loss_fn: str | Callable = "mse",
    optimizer: optax.GradientTransformation | str = "adam",
    *,
    compute_dtype: Any = None,
    precision: str | None = None,
) -> Callable:
    """The lecture's training step in Equinox form, for users who write their own loop.

    **Arguments:**

    - `loss_fn`: a loss name (`"mse"`, `"mae"`, `"huber"`, `"softmax_cross_entropy"`) or a
      callable `loss(model, x, y) -> scalar` on a batch.
    - `optimizer`: an `optax.GradientTransformation` (or a name, with its default learning rate).
    - `compute_dtype`: run the forward and backward pass in this dtype (e.g. `jnp.bfloat16`);
      parameters and optimizer state keep theirs, the loss is reduced in float32.
    - `precision`: matmul precision, `"default"`, `"high"` or `"highest"` (`None`: JAX's default).

    **Returns:** `step(model, opt_state, x, y) -> (model, opt_state, loss)`, an `eqx.filter_jit`
    function; `loss` is the value before the update. Initialise `opt_state` with
    `optimizer.init(eqx.filter(model, eqx.is_inexact_array))`.

    ```python
    optimizer = optax.adam(1e-2)
    step = eqx_ffn.make_step("mse", optimizer)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    for _ in range(2000):
        model, opt_state, loss = step(model, opt_state, x, y)
    ```
    """
    loss = resolve_loss(loss_fn)
    # a name: its default learning rate; an optax object stays itself (the caller's state)
    solver, _ = resolve_solver(optimizer, share_named=False)
    dtype = check_compute_dtype(compute_dtype)
    prec = None if precision is None else resolve_precision(precision)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        params, static = eqx.partition(model, eqx.is_inexact_array)
        objective = Objective(loss, None, static, l1=0.0, l2=0.0, tol=0.0, compute_dtype=dtype)
        w = None if loss.fn is not None else jnp.ones(x.shape[0], loss_dtype(params))
        with precision_context(prec):
            out = as_step(solver.step(objective, params, opt_state, (x, y, w)))
        params, opt_state, value = out.params, out.state, out.loss
        return eqx.combine(params, static), opt_state, value

    return step


def trainable(model: PyTree) -> PyTree:
    """The filter spec of what `fit` trains: floating arrays, except inside a `Standardizer`."""

    def spec(node):
        if isinstance(node, Standardizer):
            return jax.tree.map(lambda _: False, node)
        return eqx.is_inexact_array(node)

    return jax.tree.map(spec, model, is_leaf=lambda n: isinstance(n, Standardizer))


@identity_memo
def split_model(model: PyTree) -> tuple[PyTree, PyTree, PyTree]:
    """`(params, frozen, static)`: trained arrays, fixed arrays, and the rest (the same objects
    for the same model: fitting one model again keys its program from the same parts)."""
    params, rest = eqx.partition(model, trainable(model))
    frozen, static = eqx.partition(rest, eqx.is_array)
    return params, frozen, static


def as_master(params: PyTree, master_dtype) -> PyTree:
    """Low-precision parameters as float32 master copies (`master_dtype`), else as they are."""
    if master_dtype is None:
        return params
    return jax.tree.map(
        lambda a: a.astype(master_dtype) if jnp.dtype(a.dtype).itemsize < 4 else a, params
    )


def as_model_dtypes(result: PyTree, like: PyTree) -> PyTree:
    """Trained master copies back in the model's own dtypes."""
    return jax.tree.map(lambda r, p: r.astype(p.dtype), result, like)


def fit(
    model: Model,
    x: Any,
    y: Any,
    *,
    optimizer: str | optax.GradientTransformation | Solver = "adam",
    learning_rate: float | None = None,
    steps: int = 2000,
    batch_size: int | None = None,
    loss: str | Callable[..., Any] = "mse",
    key: jax.Array | None = None,
    validation: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    tol: float | None = None,
    n_iter_no_change: int = 10,
    sample_weight: Any = None,
    sampling: str = "epoch",
    drop_last: bool = False,
    progress: bool | None = None,
    mesh: Any = None,
    device: str | Device | None = None,
    compute_dtype: Any = None,
    precision: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: float = 60.0,
    resume: bool | str | os.PathLike[str] = False,
    callbacks: Sequence[Callable[..., Any]] = (),
    callback_every: int | None = None,
) -> tuple[Model, History]:
    """Train `model` on `(x, y)` in one compiled loop; returns `(trained_model, History)`.

    **Arguments:**

    - `model`: an `FFN` (or `Standardized`, or any module with `in_size`/`out_size` that maps one
      sample to one output). Its floating arrays are trained, except `Standardizer`s.
    - `x`: inputs, shape `(N, in_size)`: a JAX or NumPy array, a pandas DataFrame, nested lists.
      `y`: targets, shape `(N, out_size)` (or `(N,)` when `out_size == 1`); for
      `loss="softmax_cross_entropy"` integer class labels of shape `(N,)`.
    - `optimizer`: any `optax.GradientTransformation`, an `eqx_ffn.Solver`, or a name: `"adam"`
      (default), `"adamw"`, `"sgd"`, `"rmsprop"`, `"lbfgs"` (optax's L-BFGS with its zoom line
      search, full batch), `"levenberg_marquardt"` (`"lm"`) or `"gauss_newton"` (full batch,
      `loss="mse"`). `learning_rate` sets a named optimizer's step size (default `1e-2`, the
      lecture's; L-BFGS uses its line search when left `None`).
    - `steps`: optimisation steps (default 2000).
    - `batch_size`: `None` (default) for full batch; else mini-batches drawn from the WHOLE data
      set: with `sampling="epoch"` (default) a fresh permutation every epoch, each sample used
      once per epoch, the last smaller batch used unless `drop_last=True`;
      `sampling="replacement"` draws each batch's indices with replacement, like the lecture.
    - `loss`: `"mse"` (default), `"mae"`, `"huber"`, `"softmax_cross_entropy"`, or a callable
      `loss(model, x_batch, y_batch) -> scalar`.
    - `key`: a `jax.random` key for batch sampling; `None` means `jax.random.key(0)`. The same key
      gives the same result, bit for bit, on the same machine. On a CPU the batch indices are
      drawn on the host with NumPy's PCG64 (seeded by the key and the epoch); on an accelerator
      with `jax.random` on the device: the batches differ between the two.
    - `validation`: `(x_val, y_val)`, evaluated every `eval_every` steps (default `steps // 50`)
      and at the end, inside the compiled loop.
    - `patience`: stop after this many evaluations without a better validation loss and return
      the best model.
    - `l1`, `l2`: penalties `l1 * sum|W| + l2 * sum W**2` on weights (not biases).
    - `tol`, `n_iter_no_change`: convergence; the fit stops with `stop_reason="converged"` when
      the solver's own test passes (L-BFGS: largest gradient entry <= `tol`, or a relative
      decrease under `1e-3 * tol`; Levenberg-Marquardt and Gauss-Newton likewise), or, for
      first-order optimizers, when the epoch's training loss (its batch losses averaged, weighted
      by their sample weights) has not beaten the best epoch's by `tol` for more than
      `n_iter_no_change` (default 10) epochs: scikit-learn's MLP rule (full batch: one step is
      an epoch). `tol=None`: the solver's default (L-BFGS `1e-5`; first-order
      optimizers 0, never stop early).
    - `sample_weight`: shape `(N,)`, weights each sample's loss (named losses only).
    - `progress`: a tqdm bar; default on when stderr is a terminal.
    - `mesh`: a `jax.sharding.Mesh` (its first axis splits the batch) or a list of devices: the
      data are sharded over the devices, the parameters replicated (data parallel).
    - `device`: where to run, e.g. `"cpu"` or a `jax.Device`; default the data's device or JAX's
      default (a small full-batch L-BFGS fit runs on the host CPU when the default is a GPU:
      see `LBFGS_ON_CPU_MAX_WORK`).
    - `compute_dtype`: run the forward and backward pass in this dtype (`jnp.bfloat16` for mixed
      precision); parameters and optimizer state keep their dtype, losses are float32. A model
      whose parameters are bfloat16/float16 trains float32 master copies, computes in its own
      dtype and is returned in it.
    - `precision`: matmul precision, `"default"`, `"high"` or `"highest"`; `None` follows
      `jax.default_matmul_precision`. Part of the compiled program's identity.
    - `checkpoint`: a file path: the fit writes there, atomically (a reader sees the old file or
      the new one), its whole state (the model, the optimizer state, the step, the early-stopping
      and convergence bookkeeping, the sampler's state) and the History so far, between program
      calls, at most every `checkpoint_every` seconds (default 60; 0: after every call) and when
      the fit ends, is interrupted or is stopped by a callback.
    - `resume`: a checkpoint file to continue from (it must exist), or `True`: continue from
      `checkpoint` if that file exists, else start afresh. Pass the same model, data and
      options as the fit that wrote it (checked: a checkpoint of another model structure, data
      size or options raises `CheckpointError`, naming the file). The resumed fit returns the
      same model, bit for bit on the same machine, as the uninterrupted one (its History's
      `wall_time` sums the sessions).
    - `callbacks`: functions `f(info)` the host calls after each program call (about every half
      second; with `callback_every`, every that many steps rounded up to the program's chunk of
      steps), with `info` an `eqx_ffn.FitInfo` of that step: `step`, `loss`, `val_loss`,
      `val_steps`, `model` (built on request). Returning `True` or calling `info.stop()` ends
      the fit there with `stop_reason="callback"` and the model of that step. Nothing runs on
      the host per step: where `callback_every` steps take much less time than a program call
      costs, one call runs several intervals and keeps the state at the end of each, and their
      callbacks run in order when it returns.

    **Returns:** `(model, history)`. If the loss becomes NaN/inf the fit stops, warns
    (`NonFiniteLossWarning`) and returns the last model with a finite loss;
    `history.stop_reason` says why it stopped. Ctrl-C ends the fit within about half a second and
    returns the model trained so far, with `stop_reason="interrupted"` (a second Ctrl-C stops at
    once).

    Compiling: one program per network structure, loss, optimizer, batch size and padded data
    size (N padded to the next power of two up to 2048 rows, then to 4 sizes per octave):
    learning rates, `l1`, `l2`, `tol`, `steps`, sample weights, validation data, `eval_every`
    and `patience` are run-time inputs and never recompile (above 65,536 weights, an `l1` or
    `l2` that is 0 is left out of the program: making it nonzero compiles once).

    ```python
    model = eqx_ffn.FFN(1, 1, (16,), key=jr.key(0))
    model, history = eqx_ffn.fit(model, x, y, steps=2000)
    ```
    """
    t_start = time.perf_counter()
    options = FitOptions.of(locals())  # the keywords above, by name (a test keeps them in step)
    return fit_with(model, x, y, options, t_start=t_start, stacklevel=3)


def fit_with(
    model: Model,
    x: Any,
    y: Any,
    options: FitOptions,
    *,
    t_start: float | None = None,
    stacklevel: int = 2,
) -> tuple[Model, History]:
    """`fit(model, x, y, **keywords)` with its keywords as one `FitOptions` (tests and
    benchmarks use it to pass the private settings too). Warnings point `stacklevel` frames up.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    if np.ndim(options.l1) or np.ndim(options.l2):
        raise ValueError("l1 and l2 must be scalars in fit (arrays are for fit_ensemble).")
    prep = Prepared(model, x, y, options)
    key = check_key(options.key)
    params, frozen, static = split_model(model)
    master = as_master(params, prep.master_dtype)
    state = initial_state(prep, master, frozen, key, options.l1, options.l2, options.rate)
    cfg = prep.config(static)

    def to_model(result: PyTree) -> Model:
        if prep.master_dtype is not None:
            result = as_model_dtypes(result, params)
        return with_frozen(result, state.frozen, static)

    result, (history,) = run(
        prep, cfg, state, t_start=t_start, stacklevel=stacklevel + 1, to_model=to_model
    )
    if prep.master_dtype is not None:
        result = as_model_dtypes(result, params)
    return with_frozen(result, state.frozen, static), history


def with_frozen(result: PyTree, frozen: PyTree | None, static: PyTree) -> PyTree:
    """The model from trained arrays, the state's fixed arrays (None: there are none) and the
    static part."""
    if frozen is None:
        return eqx.combine(result, static)
    return eqx.combine(result, frozen, static)
