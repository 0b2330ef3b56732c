"""Training: `make_step` for hand-written loops, and `fit`, one compiled loop for a whole fit."""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._validation import unknown_name
from ..model._standardize import Standardizer
from ..solvers._solver import Solver, resolve_solver, with_learning_rate
from . import _engine
from ._cache_key import identity_memo, value_key
from ._compile_options import FAST_COMPILE_OPTIONS
from ._data import (
    check_features,
    check_sample_weight,
    check_targets,
    float_dtype,
    model_sizes,
    on_host_if_cpu,
    pad_rows,
)
from ._history import History
from ._losses import Loss, resolve_loss
from ._objective import Objective, loss_dtype

PyTree = Any
Model = TypeVar("Model")

PRECISIONS = ("default", "high", "highest")
"""Values of `fit(precision=...)`: JAX's matmul precisions (`"default"` is TF32 on recent
NVIDIA GPUs, `"highest"` full float32)."""

MAX_STEPS = 2**31 - 2**17
"""The most steps one fit can run (the step counter is an int32 inside the program)."""

Device: TypeAlias = Any
"""A `jax.Device` (type checkers cannot take `jax.Device`, a variable, as a type)."""


class NonFiniteLossWarning(RuntimeWarning):
    """The training loss became NaN or inf; the last model with a finite loss was returned."""


class DivergenceWarning(NonFiniteLossWarning):
    """The training loss exploded (grew 1e4-fold over its lowest value); the last model before
    that was returned. A subclass of `NonFiniteLossWarning`: filters for one catch both."""


def _check_compute_dtype(compute_dtype: Any) -> jnp.dtype | None:
    if compute_dtype is None:
        return None
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        raise TypeError(
            f"compute_dtype must be a floating dtype such as jnp.bfloat16 or jnp.float32; got "
            f"{compute_dtype!r}."
        ) from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"compute_dtype must be a floating dtype such as jnp.bfloat16; got {dtype}."
        )
    if dtype.itemsize == 8 and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise ValueError(
            "compute_dtype=float64 needs jax.config.update('jax_enable_x64', True) first."
        )
    return dtype


def _check_precision(precision: Any) -> str | None:
    """The matmul precision a program is traced under: `precision`, or JAX's current default."""
    if precision is None:
        current = jax.config.jax_default_matmul_precision  # type: ignore[attr-defined]
        return None if current is None else str(current)
    if precision not in PRECISIONS:
        raise unknown_name(
            "precision", precision, PRECISIONS, " (or None: JAX's default_matmul_precision)"
        )
    return str(precision)


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
    dtype = _check_compute_dtype(compute_dtype)
    prec = None if precision is None else _check_precision(precision)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        params, static = eqx.partition(model, eqx.is_inexact_array)
        objective = Objective(loss, None, static, l1=0.0, l2=0.0, tol=0.0, compute_dtype=dtype)
        w = None if loss.fn is not None else jnp.ones(x.shape[0], loss_dtype(params))
        with _engine.precision_context(prec):
            params, opt_state, value = solver.step(objective, params, opt_state, (x, y, w))[:3]
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


def check_penalty(value: Any, argument: str) -> Any:
    """`l1`/`l2`: a finite number >= 0 (Python, NumPy or JAX scalar), or an array of them (for
    ensembles)."""
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return np.asarray(value, dtype=float)  # the common case, without NumPy's checks
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.") from None
    if isinstance(value, bool) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{argument} must be a finite number >= 0; got {value!r}.")
    return arr


def _check_int(value: Any, argument: str, lo: int, hi: int | None = None) -> int:
    bad = isinstance(value, bool) or not isinstance(value, (int, np.integer))
    if bad or value < lo or (hi is not None and value > hi):
        upper = "" if hi is None else f" and <= {hi}"
        raise ValueError(f"{argument} must be an integer >= {lo}{upper}; got {value!r}.")
    return int(value)


def _check_tol(tol: Any, default: float) -> float:
    if tol is None:
        return default
    try:
        value = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}.") from None
    bad_type = isinstance(tol, (bool, str, bytes)) or np.ndim(tol)
    if bad_type or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}.")
    return value


def _use_progress(progress: bool | None) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def resolve_device(device: Any) -> Device | None:
    """`None`, a platform name (`"cpu"`, `"gpu"`, ...) or a `jax.Device`."""
    if device is None or isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        try:
            return jax.devices(device)[0]
        except RuntimeError:
            raise ValueError(
                f"device={device!r}: no such JAX platform here; available: "
                f"{sorted({d.platform for d in jax.devices()} | {'cpu'})}."
            ) from None
    raise TypeError(
        f"device must be None, a platform name such as 'cpu', or a jax.Device; got "
        f"{type(device).__name__}."
    )


