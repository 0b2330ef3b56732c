"""Where a fit runs, and its data there: the device choice, the mesh, padding to a size bucket
and the placement of the data (one transfer)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeAlias

import jax
import numpy as np

from ._data import (
    aligned_rows,
    aligned_rows_checked,
    all_finite,
    cast_finite,
    on_host_if_cpu,
    pad_rows,
)
from ._program_cache import bucket, bucket_floor

Device: TypeAlias = Any
"""A `jax.Device` (type checkers cannot take `jax.Device`, a variable, as a type)."""

LBFGS_ON_CPU_MAX_WORK = 2e7
"""The documented placement rule: with `device=None` a full-batch line-search fit (L-BFGS)
whose work per evaluation (rows * parameters) is at most this runs on the host CPU when JAX's
default device is an accelerator. Each line-search iteration is a `while` whose condition the
host reads; on the lecture's problem that costs more on a GPU than the whole step on a CPU."""

HOST_DATA_MAX_BYTES = 1 << 18
"""Padded data of at most this many bytes, bound for JAX's default device when that is the
CPU, stay NumPy arrays: each program call copies them in for less than a `device_put` costs.
Larger data are put on the device once."""


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


def default_device(x_arr: Any, line_search_full_batch: bool, work: int) -> Device | None:
    """`device=None`: where the data already are (a JAX array on one device), else JAX's
    default (returned as None), except that a small full-batch line-search fit goes to the host
    CPU (see `LBFGS_ON_CPU_MAX_WORK`); `work` is rows * parameters."""
    default = jax.devices()[0]
    if isinstance(x_arr, jax.Array) and len(x_arr.devices()) == 1:
        default = next(iter(x_arr.devices()))
    if default.platform != "cpu" and line_search_full_batch and work <= LBFGS_ON_CPU_MAX_WORK:
        return jax.devices("cpu")[0]
    return None if default == jax.devices()[0] else default


def as_mesh(mesh):
    """A `jax.sharding.Mesh` from `mesh` (a `Mesh`, or a list of devices: a 1-D mesh)."""
    from jax.sharding import Mesh

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
    return mesh


def mesh_shardings(mesh, n, batch_size, weighted):
    """`(data, batch, replicated, n_devices)` shardings of a data-parallel fit over `mesh` (a
    `jax.sharding.Mesh` whose first axis splits the batch, or a list of devices)."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = as_mesh(mesh)
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


def _default_for(target: Device | None) -> Device | None:
    """JAX's default device when `target` is it (or None), else None."""
    default = jax.devices()[0]
    return default if target is None or target == default else None


def put_data(arrays: list, target: Device | None) -> list:
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


def put_tree(tree, target: Device | None):
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


class Placement(NamedTuple):
    """The placed (padded) data and how to place the rest (`replicate`: the initial state)."""

    data: tuple  # (x, y, w): w None for a callable loss
    val: tuple | None  # (x_val, y_val, w_val), or None
    replicate: Callable[[Any], Any]
    n_floor: int  # the least N with this padded size (the program's static lower bound)
    batch_sharding: Any
    platform: str


def _host_cpu(device: Device | None, mesh) -> bool:
    """Whether the data go to a host CPU device (`device`, or JAX's default)."""
    if mesh is not None:
        return False
    return (device if device is not None else jax.devices()[0]).platform == "cpu"


def _staged(arrays: list, rows: int, x_dtype: Any) -> list:
    """`arrays = [x, y, w]` as NumPy arrays of `rows` rows in memory a CPU device shares
    (`aligned_rows`); `x` (not yet checked) cast to `x_dtype`, then checked for NaN, inf and
    overflow in that one copy. A JAX array that needs neither padding nor a cast stays itself."""
    out, x_finite = [], True
    for j, a in enumerate(arrays):
        dtype = x_dtype if j == 0 else a.dtype
        if isinstance(a, jax.Array) and a.shape[0] == rows and a.dtype == dtype:
            out.append(a)
            if j == 0:
                x_finite = all_finite(on_host_if_cpu(a))
        elif j == 0:  # copied and checked in one pass
            staged, x_finite = aligned_rows_checked(a, rows, dtype)
            out.append(staged)
        else:
            out.append(aligned_rows(a, rows, dtype))
    if not x_finite:
        cast_finite(arrays[0], x_dtype, "x")  # names the first bad value (raises)
    return out


