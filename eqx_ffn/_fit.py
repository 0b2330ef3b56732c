"""Training: `make_step` for hand-written loops, and `fit`, one compiled loop for a whole fit."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from . import _engine
from ._data import (
    check_features,
    check_sample_weight,
    check_targets,
    float_dtype,
    model_sizes,
)
from ._errors import unknown_name
from ._history import History
from ._losses import Loss, resolve_loss
from ._solvers import Solver, resolve_solver
from ._standardize import Standardizer

PyTree = Any


class NonFiniteLossWarning(RuntimeWarning):
    """The training loss became NaN or inf; the last model with a finite loss was returned."""


def make_step(
    loss_fn: str | Callable = "mse", optimizer: optax.GradientTransformation | str = "adam"
) -> Callable:
    """The lecture's training step in Equinox form, for users who write their own loop.

    **Arguments:**

    - `loss_fn`: a loss name (`"mse"`, `"mae"`, `"huber"`, `"softmax_cross_entropy"`) or a
      callable `loss(model, x, y) -> scalar` on a batch.
    - `optimizer`: an `optax.GradientTransformation` (or a name, with its default learning rate).

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
    solver = resolve_solver(optimizer)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        params, static = eqx.partition(model, eqx.is_inexact_array)

        def objective(p, batch):
            xb, yb = batch
            return loss(eqx.combine(p, static), xb, yb, None)

        params, opt_state, value = solver.step(objective, params, opt_state, (x, y))
        return eqx.combine(params, static), opt_state, value

    return step


def trainable(model: PyTree) -> PyTree:
    """The filter spec of what `fit` trains: floating arrays, except inside a `Standardizer`."""

    def spec(node):
        if isinstance(node, Standardizer):
            return jax.tree.map(lambda _: False, node)
        return eqx.is_inexact_array(node)

    return jax.tree.map(spec, model, is_leaf=lambda n: isinstance(n, Standardizer))


def split_model(model: PyTree) -> tuple[PyTree, PyTree, PyTree]:
    """`(params, frozen, static)`: trained arrays, fixed arrays, and the rest."""
    params, rest = eqx.partition(model, trainable(model))
    frozen, static = eqx.partition(rest, eqx.is_array)
    return params, frozen, static


def _check_nonneg(value: Any, argument: str) -> None:
    if np.ndim(value) == 0:
        if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.")


def _use_progress(progress: bool | None) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