DEVICE_SAMPLING: bool | None = None
"""Where mini-batch indices are drawn: `None` (default) on the device for accelerators and on the
host (NumPy) for CPUs, where XLA's sort-based permutation is slower; `True`/`False` force it
(tests use this to run the device path on a CPU)."""

UNROLL: int | None = None
"""The step loop's unroll factor: `None` (default) unrolls 8 steps on accelerators when a chunk
holds at least 16 steps, never on CPUs; an int forces it (for benchmarks)."""

LBFGS_ON_CPU_MAX_WORK = 2e7
"""The documented placement rule: with `device=None` a full-batch line-search fit (L-BFGS)
whose work per evaluation (rows * parameters) is at most this runs on the host CPU when JAX's
default device is an accelerator. Each line-search iteration is a `while` whose condition the
host reads; on the lecture's problem that costs more on a GPU than the whole step on a CPU."""


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
        tol,
        n_iter_no_change,
        sample_weight,
        sampling,
        drop_last,
        progress,
        mesh,
        device,
        compute_dtype,
        precision,
        ensemble: int | None,
    ):
        self.steps = _check_int(steps, "steps", 1, MAX_STEPS)
        in_size, out_size = model_sizes(model)
        self.loss: Loss = resolve_loss(loss)
        self.solver, self.learning_rate = resolve_solver(optimizer, learning_rate)
        if sampling not in ("epoch", "replacement"):
            raise unknown_name(
                "sampling",
                sampling,
                ("epoch", "replacement"),
                " ('epoch': a fresh permutation every epoch, each sample once)",
            )
        self.compute_dtype = _check_compute_dtype(compute_dtype)
        self.precision = _check_precision(precision)
        param_dtype = float_dtype(model)
        if jnp.dtype(param_dtype).itemsize < 4:  # a bfloat16/float16 model: float32 masters
            self.master_dtype = jnp.dtype(jnp.float32)
            self.compute_dtype = self.compute_dtype or jnp.dtype(param_dtype)
        else:
            self.master_dtype = None
        work_dtype = jnp.promote_types(param_dtype, jnp.float32)
        self.loss_dtype = work_dtype  # `loss_dtype` of the trained (master) parameters
        store_dtype = self.compute_dtype or work_dtype
        x_arr = check_features(x, in_size, "x", dtype=store_dtype)
        n = int(x_arr.shape[0])
        y_arr = check_targets(y, n, out_size, self.loss.classification, "y", dtype=work_dtype)
        if self.solver.least_squares:
            from ..solvers._least_squares import check_least_squares

            check_least_squares(self.loss.name, l1, batch_size, self.solver)
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
                    "This optimizer (L-BFGS, Levenberg-Marquardt, Gauss-Newton) works on the "
                    "full batch; use batch_size=None."
                )
            batch_size = int(batch_size)
            if batch_size == n and sampling == "epoch":
                batch_size = None  # one batch of everything, every step: the full batch
        if drop_last and batch_size is not None and n // batch_size == 0:
            raise ValueError("drop_last=True leaves no full batch.")
        w_arr = None
        if sample_weight is not None:
            if not self.loss.weightable:
                raise ValueError(
                    "sample_weight needs a named loss; a callable loss cannot be weighted."
                )
            w_arr = check_sample_weight(sample_weight, n, dtype=work_dtype)
        self.l1 = check_penalty(l1, "l1")
        self.l2 = check_penalty(l2, "l2")
        self.tol = _check_tol(tol, self.solver.default_tol)
        self.n_iter_no_change = _check_int(n_iter_no_change, "n_iter_no_change", 1, 2**30)
        self.patience = 0
        if patience is not None:
            if validation is None:
                raise ValueError("patience needs validation=(x_val, y_val) to watch.")
            self.patience = _check_int(patience, "patience", 1, 2**30)
        val = None
        if validation is not None:
            if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
                raise TypeError("validation must be a pair (x_val, y_val).")
            xv = check_features(validation[0], in_size, "validation x", dtype=store_dtype)
            yv = check_targets(
                validation[1],
                int(xv.shape[0]),
                out_size,
                self.loss.classification,
                "validation y",
                dtype=work_dtype,
            )
            val = (xv, yv)
        if eval_every is None:
            eval_every = max(1, self.steps // 50)
        self.eval_every = _check_int(eval_every, "eval_every", 1, 2**30)
        self.progress = _use_progress(progress)
        self.ensemble = ensemble
        self.param_spec: Any = None  # set with the initial state (see `spec_of`)
        self.key_data: np.ndarray | None = None  # the host sampler's key (initial_state)
        self.init_compile_time = 0.0  # seconds initial_state spent compiling its program

        # --- where the fit runs
        dev = resolve_device(device)
        if mesh is not None and dev is not None:
            raise ValueError("Pass mesh= or device=, not both.")
        if dev is None and mesh is None:
            dev = self._default_device(x_arr, model, n, batch_size)
        self.device = dev

        # --- pad to a size bucket (named losses) and put the data on the device(s)
        weighted = self.loss.weightable
        n_dev = 1
        batch_sharding = None
        if mesh is not None:
            data_sharding, batch_sharding, replicated, n_dev = _mesh_shardings(
                mesh, n, batch_size, weighted
            )
            put = lambda a: jax.device_put(a, data_sharding)  # noqa: E731
            self.replicate = lambda tree: jax.device_put(tree, replicated)
        else:
            put = functools.partial(_put_data, target=dev)
            self.replicate = functools.partial(_put_tree, target=dev)
        nb = _engine.bucket(n, n_dev) if weighted else n
        ydtype = jnp.int32 if self.loss.classification else work_dtype
        if weighted:
            w_full = np.ones(n, work_dtype) if w_arr is None else w_arr
            padded = [pad_rows(on_host_if_cpu(a), nb) for a in (x_arr, y_arr, w_full)]
            self.data = tuple(put(padded))  # one transfer for the three
        else:
            self.data = (*put([x_arr, y_arr]), None)
        self.val = None
        if val is not None:
            nv = int(val[0].shape[0])
            vb = _engine.bucket(nv, n_dev) if weighted else nv
            vw = np.ones(nv, work_dtype)
            # every program call reads them: on the device (replicated over a mesh) once
            vput = self.replicate if mesh is not None else put
            if weighted:
                self.val = tuple(vput([pad_rows(on_host_if_cpu(a), vb) for a in (*val, vw)]))
            else:
                self.val = (*vput([val[0], val[1]]), None)
        self.n = n
        self.n_floor = _engine.bucket_floor(nb) if weighted else n
        self.batch_size = batch_size
        self.sampling = sampling
        self.drop_last = bool(drop_last) and batch_size is not None
        self.batch_sharding = batch_sharding
        self.weighted = weighted
        self.ydtype = ydtype
        platform = dev.platform if dev is not None else jax.devices()[0].platform
        self.platform = platform
        on_device = platform != "cpu" if DEVICE_SAMPLING is None else DEVICE_SAMPLING
        self.device_sampling = batch_size is not None and on_device
        del y_arr, x_arr

        # --- the program's shape: steps per scan, per call
        k = ensemble or 1
        rows = batch_size if batch_size is not None else nb
        weights = _n_weights(model)
        # A step's cost: its flops at the device's throughput, but at least the device's
        # per-step overhead for that kind of step. Line searches and the damped normal
        # equations run many small kernels: measured on the lecture problem on 2 CPU cores, an
        # L-BFGS step costs ~100 us and a Levenberg-Marquardt step ~130 us against ~7 us for
        # Adam. The estimate sizes the chunk, whose masked steps past the requested end still
        # run: an estimate too low makes short fits pay for a long chunk.
        cpu = platform == "cpu"
        if self.solver.least_squares:  # Jacobian, J^T J, three Choleskys, four trial points
            w = max(weights, 1)
            flops = k * (2.0 * rows * w * w + w**3 + 30.0 * rows * w)
            floor = 2e-4 if cpu else 4e-4
        elif getattr(self.solver, "reuse_value", False):  # a line search
            flops = 36.0 * rows * max(weights, 1) * k
            floor = 8e-5 if cpu else 4e-4
        else:
            flops = 6.0 * rows * max(weights, 1) * k
            floor = 3e-6 if cpu else 8e-6
        # a chunk's steps past the requested end still run (masked), so a short chunk costs a
        # short fit little; on a CPU the while loop over chunks costs next to nothing a chunk
        # (measured: 20,000 lecture steps in chunks of 64 as fast as in chunks of 256), on a
        # GPU each chunk is a host round trip
        throughput, chunk_target = (2e10, 2.5e-4) if cpu else (2e13, 2e-3)
        self.step_seconds = max(floor, flops / throughput)
        chunk = 1
        while chunk < 256 and (2 * chunk) * self.step_seconds <= chunk_target:
            chunk *= 2
        self.chunk = chunk
        self.unroll = 8 if (platform != "cpu" and chunk >= 16) else 1
        if UNROLL is not None:
            self.unroll = max(1, min(int(UNROLL), chunk))
        per_step_ints = 0 if (batch_size is None or self.device_sampling) else batch_size * k
        per_step_floats = k * (2 if val is not None else 1)
        cap = (1 << 21) // max(per_step_floats, 1)
        if per_step_ints:
            cap = min(cap, (1 << 22) // per_step_ints)
        self.max_chunks = max(1, min(MAX_STEPS_PER_CALL, cap) // chunk)

    def _default_device(self, x_arr, model, n, batch_size) -> Device | None:
        """`device=None`: where the data already are (a JAX array on one device), else JAX's
        default, except that a small full-batch L-BFGS fit goes to the host CPU (see
        `LBFGS_ON_CPU_MAX_WORK`)."""
        default = jax.devices()[0]
        if isinstance(x_arr, jax.Array) and len(x_arr.devices()) == 1:
            default = next(iter(x_arr.devices()))
        if (
            default.platform != "cpu"
            and batch_size is None
            and getattr(self.solver, "reuse_value", False)
            and n * max(_n_weights(model), 1) <= LBFGS_ON_CPU_MAX_WORK
        ):
            return jax.devices("cpu")[0]
        return None if default == jax.devices()[0] else default

    def config(self, static, solver=None) -> _engine.Config:
        # least-squares programs keep XLA's defaults: under LLVM -O1 (or the older emitters) an
        # ensemble member and its own fit round differently, which Levenberg-Marquardt's
        # accept/reject decisions amplify into different trajectories
        tuned = self.platform == "cpu" and not self.solver.least_squares
        return _engine.Config(
            solver=self.solver if solver is None else solver,
            loss=self.loss,
            static=static,
            batch_size=self.batch_size,
            sampling=self.sampling,
            drop_last=self.drop_last,
            weighted=self.weighted,
            n_floor=self.n_floor,
            device_sampling=self.device_sampling,
            chunk=self.chunk,
            max_chunks=self.max_chunks,
            unroll=self.unroll,
            has_val=self.val is not None,
            ensemble=self.ensemble is not None,
            solver_test=self.solver.convergence_test,
            compute_dtype=self.compute_dtype,
            precision=self.precision,
            batch_sharding=self.batch_sharding,
            param_spec=self.param_spec,
            cpu_options=tuned,
            fast_compile=tuned and self.step_seconds <= FAST_COMPILE_MAX_STEP,
        )

    def spec_of(self, params: PyTree) -> Any:
        """The raveled layout of one member's trained arrays when the solver works on one
        vector (`Solver.flat_params`), else None."""
        if not self.solver.flat_params:
            return None
        if self.ensemble is not None:
            params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
        return _engine.param_spec(params)

    @property
    def host_sampling(self) -> bool:
        """Mini-batch indices drawn on the host (NumPy), from `key_data`."""
        return self.batch_size is not None and not self.device_sampling

    @property
    def perm_width(self) -> int:
        """Width of the device-side epoch permutation cache (0: none)."""
        if self.device_sampling and self.sampling == "epoch":
            x = self.data[0]
            assert x is not None
            return int(x.shape[0])
        return 0


@identity_memo
def _n_weights(model: PyTree) -> int:
    """Trainable scalars of a model (or of a shape-only template)."""
    total = 0
    for leaf in jax.tree.leaves(model):
        if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)) and jnp.issubdtype(
            leaf.dtype, jnp.inexact
        ):
            total += int(np.prod(leaf.shape))
    return total


def _mesh_shardings(mesh, n, batch_size, weighted):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if isinstance(mesh, Sequence) and not isinstance(mesh, (Mesh, str)):
        devices = list(mesh)
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise TypeError("mesh must be a jax.sharding.Mesh or a non-empty list of Devices.")
        if len(set(devices)) != len(devices):
            raise ValueError(f"mesh lists a device more than once: {devices}.")
        mesh = Mesh(np.asarray(devices), ("batch",))
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh must be a jax.sharding.Mesh or a list of devices; got {type(mesh).__name__}."
        )
    axis = mesh.axis_names[0]
    n_dev = mesh.shape[axis]
    if not weighted and n % n_dev:
        raise ValueError(
            f"Data-parallel fit splits the samples over the mesh axis {axis!r} of {n_dev} "
            f"devices: with a callable loss N={n} must be a multiple of {n_dev} (named losses "
            "pad the data with zero-weight rows)."
        )
    if batch_size is not None and batch_size % n_dev:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {n_dev} devices of the mesh."
        )
    data = NamedSharding(mesh, PartitionSpec(axis))
    return data, data, NamedSharding(mesh, PartitionSpec()), n_dev


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


