"""Checking training data before anything is compiled, and padding it to a size bucket.

Inputs may be JAX arrays, NumPy arrays, or anything `numpy.asarray` turns into real numbers
(pandas DataFrames and Series, nested lists). JAX arrays are checked where they live: the shape
from their metadata, finiteness with one reduction on their device (one boolean comes back),
never a copy of the data through the host (arrays on the host CPU are read in place by NumPy).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._threads import pool
from .._validation import default_float
from ._cache_key import identity_memo

Array = Any  # a NumPy or JAX array


def _is_real(dtype: Any) -> bool:
    return bool(
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or jnp.issubdtype(dtype, jnp.bool_)
    )


def as_array(value: Any, argument: str) -> Array:
    """`value` as a NumPy or JAX array of real numbers, or a `TypeError` naming `argument`."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{argument} is a traced JAX value: call eqx_ffn.fit/predict outside jax.jit or "
            "jax.vmap (they compile their own programs)."
        )
    if isinstance(value, (jax.Array, np.ndarray)):
        arr = value
    elif isinstance(value, (str, bytes, dict, set)) or value is None:
        raise TypeError(
            f"{argument} must be an array of numbers (a JAX or NumPy array, a pandas DataFrame, "
            f"nested lists); got {type(value).__name__}."
        )
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{argument} must be an array of numbers (a JAX or NumPy array, a pandas "
                f"DataFrame, nested lists); got {type(value).__name__} that NumPy cannot turn "
                f"into one ({err})."
            ) from None
    if not _is_real(arr.dtype):
        raise TypeError(
            f"{argument} must hold real numbers; got dtype {arr.dtype} (from "
            f"{type(value).__name__}){_non_numeric_columns(value)}. Convert or encode the "
            "non-numeric values first (e.g. pandas.get_dummies for categories)."
        )
    return arr


def _is_real_like(dtype: Any) -> bool:
    """`_is_real` for NumPy dtypes; False for what NumPy cannot read (pandas' text, categories)."""
    try:
        return _is_real(np.dtype(dtype))
    except TypeError:
        return False


def _non_numeric_columns(value: Any) -> str:
    """`": column 'color' holds object values"` for a DataFrame (or Series) with such columns."""
    dtypes = getattr(value, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):  # not a DataFrame
        dtype = getattr(value, "dtype", None)
        name = getattr(value, "name", None)
        if dtype is not None and name is not None and not _is_real_like(dtype):
            return f": {name!r} holds {dtype} values"
        return ""
    bad = [(name, dt) for name, dt in dtypes.items() if not _is_real_like(dt)]
    if not bad:
        return ""
    shown = ", ".join(f"column {name!r} holds {dt} values" for name, dt in bad[:5])
    return ": " + shown + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")


def _where_bad(arr: np.ndarray, mask: np.ndarray) -> str:
    bad = np.argwhere(mask)[0]
    if arr.ndim == 1:
        return f"row {bad[0]}"
    return f"row {bad[0]}, column {bad[1]}"


def on_host_if_cpu(a: Any) -> Any:
    """A JAX array that lives alone on a host CPU device as a NumPy view of it (read in place,
    no program to dispatch); anything else unchanged (data on an accelerator stay there)."""
    if isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer):
        devices = a.devices()
        if len(devices) == 1 and next(iter(devices)).platform == "cpu":
            return np.asarray(a)
    return a


BLOCK_BYTES = 4 << 20
"""Rows of a large matrix are copied and checked in blocks of about this many bytes, one block
per task on the process's threads (`eqx_ffn._threads`), a block summed while it is still in
cache. NOT through BLAS (`x @ ones`): OpenBLAS's threads busy-wait for a while after each call,
and on a CPU device they take the cores from the XLA program that runs next (a 188 MB check
that way slowed the first ~100 ms of the training program that followed by ~30 ms on 2
cores)."""

PARALLEL_MIN_BYTES = 16 << 20
"""Below this many bytes a matrix is copied and checked on the calling thread."""