class Prepared:
    """Checked data, resolved settings and the program's `Config`, shared by fit and ensembles."""

    def __init__(
        self,
        model,
        x,
        y,
        *,
        optimizer,
        learning_rate,
        steps,
        batch_size,
        loss,
        validation,
        eval_every,
        patience,
        l1,
        l2,
        sample_weight,
        sampling,
        drop_last,
        progress,
        mesh,
        ensemble,
    ):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1; got {steps!r}.")
        self.steps = int(steps)
        in_size, out_size = model_sizes(model)
        self.loss: Loss = resolve_loss(loss)
        self.solver: Solver = resolve_solver(optimizer, learning_rate)
        if sampling not in ("epoch", "replacement"):
            raise unknown_name(
                "sampling",
                sampling,
                ("epoch", "replacement"),
                " ('epoch': a fresh permutation every epoch, each sample once)",
            )
        dtype = float_dtype(model)
        x_np = check_features(x, in_size, "x")
        n = x_np.shape[0]
        y_np = check_targets(y, n, out_size, self.loss.classification, "y")
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
                raise TypeError(f"batch_size must be an int or None; got {batch_size!r}.")
            if batch_size < 1:
                raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
            if batch_size > n:
                raise ValueError(
                    f"batch_size={batch_size} is larger than the data (N={n} samples); use "
                    f"batch_size <= {n}, or batch_size=None for full batch."
                )
            if self.solver.full_batch_only:
                raise ValueError(
                    "This optimizer (L-BFGS) works on the full batch; use batch_size=None."
                )
            batch_size = int(batch_size)
            if batch_size == n and sampling == "epoch":
                batch_size = None  # one batch of everything, every step: the full batch
        if drop_last and batch_size is not None and n // batch_size == 0:
            raise ValueError("drop_last=True leaves no full batch.")
        w_np = None
        if sample_weight is not None:
            if not self.loss.weightable:
                raise ValueError(
                    "sample_weight needs a named loss; a callable loss cannot be weighted."
                )
            w_np = check_sample_weight(sample_weight, n)
        _check_nonneg(l1, "l1")
        _check_nonneg(l2, "l2")
        if patience is not None:
            if validation is None:
                raise ValueError("patience needs validation=(x_val, y_val) to watch.")
            if (
                isinstance(patience, bool)
                or not isinstance(patience, (int, np.integer))
                or (patience < 1)
            ):
                raise ValueError(f"patience must be an integer >= 1; got {patience!r}.")
        val = None
        if validation is not None:
            if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
                raise TypeError("validation must be a pair (x_val, y_val).")
            xv = check_features(validation[0], in_size, "validation x")
            yv = check_targets(
                validation[1], xv.shape[0], out_size, self.loss.classification, "validation y"
            )
            val = (xv, yv)
        if eval_every is None:
            eval_every = max(1, self.steps // 50)
        if (
            isinstance(eval_every, bool)
            or not isinstance(eval_every, (int, np.integer))
            or (eval_every < 1)
        ):
            raise ValueError(f"eval_every must be an integer >= 1; got {eval_every!r}.")
        self.progress = _use_progress(progress)
        if val is not None:
            chunk = min(int(eval_every), self.steps)
        elif self.progress:
            chunk = max(1, -(-self.steps // 50))
        else:
            chunk = self.steps
        if batch_size is not None and sampling == "replacement" and val is None:
            # the host draws a chunk's indices up front: keep that under 16 MiB of int32
            # (with validation, chunks end where validation runs: every eval_every steps)
            chunk = min(chunk, max(1, (1 << 22) // batch_size))
        self.patience = patience
        self.eval_every = eval_every

        # --- put the data on the device(s)
        ydtype = jnp.int32 if self.loss.classification else dtype
        batch_sharding = None
        if mesh is not None:
            data_sharding, batch_sharding, replicated = _mesh_shardings(mesh, n, batch_size)
            put = lambda a: jax.device_put(a, data_sharding)  # noqa: E731
            self.replicate = lambda tree: jax.device_put(tree, replicated)
        else:
            put = jnp.asarray
            self.replicate = lambda tree: tree
        self.data = (
            put(np.asarray(x_np, dtype)),
            put(np.asarray(y_np, ydtype)),
            None if w_np is None else put(np.asarray(w_np, dtype)),
        )
        self.val = None
        if val is not None:
            self.val = (jnp.asarray(val[0], dtype), jnp.asarray(val[1], ydtype))
        self.n = n
        self.batch_size = batch_size
        self.sampling = sampling
        self.drop_last = bool(drop_last) and batch_size is not None
        self.chunk = chunk
        self.l1, self.l2 = l1, l2
        self.ensemble = ensemble
        self.batch_sharding = batch_sharding

    def config(self, static) -> _engine.Config:
        return _engine.Config(
            solver=self.solver,
            loss=self.loss,
            static=static,
            n=self.n,
            batch_size=self.batch_size,
            sampling=self.sampling,
            drop_last=self.drop_last,
            chunk=self.chunk,
            weighted=self.data[2] is not None,
            has_val=self.val is not None,
            use_l1=bool(np.any(np.asarray(self.l1) != 0)),
            use_l2=bool(np.any(np.asarray(self.l2) != 0)),
            ensemble=self.ensemble,
            batch_sharding=self.batch_sharding,
        )


def _mesh_shardings(mesh, n, batch_size):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if isinstance(mesh, Sequence) and not isinstance(mesh, Mesh):
        mesh = Mesh(np.asarray(list(mesh)), ("batch",))
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh must be a jax.sharding.Mesh or a list of devices; got {type(mesh).__name__}."
        )
    axis = mesh.axis_names[0]
    n_dev = mesh.shape[axis]
    if n % n_dev:
        raise ValueError(
            f"Data-parallel fit splits the samples over the mesh axis {axis!r} of {n_dev} "
            f"devices: N={n} must be a multiple of {n_dev}."
        )
    if batch_size is not None and batch_size % n_dev:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {n_dev} devices of the mesh."
        )
    data = NamedSharding(mesh, PartitionSpec(axis))
    return data, data, NamedSharding(mesh, PartitionSpec())


def _tqdm(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=True)


def run(prep: Prepared, frozen: PyTree, static: PyTree, state: PyTree, *, desc: str = "fit"):
    """Drive the compiled program chunk by chunk. Works for one model or a stacked ensemble.

    `frozen` and `static` are the model's untrained parts (`split_model`); the trained ones
    are in `state`.

    Returns `(model, histories)`: `histories` is a list with one `History` per member (one for a
    plain fit).
    """
    t_start = time.perf_counter()
    cfg = prep.config(static)
    ens = prep.ensemble
    k = jax.tree.leaves(state["ok"])[0].shape[0] if ens else 1
    steps = prep.steps
    losses = [[] for _ in range(k)]
    val_losses = [[] for _ in range(k)]
    val_steps = [[] for _ in range(k)]
    active = np.ones(k, bool)
    reason = ["completed"] * k
    nonfinite_at: list[int | None] = [None] * k
    steps_run = np.zeros(k, int)
    best_val = np.full(k, np.inf)
    best_step = np.full(k, -1)
    since_best = np.zeros(k, int)
    best_params = state["params"] if prep.patience is not None else None
    end_loss = np.full(k, np.nan)
    compile_time = 0.0
    key_data = np.asarray(jax.random.key_data(state["key"]))
    bar = _tqdm(steps, prep.progress, desc)
    t = 0
    try:
        while t < steps and active.any():
            n = min(prep.chunk, steps - t)
            want_end = t + n >= steps
            perms, epoch0 = _engine.batch_indices(cfg, key_data, t, n)
            # NumPy scalars go in with the call: no eager device_put apiece
            args = (
                state,
                perms,
                frozen,
                prep.data,
                prep.val,
                np.int32(t),
                np.int32(n),
                np.bool_(want_end),
                np.int32(epoch0),
            )
            program, seconds = _engine.compiled_program(cfg, *args)
            compile_time += seconds
            state, buf, vloss, eloss = program(*args)
            buf = np.asarray(buf).reshape(k, -1)[:, :n]
            ok = np.asarray(state["ok"]).reshape(k)
            vloss = np.asarray(vloss).reshape(k)
            eloss = np.asarray(eloss).reshape(k)
            for m in range(k):
                if not active[m]:
                    continue
                finite = np.isfinite(buf[m])
                if not ok[m]:
                    first = int(np.argmin(finite))  # the first non-finite loss
                    losses[m].append(buf[m, :first])
                    steps_run[m] = t + first
                    nonfinite_at[m] = t + first
                    reason[m] = "non_finite_loss"
                    active[m] = False
                    continue
                losses[m].append(buf[m])
                steps_run[m] = t + n
                if want_end:
                    end_loss[m] = eloss[m]
                if prep.val is not None:
                    val_losses[m].append(vloss[m])
                    val_steps[m].append(t + n)
            if prep.val is not None and prep.patience is not None:
                improved = active & (vloss < best_val)
                if improved.any():
                    best_val = np.where(improved, vloss, best_val)
                    best_step = np.where(improved, t + n, best_step)
                    since_best = np.where(improved, 0, since_best)
                    best_params = _select(improved, state["params"], best_params, ens)
                since_best = np.where(active & ~improved, since_best + 1, since_best)
                stop = active & (since_best >= prep.patience)
                if stop.any():
                    for m in np.flatnonzero(stop):
                        reason[m] = "early_stopping"
                    active &= ~stop
                    # freeze stopped members (they no longer update inside the program)
                    state = dict(state, ok=_set_ok(state["ok"], active, ens))
            t += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(_postfix(losses, val_losses), refresh=False)
    except KeyboardInterrupt:
        # Ctrl-C between or during chunks: keep what the finished chunks trained.
        for m in np.flatnonzero(active):
            reason[m] = "interrupted"
        active[:] = False
    finally:
        if bar is not None:
            bar.close()

    # --- choose what each member returns
    final_params = state["params"]
    best_steps: list[int | None] = [None] * k
    use_good = np.array([reason[m] == "non_finite_loss" for m in range(k)])
    # a completed fit whose very last update produced a non-finite model
    blew_up = np.array(
        [reason[m] == "completed" and not np.isfinite(end_loss[m]) for m in range(k)]
    )
    for m in np.flatnonzero(blew_up):
        reason[m] = "non_finite_loss"
        nonfinite_at[m] = int(steps_run[m])
    use_good |= blew_up
    # an interrupted fit returns its latest model, or the last one with a finite loss
    interrupted = np.array([reason[m] == "interrupted" for m in range(k)])
    if interrupted.any():
        finite = _finite_members(final_params, k, ens)
        use_good |= interrupted & ~finite
    final_params = _select(use_good, state["good"], final_params, ens)
    if prep.patience is not None:
        use_best = ~use_good & (best_step >= 0)
        final_params = _select(use_best, best_params, final_params, ens)
        for m in np.flatnonzero(use_best):
            best_steps[m] = int(best_step[m]) if best_step[m] != steps_run[m] else None
    for m in np.flatnonzero(use_good):
        best_steps[m] = max(int(steps_run[m]) - 1, 0) if nonfinite_at[m] is not None else None
    out_model = eqx.combine(final_params, frozen, static)
    wall = time.perf_counter() - t_start
    histories = []
    for m in range(k):
        loss_m = np.concatenate(losses[m]) if losses[m] else np.zeros(0)
        if reason[m] == "non_finite_loss":
            msg = (
                f"The training loss became non-finite at step {nonfinite_at[m]}; returned the "
                f"model of step {best_steps[m]}, the last with a finite loss. Lower the "
                "learning rate or standardise the data."
            )
        elif reason[m] == "early_stopping":
            msg = (
                f"Validation loss did not improve for {prep.patience} evaluations; stopped at "
                f"step {steps_run[m]} and returned the best model (step {best_step[m]})."
            )
        elif reason[m] == "interrupted":
            msg = f"Interrupted after {steps_run[m]} steps; returned the model trained so far."
        else:
            msg = f"Completed {steps_run[m]} steps."
        histories.append(
            History(
                loss=loss_m,
                val_loss=np.asarray(val_losses[m], dtype=loss_m.dtype),
                val_steps=np.asarray(val_steps[m], dtype=int),
                steps=int(steps_run[m]),
                stop_reason=reason[m],
                best_step=best_steps[m],
                final_loss=float(end_loss[m]) if reason[m] == "completed" else float("nan"),
                wall_time=wall,
                compile_time=compile_time,
                message=msg,
            )
        )
        if reason[m] == "non_finite_loss":
            who = f"Ensemble member {m}: " if ens else ""
            warnings.warn(who + msg, NonFiniteLossWarning, stacklevel=3)
    return out_model, histories


def _postfix(losses: list[list[np.ndarray]], val_losses: list[list[float]]) -> dict[str, str]:
    """The progress bar's latest loss (and validation loss), averaged over members."""
    last = [chunks[-1][-1] for chunks in losses if chunks and len(chunks[-1])]
    post = {"loss": f"{np.mean(last):.4g}" if last else "nan"}
    vals = [v[-1] for v in val_losses if v]
    if vals:
        post["val"] = f"{np.mean(vals):.4g}"
    return post


def _select(mask: np.ndarray, a: PyTree, b: PyTree, ens: bool) -> PyTree:
    """Per member, `a` where `mask` else `b`."""
    if not ens:
        return a if bool(mask[0]) else b
    if mask.all():
        return a
    if not mask.any():
        return b
    m = jnp.asarray(mask)
    return jax.tree.map(lambda x, y: jnp.where(m.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), a, b)


def _finite_members(params: PyTree, k: int, ens: bool) -> np.ndarray:
    """Per member: are all its parameters finite?"""
    ok = np.ones(k, bool)
    for leaf in jax.tree.leaves(params):
        arr = np.asarray(leaf).reshape(k, -1) if ens else np.asarray(leaf).reshape(1, -1)
        ok &= np.isfinite(arr).all(axis=1)
    return ok


def _set_ok(ok, active, ens):
    if not ens:
        return jnp.asarray(bool(active[0]))
    return jnp.asarray(active)


def initial_state(solver: Solver, params, key, l1, l2) -> dict:
    """The training state the program carries (traceable: `fit` compiles it, ensembles vmap it)."""
    dtype = _engine._loss_dtype(params)
    return {
        "params": params,
        "opt": solver.init(params),
        "good": params,
        "ok": jnp.asarray(True),
        "key": key,
        "l1": jnp.asarray(l1, dtype),
        "l2": jnp.asarray(l2, dtype),
    }


# One compiled call instead of a dozen eager ones (optax's zeros_like per leaf, the scalars).
_initial_state = eqx.filter_jit(initial_state)


def fit(
    model: PyTree,
    x: Any,
    y: Any,
    *,
    optimizer: str | optax.GradientTransformation | Solver = "adam",
    learning_rate: float | None = None,
    steps: int = 2000,
    batch_size: int | None = None,
    loss: str | Callable = "mse",
    key: jax.Array | None = None,
    validation: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    sample_weight: Any = None,
    sampling: str = "epoch",
    drop_last: bool = False,
    progress: bool | None = None,
    mesh: Any = None,
) -> tuple[PyTree, History]:
    """Train `model` on `(x, y)` in one compiled loop; returns `(trained_model, History)`.

    **Arguments:**

    - `model`: an `FFN` (or `Standardized`, or any module with `in_size`/`out_size` that maps one
      sample to one output). Its floating arrays are trained, except `Standardizer`s.
    - `x`: inputs, shape `(N, in_size)`. `y`: targets, shape `(N, out_size)`; for
      `loss="softmax_cross_entropy"` integer class labels of shape `(N,)`.
    - `optimizer`: any `optax.GradientTransformation`, or a name: `"adam"` (default), `"adamw"`,
      `"sgd"`, `"rmsprop"`, `"lbfgs"` (optax's L-BFGS with its zoom line search, full batch).
      `learning_rate` sets a named optimizer's step size (default `1e-2`, the lecture's; L-BFGS
      uses its line search when left `None`).
    - `steps`: optimisation steps (default 2000).
    - `batch_size`: `None` (default) for full batch; else mini-batches drawn from the WHOLE data
      set: with `sampling="epoch"` (default) a fresh permutation every epoch, each sample used
      once per epoch, the last smaller batch used unless `drop_last=True`;
      `sampling="replacement"` draws each batch's indices with replacement, like the lecture.
    - `loss`: `"mse"` (default), `"mae"`, `"huber"`, `"softmax_cross_entropy"`, or a callable
      `loss(model, x_batch, y_batch) -> scalar`.
    - `key`: a `jax.random` key for batch sampling; `None` means `jax.random.key(0)`. The same key
      gives the same result, bit for bit. (The batch indices are drawn on the host with NumPy's
      PCG64, seeded by the key and the epoch, or the block of 256 steps with replacement: a
      device-side draw costs more than a small network's step on a CPU.)
    - `validation`: `(x_val, y_val)`, evaluated every `eval_every` steps (default `steps // 50`).
    - `patience`: stop after this many evaluations without a better validation loss and return
      the best model.
    - `l1`, `l2`: penalties `l1 * sum|W| + l2 * sum W**2` on weights (not biases).
    - `sample_weight`: shape `(N,)`, weights each sample's loss (named losses only).
    - `progress`: a tqdm bar; default on when stderr is a terminal.
    - `mesh`: a `jax.sharding.Mesh` (its first axis splits the batch) or a list of devices: the
      data are sharded over the devices, the parameters replicated (data parallel).

    **Returns:** `(model, history)`. If the loss becomes NaN/inf the fit stops, warns
    (`NonFiniteLossWarning`) and returns the last model with a finite loss;
    `history.stop_reason` says why it stopped. Ctrl-C (KeyboardInterrupt) ends the fit early and
    returns the model trained so far, with `stop_reason="interrupted"`.

    ```python
    model = eqx_ffn.FFN(1, 1, (16,), key=jr.key(0))
    model, history = eqx_ffn.fit(model, x, y, steps=2000)
    ```
    """
    prep = Prepared(
        model,
        x,
        y,
        optimizer=optimizer,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=batch_size,
        loss=loss,
        validation=validation,
        eval_every=eval_every,
        patience=patience,
        l1=l1,
        l2=l2,
        sample_weight=sample_weight,
        sampling=sampling,
        drop_last=drop_last,
        progress=progress,
        mesh=mesh,
        ensemble=False,
    )
    if np.ndim(l1) or np.ndim(l2):
        raise ValueError("l1 and l2 must be scalars in fit (arrays are for fit_ensemble).")
    key = _check_key(key)
    params, frozen, static = split_model(model)
    params = prep.replicate(params)
    dtype = _engine._loss_dtype(params)  # penalties as arrays: traced, not baked in
    state = _initial_state(prep.solver, params, key, np.asarray(l1, dtype), np.asarray(l2, dtype))
    out, (history,) = run(prep, frozen, static, state)
    return out, history


def _check_key(key: Any) -> jax.Array:
    if key is None:
        return jr.key(0)
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax.random key such as jax.random.key(0); got {key!r}.")
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.wrap_key_data(key)
    return key