MAX_STEPS_PER_CALL = 16384
"""Steps one program call can run (its loss buffer's length); the host also returns between
calls after about `CALL_SECONDS`."""

FAST_COMPILE_MAX_STEP = 1e-4
"""CPU programs whose step is estimated at most this many seconds compile with
`FAST_COMPILE_OPTIONS` (compiling dominates their cost); other CPU programs with
`CPU_COMPILE_OPTIONS` (both in `_compile_options`). Least-squares solvers take neither: under
them a member of an ensemble and its own fit round their linear algebra differently, and
Levenberg-Marquardt's accept/reject decisions amplify that into different trajectories."""

CALL_SECONDS = 0.5
"""Run time of one program call without a progress bar: the host checks for Ctrl-C between
calls. With a bar, calls last about 0.2 s."""

_STATUS_NAMES = {
    _engine.EARLY_STOPPING: "early_stopping",
    _engine.NON_FINITE: "non_finite_loss",
    _engine.CONVERGED: "converged",
    _engine.DIVERGED: "diverged",
}


def run(
    prep: Prepared,
    cfg: _engine.Config,
    state: dict,
    *,
    desc: str = "fit",
    t_start: float | None = None,
):
    """Drive the compiled program. Works for one model or a stacked ensemble.

    Returns `(result_params, histories)`: the parameters each member returns (stacked for an
    ensemble) and one `History` per member.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    k = prep.ensemble or 1
    steps = prep.steps
    losses: list[list[np.ndarray]] = [[] for _ in range(k)]
    val_losses: list[list[np.ndarray]] = [[] for _ in range(k)]
    val_steps: list[list[np.ndarray]] = [[] for _ in range(k)]
    steps_run = np.zeros(k, int)
    status = np.zeros(k, int)
    best_step = np.full(k, -1)
    final_loss = np.full(k, np.nan)
    compile_time = prep.init_compile_time
    host_sampling = prep.host_sampling
    key_data = prep.key_data
    bar = _tqdm(steps, prep.progress, desc)
    target = 0.2 if bar is not None else CALL_SECONDS
    ldt = prep.loss_dtype
    sc_base = {
        "n_iter_no_change": prep.n_iter_no_change,
        "end": steps,
        "n": prep.n,
        "eval_every": prep.eval_every,
        "patience": prep.patience,
    }
    dummy_idx = None
    result = state["params"]
    t = 0
    interrupted = False
    c_len = cfg.chunk
    try:
        with _sigint_as_flag() as sigint:
            while t < steps:
                remaining = -(-(steps - t) // c_len)
                est = _engine.chunk_seconds(cfg, ()) or c_len * prep.step_seconds
                m = max(1, min(cfg.max_chunks, remaining, int(target / max(est, 1e-9))))
                if host_sampling:
                    assert key_data is not None
                    count = min(m * c_len, steps - t)
                    idx = _engine.host_indices(cfg, key_data, prep.n, t, count)
                else:
                    idx = dummy_idx
                sc = _engine.scalars(**sc_base, t0=t, max_chunks=m)
                args = (state, prep.data, prep.val, idx, sc)
                program, seconds = _engine.compiled_program(cfg, *args)
                compile_time += seconds
                t_call = time.perf_counter()
                state, out = program(*args)
                out = jax.device_get(
                    {key: out[key] for key in ("ints", "loss", "val", "final_loss")}
                ) | {"result": out["result"]}
                elapsed = time.perf_counter() - t_call
                ints = np.asarray(out["ints"])
                t_end = int(ints[0])
                st, stop, best = ints[1:].reshape(3, k)
                chunks = max(1, (t_end - t) // c_len)
                _engine.record_chunk_seconds(cfg, (), elapsed / chunks)
                buf = np.asarray(out["loss"]).reshape(k, -1)
                vbuf = None if out["val"] is None else np.asarray(out["val"]).reshape(k, -1)
                for j in range(k):
                    if status[j] != _engine.RUNNING or steps_run[j] >= steps:
                        continue
                    after = stop[j] if st[j] != _engine.RUNNING else min(t_end, steps)
                    ran = int(after) - t
                    losses[j].append(buf[j, :ran])
                    if vbuf is not None:
                        s = np.arange(t + 1, t + ran + 1)
                        at = (s % prep.eval_every == 0) | (s == steps)
                        # a member that stopped on a non-finite loss did not evaluate that step
                        vals = vbuf[j, :ran][at]
                        keep = np.isfinite(vals) | (st[j] != _engine.NON_FINITE)
                        val_losses[j].append(vals[keep])
                        val_steps[j].append(s[at][keep])
                    steps_run[j] = after
                status = st
                best_step = best
                final_loss = np.asarray(out["final_loss"]).reshape(k)
                result = out["result"]
                t = t_end
                if bar is not None:
                    bar.update(min(t, steps) - bar.n)
                    bar.set_postfix(_postfix(losses, val_losses), refresh=False)
                if sigint["set"]:
                    interrupted = True
                    break
                if not np.any(status == _engine.RUNNING):
                    break
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, with what the finished calls trained
        interrupted = True
    finally:
        if bar is not None:
            bar.close()

    wall = time.perf_counter() - t_start
    reasons = []
    for j in range(k):
        if status[j] != _engine.RUNNING:
            reasons.append(_STATUS_NAMES[int(status[j])])
        elif steps_run[j] >= steps:
            reasons.append("completed")
        else:
            reasons.append("interrupted")
    if interrupted and any(r == "interrupted" for r in reasons):
        good = state["good"]
        if cfg.param_spec is not None:
            unravel = _engine.unraveler(cfg.param_spec)
            good = jax.vmap(unravel)(good) if prep.ensemble is not None else unravel(good)
        result = _keep_finite(result, good, reasons, prep.ensemble is not None)
    histories = []
    for j in range(k):
        reason = reasons[j]
        loss_j = np.concatenate(losses[j]) if losses[j] else np.zeros(0, ldt)
        vals = np.concatenate(val_losses[j]) if val_losses[j] else np.zeros(0, ldt)
        vsteps = np.concatenate(val_steps[j]) if val_steps[j] else np.zeros(0, int)
        returned: int | None = None
        if reason in ("non_finite_loss", "diverged"):
            returned = max(int(steps_run[j]) - 1, 0)
        elif prep.patience and best_step[j] >= 0 and best_step[j] != steps_run[j]:
            returned = int(best_step[j])
        if reason == "non_finite_loss":
            msg = (
                f"The training loss became non-finite at step {steps_run[j]}; returned the "
                f"model of step {returned}, the last with a finite loss. Lower the "
                "learning rate or standardise the data."
            )
        elif reason == "diverged":
            msg = (
                f"The training loss diverged at step {steps_run[j]} (it grew more than "
                f"{_engine.DIVERGENCE_FACTOR:g}-fold over its lowest value); returned the model of "
                f"step {returned}. Lower the learning rate or standardise the data."
            )
        elif reason == "early_stopping":
            msg = (
                f"Validation loss did not improve for {prep.patience} evaluations; stopped at "
                f"step {steps_run[j]} and returned the best model (step {best_step[j]})."
            )
        elif reason == "converged":
            msg = f"Converged after {steps_run[j]} steps (tol={prep.tol:g})."
        elif reason == "interrupted":
            msg = f"Interrupted after {steps_run[j]} steps; returned the model trained so far."
        else:
            msg = f"Completed {steps_run[j]} steps."
        histories.append(
            History(
                loss=loss_j,
                val_loss=vals.astype(loss_j.dtype),
                val_steps=vsteps.astype(int),
                steps=int(steps_run[j]),
                stop_reason=reason,
                best_step=returned,
                final_loss=float(final_loss[j]),
                wall_time=wall,
                compile_time=compile_time,
                message=msg,
            )
        )
        if reason in ("non_finite_loss", "diverged"):
            who = f"Ensemble member {j}: " if prep.ensemble is not None else ""
            kind = NonFiniteLossWarning if reason == "non_finite_loss" else DivergenceWarning
            warnings.warn(who + msg, kind, stacklevel=3)
    return result, histories


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


def _postfix(losses: list[list[np.ndarray]], val_losses: list[list[np.ndarray]]) -> dict:
    """The progress bar's latest loss (and validation loss), averaged over members."""
    last = [chunks[-1][-1] for chunks in losses if chunks and len(chunks[-1])]
    post = {"loss": f"{np.mean(last):.4g}" if last else "nan"}
    vals = [v[-1][-1] for v in val_losses if v and len(v[-1])]
    if vals:
        post["val"] = f"{np.mean(vals):.4g}"
    return post