def _blocks(arr: np.ndarray) -> list[slice]:
    """`arr`'s rows in slices of about `BLOCK_BYTES` (one slice when it is small)."""
    n = arr.shape[0]
    if arr.nbytes < PARALLEL_MIN_BYTES or n < 2:
        return [slice(0, n)]
    step = max(1, BLOCK_BYTES // max(arr.nbytes // n, 1))
    return [slice(a, min(n, a + step)) for a in range(0, n, step)]


def _map_blocks(fn, blocks: list[slice]) -> list:
    if len(blocks) == 1:
        return [fn(blocks[0])]
    return list(pool().map(fn, blocks))


def _finite_by_sums(sums: list, arr: np.ndarray) -> bool:
    """Whether `arr`, whose blocks summed to `sums`, is all finite: yes when every sum is (NaN
    and inf reach a sum), else by an exact check (a sum of finite values may overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.asarray(sums)).all():
            return True
    return bool(np.all(np.isfinite(arr)))


def all_finite(arr: np.ndarray) -> bool:
    """Whether a floating-point array holds no NaN or inf: one pass (sums, into which NaN and
    inf propagate; a large matrix by blocks of rows on every core), and an exact check only
    where a sum is not finite (NaN, inf, or a sum of finite values that overflows)."""
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return True
    blocks = _blocks(arr) if arr.ndim >= 1 else [slice(None)]

    def one(b: slice):
        with np.errstate(over="ignore", invalid="ignore"):  # (per thread)
            return np.add.reduce(arr[b], axis=None)

    return _finite_by_sums(_map_blocks(one, blocks), arr)


def copy_checked(out: np.ndarray, host: np.ndarray) -> bool:
    """Copy `host` into `out[:len(host)]` (cast as NumPy's unsafe casting does: values that
    overflow become inf) and return whether the copy is all finite: each block of rows is
    summed just after it is copied, while in cache (one pass over the data, not two)."""
    floating = jnp.issubdtype(out.dtype, jnp.inexact)

    def one(b: slice):
        with np.errstate(over="ignore", invalid="ignore"):  # (per thread)
            np.copyto(out[b], host[b], casting="unsafe")
            return np.add.reduce(out[b], axis=None) if floating else 0

    sums = _map_blocks(one, _blocks(host))
    return _finite_by_sums(sums, out[: host.shape[0]]) if floating else True


ALIGNMENT = 64
"""JAX's CPU client uses a NumPy array's memory as the device buffer, without a copy, when the
data start on a 64-byte boundary (NumPy's own allocations start 16 bytes past one)."""


STAGING_POOL_MAX_BYTES = 1 << 30
"""The largest staging buffer (`aligned_rows`) kept for the next fit once its fit is done."""


class _StagingPool:
    """One staging buffer of at most `STAGING_POOL_MAX_BYTES`, reused by the next fit of the
    same or a smaller size: a fresh buffer costs the kernel's zeroing of every page (2.9x the
    copy itself for a 188 MB MNIST-size matrix). The buffer is free again once nothing
    references it: no view of it, and no JAX array (JAX's CPU client holds a reference to the
    NumPy array whose memory it shares until the device buffer is freed, after any computation
    reading it). Its reference count is compared with the count measured when it was made, in
    the same way, so the test does not depend on how the interpreter counts references."""

    def __init__(self):
        self.lock = threading.Lock()
        self.raw: np.ndarray | None = None
        self.alone = 0  # the reference count of `raw` with nothing else holding it

    def _count(self) -> int:
        raw = self.raw
        return sys.getrefcount(raw)

    def _free(self) -> bool:
        if self.raw is None:
            return False
        for wait in (0.0, 0.0005, 0.001, 0.002):
            if wait:
                # JAX's CPU client drops its references from its own threads, a moment after
                # the last computation reading the buffer ends, by a queue that its `gc`
                # callback drains (a young-generation collection runs it)
                time.sleep(wait)
                gc.collect(0)
            if self._count() == self.alone:
                return True
        return False

    def take(self, nbytes: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
        """An uninitialised array of `shape` whose data start on an `ALIGNMENT` boundary."""
        need = nbytes + ALIGNMENT
        with self.lock:
            # (no local reference to the pool's buffer while its count is read)
            fits = self.raw is not None and need <= self.raw.nbytes <= 2 * need
            raw = None
            if fits and self._free():
                raw = self.raw
            if raw is None:
                raw = np.empty(need, np.uint8)
                # the pool keeps its buffer unless a larger one is needed (a small request,
                # a validation set or labels, never evicts the training matrix's)
                bigger = self.raw is None or need > self.raw.nbytes
                if need <= STAGING_POOL_MAX_BYTES and bigger:
                    self.raw = raw
                    self.alone = self._count() - 1  # less this function's own `raw`
            start = (-raw.ctypes.data) % ALIGNMENT
            return raw[start : start + nbytes].view(dtype).reshape(shape)


_staging = _StagingPool()


def aligned_rows(arr: Array, rows: int, dtype: Any) -> np.ndarray:
    return aligned_rows_checked(arr, rows, dtype)[0]


def aligned_rows_checked(arr: Array, rows: int, dtype: Any) -> tuple[np.ndarray, bool]:
    """An array of `rows` rows, `arr`'s cast to `dtype` and then zeros, whose data start on an
    `ALIGNMENT` boundary: `jax.device_put` on a CPU then shares its memory (one copy of the data
    in all, where padding and then putting copy twice). Values that overflow `dtype` become inf
    (the caller checks finiteness). Its memory may be a reused staging buffer (`_StagingPool`),
    never one that anything still references. Returns `(array, all_finite)` (`copy_checked`)."""
    dtype = np.dtype(dtype)
    host = np.asarray(on_host_if_cpu(arr))
    shape = (rows, *host.shape[1:])
    nbytes = int(np.prod(shape)) * dtype.itemsize
    out = _staging.take(nbytes, dtype, shape)
    n = host.shape[0]
    finite = copy_checked(out, host)
    out[n:] = 0
    return out, finite


def cast_finite(arr: Array, dtype: Any, argument: str) -> Array:
    """`arr` cast to `dtype`, refusing NaN/inf and values that overflow `dtype` (float64 data
    beyond float32's range become inf in the cast: that is an error, not a training failure)."""
    dtype = jnp.dtype(dtype)
    if isinstance(arr, jax.Array):
        host = on_host_if_cpu(arr) if arr.dtype == dtype else arr
        if host is not arr:  # on the host already: NumPy reads it in place
            if bool(np.all(np.isfinite(host))):
                return arr
        else:
            cast = arr.astype(dtype)
            if bool(jnp.all(jnp.isfinite(cast))):  # one reduction on the device
                return cast
        host = np.asarray(arr)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = host.astype(dtype)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            cast = np.asarray(arr).astype(dtype, copy=False)
        if all_finite(cast):
            return cast
        host = arr
    host = np.asarray(host)
    if jnp.issubdtype(host.dtype, jnp.floating) and not np.all(np.isfinite(host)):
        where = _where_bad(host, ~np.isfinite(host))
        raise ValueError(
            f"{argument} contains NaN or inf (first at {where}); remove or impute those samples."
        )
    finite = np.isfinite(np.asarray(cast))
    where = _where_bad(host, ~finite)
    value = host[tuple(np.argwhere(~finite)[0])]
    raise ValueError(
        f"{argument} has values too large for {dtype} (first at {where}: {float(value):g}); "
        "standardise or rescale the data"
        + (
            ", or enable float64 with jax.config.update('jax_enable_x64', True)."
            if dtype.itemsize < 8
            else "."
        )
    )


def check_features(
    x: Any,
    in_size: int,
    argument: str = "x",
    *,
    dtype: Any = None,
    allow_empty: bool = False,
    values: bool = True,
) -> Array:
    """`x` must be `(N, in_size)`, real, finite, N > 0; returned cast to `dtype` (default: the
    default float). `values=False` checks the shape alone and returns `x` as an array, uncast:
    the caller checks finiteness on its own copy (`cast_finite` then names the problem)."""
    arr = as_array(x, argument)
    if arr.ndim != 2 or arr.shape[1] != in_size:
        hint = ""
        if arr.ndim == 1 and in_size == 1:
            hint = f" Reshape it with {argument}[:, None]."
        elif arr.ndim == 1 and arr.shape[0] == in_size:
            hint = f" For one sample call the model directly, or use {argument}[None, :]."
        raise ValueError(
            f"{argument} must have shape (N, in_size) = (N, {in_size}); got "
            f"{tuple(arr.shape)}.{hint}"
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(
            f"{argument} is empty (shape {tuple(arr.shape)}): need at least one sample."
        )
    if not values:
        return arr
    return cast_finite(arr, default_float() if dtype is None else dtype, argument)


def check_targets(
    y: Any,
    n: int,
    out_size: int,
    classification: bool,
    argument: str = "y",
    *,
    dtype: Any = None,
) -> Array:
    """`y` must be `(N, out_size)` real numbers (or `(N,)` when `out_size == 1`), or for a
    classifier `(N,)` integer labels in `[0, out_size)`."""
    arr = as_array(y, argument)
    if classification:
        if tuple(arr.shape) != (n,):
            raise ValueError(
                f"{argument} must hold one integer class label per sample, shape ({n},); got "
                f"{tuple(arr.shape)}."
            )
        if not jnp.issubdtype(arr.dtype, jnp.integer):
            host = np.asarray(arr)
            if (
                jnp.issubdtype(host.dtype, jnp.floating)
                and np.all(np.isfinite(host))
                and np.all(host == np.round(host))
            ):
                arr = host.astype(np.int64)
            else:
                raise TypeError(
                    f"{argument} must hold integer class labels 0..{out_size - 1} for "
                    f"softmax_cross_entropy; got dtype {arr.dtype}."
                )
        if n:
            lo, hi = (int(v) for v in (arr.min(), arr.max()))
            if lo < 0 or hi >= out_size:
                raise ValueError(
                    f"{argument} labels must lie in [0, {out_size}) for a model with out_size="
                    f"{out_size}; got labels from {lo} to {hi}."
                )
        return arr.astype(jnp.int32)
    if arr.ndim == 1 and out_size == 1 and arr.shape[0] == n:
        arr = arr.reshape(n, 1)
    if tuple(arr.shape) != (n, out_size):
        hint = ""
        if arr.ndim == 2 and arr.shape[0] != n:
            hint = " x and y must have the same number of rows."
        elif arr.ndim == 1 and arr.shape[0] != n:
            hint = " x and y must have the same number of rows."
        raise ValueError(
            f"{argument} must have shape (N, out_size) = ({n}, {out_size}); got "
            f"{tuple(arr.shape)}.{hint}"
        )
    return cast_finite(arr, default_float() if dtype is None else dtype, argument)


def check_sample_weight(w: Any, n: int, *, dtype: Any = None) -> Array:
    """Per-sample weights, shape `(N,)`, finite, >= 0, not all zero."""
    arr = as_array(w, "sample_weight")
    if tuple(arr.shape) != (n,):
        raise ValueError(f"sample_weight must have shape (N,) = ({n},); got {tuple(arr.shape)}.")
    arr = cast_finite(arr, default_float() if dtype is None else dtype, "sample_weight")
    lo, hi = (float(v) for v in (arr.min(), arr.max()))
    if lo < 0:
        raise ValueError(f"sample_weight must be >= 0; got a minimum of {lo:g}.")
    if hi <= 0:
        raise ValueError("sample_weight is zero everywhere: nothing to fit.")
    return arr


def pad_rows(arr: Array, size: int) -> Array:
    """`arr` with zero rows appended up to `size` rows (on the host for NumPy arrays, on the
    array's device for JAX arrays)."""
    extra = size - arr.shape[0]
    if extra == 0:
        return arr
    if isinstance(arr, jax.Array):
        return jnp.pad(arr, [(0, extra)] + [(0, 0)] * (arr.ndim - 1))
    out = np.zeros((size, *arr.shape[1:]), arr.dtype)  # np.pad's general path is slower
    out[: arr.shape[0]] = arr
    return out


def model_sizes(model: Any) -> tuple[int, int]:
    try:
        return int(model.in_size), int(model.out_size)
    except AttributeError:
        raise TypeError(
            f"model must have in_size and out_size (an eqx_ffn.FFN, or a Standardized wrapping "
            f"one); got {type(model).__name__}."
        ) from None
    except (TypeError, ValueError):
        raise TypeError(
            f"model.in_size and model.out_size must be integers; got "
            f"{getattr(model, 'in_size', None)!r} and {getattr(model, 'out_size', None)!r}."
        ) from None


@identity_memo
def float_dtype(model: Any) -> jnp.dtype:
    """The dtype of the model's first floating-point array."""
    for leaf in jax.tree.leaves(model):
        is_array = isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct))
        if is_array and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return default_float()
