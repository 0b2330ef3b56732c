"""`Prepared`: one fit's checked data on its device, its schedule and its program's `Config`;
and the initial training state, in one compiled call."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..model._rows import feature_major_ok
from ._config import Config
from ._data import check_features, check_sample_weight, check_targets, float_dtype, model_sizes
from ._flat import param_spec
from ._options import FitOptions
from ._placement import default_device, member_shardings, place
from ._program_cache import compiled_init
from ._schedule import FAST_COMPILE_MAX_STEP, SMALL_CALL, n_weights, schedule
from ._state import InitConfig, MemberState

PyTree = Any

PENALTY_ALWAYS_MAX_WEIGHTS = 1 << 16
"""Networks of at most this many weights compute both penalty terms in every program (a pass
over so few weights costs next to nothing, and an `l1` or `l2` going from 0 to a nonzero value,
as in a cross-validation over `l2`, compiles nothing); larger networks leave a term that is 0 for
every member out of the program (at 784-256-256-10 it cost 20% of an Adam step), and compile
once more when it becomes nonzero."""

FLAT_MAX_WEIGHTS = 1 << 16
"""An elementwise optimizer (Adam, SGD, ...) updates one raveled vector for networks of at most
this many weights (one kernel an update instead of several a layer: 0.63x the step time of the
per-layer tree at 1-16-16-1), and the model's own arrays above it, where slicing the vector
into the layers' matrices and concatenating their gradients costs a copy of every weight a
step (1.6x the step time at 784-256-256-10; even from about 4,000 to 68,000 weights)."""


def _dtypes(model, options: FitOptions):
    """`(compute_dtype, master_dtype, work_dtype)`: a bfloat16/float16 model trains float32
    master copies and computes in its own dtype."""
    param_dtype = float_dtype(model)
    if jnp.dtype(param_dtype).itemsize < 4:
        return options.dtype or jnp.dtype(param_dtype), jnp.dtype(jnp.float32)
    return options.dtype, None


def _effective_batch(options: FitOptions, n: int) -> int | None:
    """The batch size after the checks that need N (`None`: full batch)."""
    bs = options.batch_size
    if bs is None:
        return None
    if bs > n:
        raise ValueError(
            f"batch_size={bs} is larger than the data (N={n} samples); use "
            f"batch_size <= {n}, or batch_size=None for full batch."
        )
    if options.solver.full_batch_only:
        raise ValueError(
            "This optimizer (L-BFGS, Levenberg-Marquardt, Gauss-Newton) works on the "
            "full batch; use batch_size=None."
        )
    if bs == n and options.sampling == "epoch":
        return None  # one batch of everything, every step: the full batch
    if options.drop_last and n // bs == 0:
        raise ValueError("drop_last=True leaves no full batch.")
    return bs


def _validation(options: FitOptions, in_size: int, out_size: int, x_dtype, y_dtype):
    """The checked validation pair `(x_val, y_val)`, or None."""
    if options.validation is None:
        return None
    xv = check_features(options.validation[0], in_size, "validation x", dtype=x_dtype)
    classification = options.objective.classification
    yv = check_targets(
        options.validation[1], int(xv.shape[0]), out_size, classification, "validation y",
        dtype=y_dtype,
    )  # fmt: skip
    return xv, yv


def _library_ffn(model: Any) -> bool:
    """Whether `model` is eqx_ffn's own `FFN`, or a `Standardized` one (by name: `model`
    imports from `training`, so `training` does not import it)."""
    if type(model).__name__ == "Standardized":
        model = getattr(model, "model", None)
    return type(model).__name__ == "FFN" and type(model).__module__ == "eqx_ffn.model._ffn"


class Prepared:
    """One fit's (or ensemble's) checked and placed data, resolved settings and schedule.

    **Arguments:** `model` (for an ensemble a shape-only template of one member), `x`, `y`, the
    fit's `options`, `ensemble`: the number of members K, or None for one model, and
    `member_mesh`: a 1-D mesh (or a list of devices) over which an ensemble's members are split
    (the data replicated on each device), or None.
    """

    def __init__(
        self, model, x, y, options: FitOptions, ensemble: int | None = None, member_mesh=None
    ):
        self.options = options
        self.eval_every: int = options.eval_every or 1  # set by FitOptions
        self.solver = options.solver
        self.ensemble = ensemble
        in_size, out_size = model_sizes(model)
        classification = options.objective.classification
        self.compute_dtype, self.master_dtype = _dtypes(model, options)
        work_dtype = jnp.promote_types(float_dtype(model), jnp.float32)
        self.loss_dtype = work_dtype  # `loss_dtype` of the trained (master) parameters
        store_dtype = self.compute_dtype or work_dtype
        # the values are checked (and cast) where the data are placed: see `place`
        x_arr = check_features(x, in_size, "x", dtype=store_dtype, values=False)
        n = int(x_arr.shape[0])
        y_arr = check_targets(y, n, out_size, classification, "y", dtype=work_dtype)
        self.batch_size = _effective_batch(options, n)
        self.drop_last = options.drop_last and self.batch_size is not None
        w_arr = None
        if options.sample_weight is not None:
            w_arr = check_sample_weight(options.sample_weight, n, dtype=work_dtype)
        val = _validation(options, in_size, out_size, store_dtype, work_dtype)
        weights = n_weights(model)
        self.n_weights = weights
        device = options.target
        if device is None and options.mesh is None:
            full_line_search = self.batch_size is None and self.solver.line_search
            device = default_device(x_arr, full_line_search, n * max(weights, 1))
        self.device = device
        # a step that XLA may compile into one kernel (`Config.small_call`): on one device (no
        # collectives), an FFN of ours (no constants of a user's module) and a named loss
        self.one_kernel_ok = (
            options.mesh is None
            and member_mesh is None
            and _library_ffn(model)
            and options.objective.weightable
            and not (self.solver.least_squares or self.solver.line_search)
        )
        weighted = options.objective.weightable
        w_full = None
        if weighted:
            w_full = np.ones(n, work_dtype) if w_arr is None else w_arr
        placed = place(
            (x_arr, y_arr, w_full), val, weighted=weighted, device=device, mesh=options.mesh,
            batch_size=self.batch_size, x_dtype=store_dtype,
        )  # fmt: skip
        self.data, self.val, self.replicate = placed.data, placed.val, placed.replicate
        if member_mesh is not None:  # an ensemble's members split over devices
            assert ensemble is not None
            replicated, by_member = member_shardings(member_mesh, ensemble)
            self.data, self.val = jax.device_put((self.data, self.val), replicated)
            self.replicate = lambda tree: jax.device_put(tree, by_member)
        self.n, self.n_floor, self.weighted = n, placed.n_floor, weighted
        self.batch_sharding, self.platform = placed.batch_sharding, placed.platform
        on_device = self.platform != "cpu"
        if options._device_sampling is not None:
            on_device = options._device_sampling
        self.device_sampling = self.batch_size is not None and on_device
        k = ensemble or 1
        self.schedule = schedule(
            self.solver,
            rows=self.batch_size if self.batch_size is not None else int(self.data[0].shape[0]),
            weights=weights,
            k=k,
            platform=self.platform,
            host_indices=(self.batch_size or 0) * k if self.host_sampling else 0,
            has_val=val is not None,
            unroll=options._unroll,
        )
        self.param_spec: Any = None  # set with the initial state (see `spec_of`)
        self.key_data: np.ndarray | None = None  # the host sampler's key (initial_state)
        self.init_compile_time = 0.0  # seconds initial_state spent compiling its program

    @property
    def host_sampling(self) -> bool:
        """Mini-batch indices drawn on the host (NumPy), from `key_data`."""
        return self.batch_size is not None and not self.device_sampling

    @property
    def perm_width(self) -> int:
        """Width of the device-side epoch permutation cache (0: none)."""
        if self.device_sampling and self.options.sampling == "epoch":
            return int(self.data[0].shape[0])
        return 0

    def spec_of(self, params: PyTree) -> Any:
        """The raveled layout of one member's trained arrays when the solver works on one
        vector (`Solver.flat_params`), else None. An elementwise optimizer runs on the vector
        only for networks of at most `FLAT_MAX_WEIGHTS` weights (see there)."""
        if not self.solver.flat_params:
            return None
        if self.ensemble is not None:
            params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
        if not self.solver.least_squares and n_weights(params) > FLAT_MAX_WEIGHTS:
            return None
        return param_spec(params)

    def config(self, static) -> Config:
        """The program's static configuration, for the model's non-array part `static`."""
        # least-squares programs keep XLA's defaults: under LLVM -O1 (or the older emitters) an
        # ensemble member and its own fit round differently, which Levenberg-Marquardt's
        # accept/reject decisions amplify into different trajectories
        tuned = self.platform == "cpu" and not self.solver.least_squares
        s = self.schedule
        small_call = (
            SMALL_CALL
            and tuned
            and s.step_seconds <= FAST_COMPILE_MAX_STEP
            and self.one_kernel_ok
            and not self.device_sampling
        )
        return Config(
            solver=self.solver,
            loss=self.options.objective,
            static=static,
            batch_size=self.batch_size,
            sampling=self.options.sampling,
            drop_last=self.drop_last,
            weighted=self.weighted,
            n_floor=self.n_floor,
            device_sampling=self.device_sampling,
            chunk=s.chunk,
            max_chunks=s.max_chunks,
            unroll=s.unroll,
            has_val=self.val is not None,
            ensemble=self.ensemble is not None,
            solver_test=self.solver.convergence_test,
            compute_dtype=self.compute_dtype,
            precision=self.options.matmul_precision,
            batch_sharding=self.batch_sharding,
            param_spec=self.param_spec,
            cpu_options=tuned,
            feature_major=tuned and feature_major_ok(static),
            fast_compile=tuned and s.step_seconds <= FAST_COMPILE_MAX_STEP,
            small_call=small_call,
            ring=s.ring and not small_call,
            penalty_terms=(
                (True, True)
                if self.n_weights <= PENALTY_ALWAYS_MAX_WEIGHTS
                else self.options.penalty_terms
            ),
        )


def initial_state(prep: Prepared, params, frozen, key, l1, l2, lr) -> MemberState:
    """The training state of one model (or of a stacked ensemble), in one compiled call."""
    solver = prep.solver
    dtype = prep.loss_dtype
    k = prep.ensemble
    tol = prep.options.tol
    tol = np.full(k, tol, dtype) if k else np.asarray(tol, dtype)
    l1 = np.asarray(l1, dtype)
    l2 = np.asarray(l2, dtype)
    lr_arr = None if lr is None else np.asarray(lr, dtype)
    # the key lives in the state only where the program draws batches; the host sampler
    # reads its data once here
    prep.key_data = np.asarray(jr.key_data(key)) if prep.host_sampling else None
    if not prep.device_sampling:
        key = None
    args = prep.replicate((params, frozen, key, l1, l2, tol, lr_arr))
    prep.param_spec = prep.spec_of(params)
    cfg = InitConfig(
        solver,
        solver.init_key(),
        prep.val is not None,
        prep.perm_width,
        k is not None,
        prep.param_spec is not None,
    )
    t0 = time.perf_counter()
    program, seconds = compiled_init(cfg, *args)
    state = program(*args)
    if seconds:  # traced and compiled now: count it as compiling (the first call included)
        prep.init_compile_time = time.perf_counter() - t0
    return state