# --- the initial state, one compiled call -------------------------------------------------------


class _Keyed:
    """A static argument for `jax.jit` compared by a value key instead of by identity."""

    def __init__(self, obj: Any, key: Any):
        self.obj, self.key = obj, key

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and self.key == other.key


def member_state(solver: Solver, params, frozen, key, l1, l2, tol, lr, has_val, perm_width, flat):
    """One member's training state (traceable: ensembles vmap it)."""
    dtype = loss_dtype(params)
    if flat:
        params = _engine.ravel_params(params)
    opt = solver.init(params)
    if lr is not None:
        opt = with_learning_rate(opt, lr)
    member = {
        "params": params,
        "opt": opt,
        "good": params,
        "f": jnp.asarray([_engine.FLOAT_INIT[k] for k in _engine.FLOAT_FIELDS], dtype),
        "i": jnp.asarray([_engine.INT_INIT[k] for k in _engine.INT_FIELDS], jnp.int32),
        "l1": jnp.asarray(l1, dtype),
        "l2": jnp.asarray(l2, dtype),
        "tol": jnp.asarray(tol, dtype),
        # fixed arrays (a Standardizer's statistics); None when there are none, so the
        # program's arguments hold no empty module to flatten on every call
        "frozen": frozen if jax.tree.leaves(frozen) else None,
    }
    if key is not None:
        member |= {"key": key}
    if has_val:
        member |= {"best": params}
    if perm_width:
        member |= {"perm": jnp.zeros(perm_width, jnp.int32)}
    return member