def place(
    arrays: tuple,
    val: tuple | None,
    *,
    weighted: bool,
    device,
    mesh,
    batch_size,
    x_dtype: Any = None,
) -> Placement:
    """Pad `arrays = (x, y, w)` (and `val`) to a size bucket (named losses: `w` then weighs the
    padding 0; a callable loss sees exactly N rows) and put them on `device` or over `mesh`.
    `w` is None for a callable loss. With `x_dtype`, `x` arrives unchecked (`check_features(...,
    values=False)`): it is cast to `x_dtype` and checked here, where data bound for a CPU are
    copied once into memory the device shares (`aligned_rows`): the cast, the padding and the
    check in that one copy."""
    n = int(arrays[0].shape[0])
    x_dtype = arrays[0].dtype if x_dtype is None else x_dtype
    cpu = _host_cpu(device, mesh)
    nbytes = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in arrays if a is not None)
    if not (cpu and nbytes > HOST_DATA_MAX_BYTES):
        arrays = (cast_finite(arrays[0], x_dtype, "x"), *arrays[1:])
    n_dev, batch_sharding = 1, None
    if mesh is not None:
        data_sharding, batch_sharding, replicated, n_dev = mesh_shardings(
            mesh, n, batch_size, weighted
        )
        put: Callable = lambda a: jax.device_put(a, data_sharding)  # noqa: E731
        replicate: Callable = lambda tree: jax.device_put(tree, replicated)  # noqa: E731
    else:
        put = functools.partial(put_data, target=device)
        replicate = functools.partial(put_tree, target=device)
    nb = bucket(n, n_dev) if weighted else n
    present = list(arrays if weighted else arrays[:2])
    if cpu and nbytes > HOST_DATA_MAX_BYTES:
        # one copy into shared memory (the cast, padding and check in it): no transfer
        staged = tuple(jax.device_put(_staged(present, nb, x_dtype), device))
        data = staged if weighted else (*staged, None)
    elif weighted:
        data = tuple(put([pad_rows(on_host_if_cpu(a), nb) for a in arrays]))  # one transfer
    else:
        data = (*put(present), None)
    placed_val = None
    if val is not None:
        nv = int(val[0].shape[0])
        # every program call reads them: on the device (replicated over a mesh) once
        vput = replicate if mesh is not None else put
        if weighted:
            vb = bucket(nv, n_dev)
            vw = np.ones(nv, arrays[2].dtype)
            placed_val = tuple(vput([pad_rows(on_host_if_cpu(a), vb) for a in (*val, vw)]))
        else:
            placed_val = (*vput([val[0], val[1]]), None)
    platform = device.platform if device is not None else jax.devices()[0].platform
    n_floor = bucket_floor(nb) if weighted else n
    return Placement(data, placed_val, replicate, n_floor, batch_sharding, platform)


def member_shardings(mesh, k: int):
    """`(replicated, members)` shardings of an ensemble of `k` members over a 1-D `mesh` (a
    `jax.sharding.Mesh` or a list of devices): each device trains `k / D` members on a full copy
    of the data."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = as_mesh(mesh)
    if len(mesh.axis_names) != 1:
        raise ValueError(
            f"fit_ensemble shards members over a 1-D mesh; got a mesh with axes "
            f"{mesh.axis_names} (shape {dict(mesh.shape)})."
        )
    axis = mesh.axis_names[0]
    n_dev = mesh.shape[axis]
    if k % n_dev:
        raise ValueError(
            f"fit_ensemble with mesh= splits the K={k} members evenly over the {n_dev} devices "
            f"of the mesh: K must be a multiple of {n_dev} (e.g. {n_dev * -(-k // n_dev)} keys)."
        )
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(axis))