def _init_states(
    solver_k: _Keyed, has_val, perm_width, ensemble, flat, params, frozen, key, l1, l2, tol, lr
):
    fn = lambda p, f, k, a, b, c, r: member_state(  # noqa: E731
        solver_k.obj, p, f, k, a, b, c, r, has_val, perm_width, flat
    )
    if ensemble:
        lr_axis = None if lr is None else 0
        return jax.vmap(fn, in_axes=(0, 0, 0, 0, 0, 0, lr_axis))(
            params, frozen, key, l1, l2, tol, lr
        )
    return fn(params, frozen, key, l1, l2, tol, lr)


# Runs once per fit: compiled for compile speed, not run speed; a backend that refuses the
# options gets the plain program.
_init_fast = jax.jit(
    _init_states, static_argnums=(0, 1, 2, 3, 4), compiler_options=FAST_COMPILE_OPTIONS
)
_init_plain = jax.jit(_init_states, static_argnums=(0, 1, 2, 3, 4))


HOST_DATA_MAX_BYTES = 1 << 18
"""Padded data of at most this many bytes, bound for JAX's default device when that is the
CPU, stay NumPy arrays: each program call copies them in (a few microseconds) for less than
a `device_put` costs (~150 us). Larger data are put on the device once."""


def _default_for(target: Device | None) -> Device | None:
    """JAX's default device when `target` is it (or None), else None."""
    default = jax.devices()[0]
    return default if target is None or target == default else None


def _put_data(arrays: list, target: Device | None) -> list:
    """`jax.device_put(arrays, target)`, except for small NumPy data on the default CPU (see
    `HOST_DATA_MAX_BYTES`)."""
    default = _default_for(target)
    if (
        default is not None
        and default.platform == "cpu"
        and all(isinstance(a, np.ndarray) for a in arrays)
        and sum(a.nbytes for a in arrays) <= HOST_DATA_MAX_BYTES
    ):
        return list(arrays)
    return jax.device_put(arrays, target)


def _put_tree(tree, target: Device | None):
    """`jax.device_put(tree, target)`, skipped when it would move nothing: `target` is JAX's
    default device and every JAX array of `tree` already lives there alone (host values are
    then placed on it by the compiled call that takes them)."""
    default = _default_for(target)
    if default is not None:
        for leaf in jax.tree.leaves(tree):
            if isinstance(leaf, jax.Array) and leaf.devices() != {default}:
                break
        else:
            return tree
    return jax.device_put(tree, target)


def _init_jit(*args):
    global _init_fast
    if _init_fast is not None:
        try:
            return _init_fast(*args)
        except Exception:
            _init_fast = None
    return _init_plain(*args)


def _init_programs() -> int:
    """How many initial-state programs are compiled (0 where jit does not say)."""
    return sum(
        getattr(f, "_cache_size", lambda: 0)() for f in (_init_fast, _init_plain) if f is not None
    )


def initial_state(prep: Prepared, params, frozen, key, l1, l2, lr) -> dict:
    """The training state of one model (or of a stacked ensemble), in one compiled call."""
    solver = prep.solver
    init_key = getattr(solver, "init_key", None)
    keyed = _Keyed(solver, init_key() if callable(init_key) else value_key(solver))
    dtype = prep.loss_dtype
    k = prep.ensemble
    tol = np.full(k, prep.tol, dtype) if k else np.asarray(prep.tol, dtype)
    l1 = np.asarray(l1, dtype)
    l2 = np.asarray(l2, dtype)
    lr_arr = None if lr is None else np.asarray(lr, dtype)
    # the key lives in the state only where the program draws batches; the host sampler
    # reads its data once here
    prep.key_data = np.asarray(jr.key_data(key)) if prep.host_sampling else None
    if not prep.device_sampling:
        key = None
    args = (params, frozen, key, l1, l2, tol, lr_arr)
    args = prep.replicate(args)
    prep.param_spec = prep.spec_of(params)
    flat = prep.param_spec is not None
    before = _init_programs()
    t0 = time.perf_counter()
    state = _init_jit(keyed, prep.val is not None, prep.perm_width, k is not None, flat, *args)
    if _init_programs() != before:  # traced and compiled now: count it as compiling
        prep.init_compile_time = time.perf_counter() - t0
    return state


def _as_master(params: PyTree, master_dtype) -> PyTree:
    if master_dtype is None:
        return params
    return jax.tree.map(
        lambda a: a.astype(master_dtype) if jnp.dtype(a.dtype).itemsize < 4 else a, params
    )


def _as_model_dtypes(result: PyTree, like: PyTree) -> PyTree:
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

    **Returns:** `(model, history)`. If the loss becomes NaN/inf the fit stops, warns
    (`NonFiniteLossWarning`) and returns the last model with a finite loss;
    `history.stop_reason` says why it stopped. Ctrl-C ends the fit within about half a second and
    returns the model trained so far, with `stop_reason="interrupted"` (a second Ctrl-C stops at
    once).

    Compiling: one program per network structure, loss, optimizer, batch size and padded data
    size (N padded to the next power of two up to 2048 rows, then to 4 sizes per octave):
    learning rates, `l1`, `l2`, `tol`, `steps`, sample weights, validation data, `eval_every`
    and `patience` are run-time inputs and never recompile.

    ```python
    model = eqx_ffn.FFN(1, 1, (16,), key=jr.key(0))
    model, history = eqx_ffn.fit(model, x, y, steps=2000)
    ```
    """
    t_start = time.perf_counter()
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
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        sample_weight=sample_weight,
        sampling=sampling,
        drop_last=drop_last,
        progress=progress,
        mesh=mesh,
        device=device,
        compute_dtype=compute_dtype,
        precision=precision,
        ensemble=None,
    )
    if np.ndim(prep.l1) or np.ndim(prep.l2):
        raise ValueError("l1 and l2 must be scalars in fit (arrays are for fit_ensemble).")
    key = check_key(key)
    params, frozen, static = split_model(model)
    master = _as_master(params, prep.master_dtype)
    state = initial_state(
        prep,
        master,
        frozen,
        key,
        prep.l1,
        prep.l2,
        prep.learning_rate,
    )
    cfg = prep.config(static)
    result, (history,) = run(prep, cfg, state, t_start=t_start)
    if prep.master_dtype is not None:
        result = _as_model_dtypes(result, params)
    return with_frozen(result, state["frozen"], static), history


def with_frozen(result: PyTree, frozen: PyTree | None, static: PyTree) -> PyTree:
    """The model from trained arrays, the state's fixed arrays (None: there are none) and the
    static part."""
    if frozen is None:
        return eqx.combine(result, static)
    return eqx.combine(result, frozen, static)


@functools.lru_cache(maxsize=4)
def _default_key(impl: str) -> jax.Array:
    # made once (each jr.key call runs a small program); keys are immutable
    return jr.key(0)


def check_key(key: Any) -> jax.Array:
    """A typed `jax.random` key from `key` (`None`: `jax.random.key(0)`)."""
    if key is None:
        return _default_key(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax.random key such as jax.random.key(0); got {key!r}.")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"key must be ONE jax.random key (shape ()); got an array of keys of shape "
                f"{key.shape}."
            )
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise TypeError(
            f"key must be a jax.random key such as jax.random.key(0) (or a raw uint32 key of "
            f"shape (2,)); got an array of dtype {key.dtype} and shape {key.shape}."
        )
    return jr.wrap_key_data(key)
