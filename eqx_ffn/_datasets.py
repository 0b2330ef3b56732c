"""The lecture's data sets (REFERENCE.md), its initial parameters, and reading tables from disk.

Every generator draws its data inside ONE compiled function: eager `jax.random` calls compile
one small program each, while a single `jax.jit` program compiles once per shape and is reused
by later calls. Measured on a 2-core CPU (JAX 0.10): `sine_1d()` + `lecture_params()` take
0.5-0.7 s on first use against 0.8 s for the lecture's eager code, `sine_cosine_2d()` 0.4 s
against 0.6 s, and every later call about 1 ms. The results are bit-for-bit those of the
lecture's eager code.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._ffn import check_hidden_sizes

__all__ = [
    "Dataset",
    "lecture_params",
    "load_table",
    "sine_1d",
    "sine_1d_large",
    "sine_1d_target",
    "sine_cosine_2d",
    "sine_cosine_2d_target",
    "train_test_split",
    "write_csv",
]


# -- the container -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A regression data set: training arrays, optional test arrays, and what they are.

    **Attributes:**

    - `x`: inputs, shape `(N, n_x)`.
    - `y`: targets, shape `(N, n_y)`.
    - `x_test`, `y_test`: test inputs and targets, shapes `(M, n_x)` and `(M, n_y)`, or `None`.
    - `name`: a short identifier, e.g. `"sine_1d"`.
    - `description`: a sentence saying how the data were made.
    - `f`: the noise-free target function when known, else `None`. It maps inputs of shape
      `(..., n_x)` to `(..., n_y)`, so it works on one sample and on a batch alike (for plots).
    - `x_names`, `y_names`: column names when the data came from a table, else `None`.

    A `Dataset` unpacks like the pair `(x, y)`:

    ```python
    x, y = eqx_ffn.datasets.sine_1d()          # (200, 1), (200, 1)
    ds = eqx_ffn.datasets.sine_cosine_2d()
    ds.x_test.shape                            # (500, 2)
    ```
    """

    x: Float[Array, "N n_x"]
    y: Float[Array, "N n_y"]
    x_test: Float[Array, "M n_x"] | None = None
    y_test: Float[Array, "M n_y"] | None = None
    name: str = ""
    description: str = ""
    f: Callable[[Array], Array] | None = None
    x_names: tuple[str, ...] | None = None
    y_names: tuple[str, ...] | None = None

    def __post_init__(self):
        x_shape, y_shape = np.shape(self.x), np.shape(self.y)
        if len(x_shape) != 2 or len(y_shape) != 2 or x_shape[0] != y_shape[0]:
            raise ValueError(
                f"Dataset needs x of shape (N, n_x) and y of shape (N, n_y) with the same N; "
                f"got x {x_shape} and y {y_shape}."
            )
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError("Dataset needs both x_test and y_test, or neither.")
        if self.x_test is not None and self.y_test is not None:
            xt, yt = np.shape(self.x_test), np.shape(self.y_test)
            if (
                len(xt) != 2
                or len(yt) != 2
                or xt[0] != yt[0]
                or xt[1] != x_shape[1]
                or yt[1] != y_shape[1]
            ):
                raise ValueError(
                    f"Dataset needs x_test of shape (M, {x_shape[1]}) and y_test of shape "
                    f"(M, {y_shape[1]}); got x_test {xt} and y_test {yt}."
                )

    @property
    def n_x(self) -> int:
        """Number of inputs (columns of `x`)."""
        return int(np.shape(self.x)[1])

    @property
    def n_y(self) -> int:
        """Number of outputs (columns of `y`)."""
        return int(np.shape(self.y)[1])

    @property
    def n_samples(self) -> int:
        """Number of training samples `N`."""
        return int(np.shape(self.x)[0])

    def __iter__(self) -> Iterator[Array]:
        return iter((self.x, self.y))

    def __getitem__(self, index: Any) -> Any:
        return (self.x, self.y)[index]

    def __repr__(self) -> str:
        test = "" if self.x_test is None else f", x_test={np.shape(self.x_test)}"
        return (
            f"Dataset(name={self.name!r}, x={np.shape(self.x)}, y={np.shape(self.y)}{test}, "
            f"dtype={getattr(self.x, 'dtype', '?')})"
        )


# -- checks ------------------------------------------------------------------------------------


def _check_count(value: Any, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_key(key: Any, default_seed: int = 42) -> jax.Array:
    if key is None:
        return jr.key(default_seed)
    is_typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    is_raw = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
    if not (is_typed and key.shape == ()) and not is_raw:
        raise TypeError(
            f"key must be one jax.random key such as jax.random.key(42); got "
            f"{type(key).__name__} with shape {getattr(key, 'shape', None)}."
        )
    return key


def _default_float() -> np.dtype:
    """float32, or float64 when `jax_enable_x64` is on (what `jnp.zeros(())` gives)."""
    return np.dtype(jnp.zeros(()).dtype)


# -- section 1-3: the 1-D problem --------------------------------------------------------------


def sine_1d_target(x: Float[Array, "*batch 1"]) -> Float[Array, "*batch 1"]:
    """The lecture's target `f(x) = 2 sin(3x) - 3 cos(7x)`, elementwise; shape is kept."""
    return 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)


@functools.partial(jax.jit, static_argnums=1)
def _sine_1d(key: jax.Array, n: int) -> tuple[Array, Array]:
    k_inputs = jr.split(key, 5)[0]  # the lecture's keys: inputs, W1, b1, W2, b2
    x = -1 + 2 * jr.uniform(k_inputs, (n, 1))
    return x, sine_1d_target(x)


def sine_1d(n: int = 200, *, key: PRNGKeyArray | None = None) -> Dataset:
    """The lecture's 1-D data set (REFERENCE.md section 1; `n=20000` is section 3's).

    `key` (default `jax.random.key(42)`) is split into 5 keys, in the lecture's order: inputs,
    W1, b1, W2, b2. The inputs are `x = -1 + 2 * jax.random.uniform(keys[0], (n, 1))`, uniform
    on `[-1, 1]`, and the targets are `f(x) = 2 sin(3x) - 3 cos(7x)` without noise (the lecture
    defines a noise level of 0.1 but trains on noise-free targets). The other four keys are
    those of `lecture_params()`.

    **Arguments:**

    - `n`: number of samples `N >= 1` (default 200).
    - `key`: a `jax.random` key (keyword-only); default `jax.random.key(42)`.

    **Returns:** a `Dataset` with `x`, `y` of shape `(n, 1)` in the default float dtype
    (float32, or float64 under `jax_enable_x64`), `f = sine_1d_target` and no test set.

    ```python
    x, y = sine_1d()                           # (200, 1), (200, 1)
    ```
    """
    n = _check_count(n, "n")
    x, y = _sine_1d(_check_key(key), n)
    return Dataset(
        x=x,
        y=y,
        name="sine_1d",
        description=(
            f"{n} inputs uniform on [-1, 1] (key split in 5: inputs, W1, b1, W2, b2), "
            "noise-free targets f(x) = 2 sin(3x) - 3 cos(7x)."
        ),
        f=sine_1d_target,
    )


def sine_1d_large(*, key: PRNGKeyArray | None = None) -> Dataset:
    """REFERENCE.md section 3's data set: `sine_1d(20000, key=key)`, for mini-batching."""
    return sine_1d(20000, key=key)


@functools.partial(jax.jit, static_argnums=(1,))
def _lecture_params(key: jax.Array, sizes: tuple[int, ...]) -> dict[str, Array]:
    n_layers = len(sizes) - 1
    keys = jr.split(key, 1 + 2 * n_layers)  # inputs first, then W1, b1, W2, b2, ...
    params = {}
    for i in range(n_layers):
        params[f"W{i + 1}"] = jr.normal(keys[1 + 2 * i], (sizes[i + 1], sizes[i]))
        params[f"b{i + 1}"] = jr.normal(keys[2 + 2 * i], (sizes[i + 1],))
    return params


def lecture_params(
    hidden_sizes: Sequence[int] | int = (16,),
    n_x: int = 1,
    n_y: int = 1,
    *,
    key: PRNGKeyArray | None = None,
) -> dict[str, Array]:
    """The lecture's initial parameter dictionary `{"W1", "b1", "W2", "b2", ...}`.

    `key` (default `jax.random.key(42)`) is split into `1 + 2 * n_layers` keys: the first is the
    inputs' key (used by `sine_1d`), then W1, b1, W2, b2, W3, b3, ... in that order. Every entry
    is standard normal from its key; `Wi` has shape `(out, in)`, `bi` shape `(out,)`. With the
    defaults this is REFERENCE.md section 1 (5 keys); `hidden_sizes=(16, 16)` is section 2
    (7 keys). `eqx_ffn.FFN.from_params(lecture_params())` is the lecture's network.

    **Arguments:**

    - `hidden_sizes`: hidden widths, default `(16,)`; an int means one hidden layer.
    - `n_x`, `n_y`: number of inputs and outputs (default 1 and 1).
    - `key`: a `jax.random` key (keyword-only); default `jax.random.key(42)`.

    **Returns:** a dict of arrays in the default float dtype.

    ```python
    model = eqx_ffn.FFN.from_params(lecture_params())
    x, y = sine_1d()
    model(x[10])                               # Array([1.5116649], dtype=float32)
    ```
    """
    hidden = check_hidden_sizes(hidden_sizes)
    sizes = (_check_count(n_x, "n_x"), *hidden, _check_count(n_y, "n_y"))
    return dict(_lecture_params(_check_key(key), sizes))


# -- section 4: the 2-D problem ----------------------------------------------------------------


def sine_cosine_2d_target(x: Float[Array, "*batch 2"]) -> Float[Array, "*batch 1"]:
    """The 2-D example's target `f(x) = 2 sin(x1) - 3 cos(x2)`: `(..., 2)` to `(..., 1)`."""
    return 2 * jnp.sin(x[..., 0:1]) - 3 * jnp.cos(x[..., 1:2])


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sine_cosine_2d(
    key: jax.Array, noise: Array, n_train: int, n_test: int
) -> tuple[Array, Array, Array, Array]:
    k_x, k_noise, k_x_test, k_noise_test = jr.split(key, 4)

    def draw(k_in, k_eps, n):
        x = -2 + 4 * jr.uniform(k_in, (n, 2))
        return x, sine_cosine_2d_target(x) + noise * jr.normal(k_eps, (n, 1))

    x, y = draw(k_x, k_noise, n_train)
    x_test, y_test = draw(k_x_test, k_noise_test, n_test)
    return x, y, x_test, y_test


def sine_cosine_2d(
    n_train: int = 500,
    n_test: int = 500,
    noise: float = 0.1,
    *,
    key: PRNGKeyArray | None = None,
) -> Dataset:
    """The 2-D example (REFERENCE.md section 4): `f(x) = 2 sin(x1) - 3 cos(x2)` plus noise.

    `key` (default `jax.random.key(42)`) is split into 4 keys, in this order: training inputs,
    training noise, test inputs, test noise. Inputs are `-2 + 4 * uniform(k, (n, 2))`, uniform
    on `[-2, 2]^2`; targets are `f(x) + noise * normal(k, (n, 1))`, on both the training and the
    test set.

    **Arguments:**

    - `n_train`: number of training samples (>= 1, default 500).
    - `n_test`: number of test samples (>= 0, default 500; 0 gives no test set).
    - `noise`: standard deviation of the Gaussian noise on the targets (>= 0, default 0.1).
    - `key`: a `jax.random` key (keyword-only); default `jax.random.key(42)`.

    **Returns:** a `Dataset` with `x (n_train, 2)`, `y (n_train, 1)`, `x_test (n_test, 2)`,
    `y_test (n_test, 1)` and the noise-free `f = sine_cosine_2d_target`.

    ```python
    ds = sine_cosine_2d()
    ds.x.shape, ds.y_test.shape                # (500, 2), (500, 1)
    ```
    """
    n_train = _check_count(n_train, "n_train")
    n_test = _check_count(n_test, "n_test", minimum=0)
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float, np.floating, np.integer))
        or not math.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(
            f"noise must be a finite number >= 0 (a standard deviation); got {noise!r}."
        )
    dtype = _default_float()
    x, y, x_test, y_test = _sine_cosine_2d(
        _check_key(key), jnp.asarray(noise, dtype), n_train, n_test
    )
    return Dataset(
        x=x,
        y=y,
        x_test=x_test if n_test else None,
        y_test=y_test if n_test else None,
        name="sine_cosine_2d",
        description=(
            f"{n_train} training and {n_test} test inputs uniform on [-2, 2]^2 (key split in 4: "
            "training inputs, training noise, test inputs, test noise), targets "
            f"f(x) = 2 sin(x1) - 3 cos(x2) plus Gaussian noise of standard deviation {noise:g}."
        ),
        f=sine_cosine_2d_target,
    )


# -- splitting ---------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=3)
def _split(key: jax.Array, x: Array, y: Array, n_test: int) -> tuple[Array, Array, Array, Array]:
    perm = jr.permutation(key, x.shape[0])
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def train_test_split(
    x: Any, y: Any, *, test_fraction: float = 0.2, key: PRNGKeyArray
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Split `(x, y)` at random into a training and a test part.

    The rows are shuffled with `jax.random.permutation(key, N)`; the first
    `round(test_fraction * N)` shuffled rows form the test part, the rest the training part
    (in shuffled order). The same key gives the same split.

    **Arguments:**

    - `x`: inputs, shape `(N, n_x)` (a 1-D array is taken as one column).
    - `y`: targets, shape `(N, n_y)` or `(N,)` (kept as given).
    - `test_fraction`: share of the rows for the test part, `0 < test_fraction < 1`
      (default 0.2); both parts must end up with at least one row.
    - `key`: a `jax.random` key (keyword-only, required).

    **Returns:** `((x_train, y_train), (x_test, y_test))`, JAX arrays; the second pair can be
    passed as `fit(..., validation=(x_test, y_test))`.

    ```python
    (x_tr, y_tr), (x_te, y_te) = train_test_split(x, y, test_fraction=0.25, key=jr.key(0))
    ```
    """
    if key is None:
        raise TypeError("train_test_split needs key=jax.random.key(...) to shuffle the rows.")
    key = _check_key(key)
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"train_test_split needs x of shape (N, n_x) and y of shape (N, n_y) or (N,) with "
            f"the same N; got x {x.shape} and y {y.shape}."
        )
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float, np.floating))
        or not 0 < test_fraction < 1
    ):
        raise ValueError(
            f"test_fraction must be a number strictly between 0 and 1; got {test_fraction!r}."
        )
    n = int(x.shape[0])
    n_test = round(test_fraction * n)
    if n_test < 1 or n_test > n - 1:
        raise ValueError(
            f"test_fraction={test_fraction} of N={n} rows gives {n_test} test and {n - n_test} "
            "training rows; both parts need at least one row. Use more data or another fraction."
        )
    x_train, y_train, x_test, y_test = _split(key, x, y, n_test)
    return (x_train, y_train), (x_test, y_test)


# -- reading and writing tables ----------------------------------------------------------------


def _resolve_dtype(dtype: Any) -> np.dtype:
    if dtype is None:
        return _default_float()
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be a floating-point dtype such as float32; got {dt}.")
    return dt


def _as_col_list(cols: Any, argument: str) -> list[str | int]:
    if isinstance(cols, (str, int, np.integer)) and not isinstance(cols, bool):
        cols = [cols]
    if not isinstance(cols, Sequence) or isinstance(cols, bytes):
        raise ValueError(
            f"{argument} must be a column name, a 0-based column index, or a list of them; "
            f"got {cols!r}."
        )
    out: list[str | int] = []
    for c in cols:
        if isinstance(c, bool) or not isinstance(c, (str, int, np.integer)):
            raise ValueError(f"{argument} entries must be names (str) or indices (int); got {c!r}.")
        out.append(c if isinstance(c, str) else int(c))
    return out


def _column_indices(
    cols: list[str | int], header: list[str], argument: str, path: Path
) -> list[int]:
    available = ", ".join(repr(h) for h in header)
    indices = []
    for c in cols:
        if isinstance(c, str):
            hits = [i for i, h in enumerate(header) if h == c]
            if not hits:
                raise ValueError(
                    f"{path}: {argument} names column {c!r}, which is not in the header. "
                    f"Available columns: {available}."
                )
            if len(hits) > 1:
                raise ValueError(
                    f"{path}: column name {c!r} appears {len(hits)} times in the header; "
                    "select it by 0-based index instead."
                )
            indices.append(hits[0])
        else:
            if not -len(header) <= c < len(header):
                raise ValueError(
                    f"{path}: {argument} asks for column index {c}, but the file has "
                    f"{len(header)} columns (0 to {len(header) - 1}): {available}."
                )
            indices.append(c % len(header))
    return indices


def _read_csv(
    path: Path, x_cols: Any, y_cols: Any, dtype: np.dtype, delimiter: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [(i, row) for i, row in enumerate(csv.reader(f, delimiter=delimiter), 1)]
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not a UTF-8 text table ({e.reason} at byte {e.start}). load_table reads "
            "CSV files with a header row, or .npz archives."
        ) from None
    rows = [(i, [c.strip() for c in row]) for i, row in lines if any(c.strip() for c in row)]
    rows = [(i, row) for i, row in rows if not row[0].startswith("#")]
    if not rows:
        raise ValueError(f"{path}: the file is empty; expected a header row and data rows.")
    _, header = rows[0]
    data = rows[1:]
    if not data:
        raise ValueError(f"{path}: the file has a header ({', '.join(header)}) but no data rows.")
    if y_cols is None:
        y_idx = [len(header) - 1]
    else:
        y_idx = _column_indices(_as_col_list(y_cols, "y_cols"), header, "y_cols", path)
    if x_cols is None:
        x_idx = [i for i in range(len(header)) if i not in y_idx]
        if not x_idx:
            raise ValueError(f"{path}: no columns are left for x once y_cols are taken.")
    else:
        x_idx = _column_indices(_as_col_list(x_cols, "x_cols"), header, "x_cols", path)
    if not x_idx and not y_idx:
        raise ValueError(f"{path}: x_cols and y_cols are both empty; select at least one column.")
    wanted = sorted(set(x_idx) | set(y_idx))
    values = np.empty((len(data), len(header)), dtype=np.float64)
    for r, (line, row) in enumerate(data):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: line {line} has {len(row)} cells but the header has {len(header)} "
                f"columns."
            )
        for j in wanted:
            cell = row[j]
            try:
                v = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path}: line {line}, column {header[j]!r} (index {j}): {cell!r} is not a "
                    "number."
                ) from None
            if not math.isfinite(v):
                raise ValueError(
                    f"{path}: line {line}, column {header[j]!r} (index {j}) is {cell!r}; NaN and "
                    "inf are not allowed. Remove or impute those rows."
                )
            values[r, j] = v
    x = values[:, x_idx].astype(dtype)
    y = values[:, y_idx].astype(dtype)
    return x, y, tuple(header[i] for i in x_idx), tuple(header[i] for i in y_idx)


def _npz_part(
    archive: Any, cols: Any, default: str, argument: str, path: Path
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    names = _as_col_list(default if cols is None else cols, argument)
    if not names:
        return None, ()
    available = ", ".join(repr(k) for k in archive.files) or "none"
    parts, labels = [], []
    for name in names:
        if not isinstance(name, str) or name not in archive.files:
            raise ValueError(
                f"{path}: {argument} names array {name!r}, which is not in the archive. "
                f"Available arrays: {available}."
            )
        a = np.asarray(archive[name])
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(
                f"{path}: array {name!r} must have shape (N,) or (N, k); got {a.shape}."
            )
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{path}: array {name!r} must hold real numbers; got {a.dtype}.")
        parts.append(a)
        labels += [name] if a.shape[1] == 1 else [f"{name}[{k}]" for k in range(a.shape[1])]
    rows = {p.shape[0] for p in parts}
    if len(rows) != 1:
        raise ValueError(f"{path}: arrays {names} have different numbers of rows {sorted(rows)}.")
    return np.concatenate(parts, axis=1), tuple(labels)


def _read_npz(
    path: Path, x_cols: Any, y_cols: Any, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e}).") from None
    if not hasattr(archive, "files"):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive of named arrays.")
    with archive:
        try:
            x, x_names = _npz_part(archive, x_cols, "x", "x_cols", path)
            y, y_names = _npz_part(archive, y_cols, "y", "y_cols", path)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"{path}: the .npz archive is damaged ({e}).") from None
    if x is None and y is None:
        raise ValueError(f"{path}: x_cols and y_cols are both empty; select at least one array.")
    x = np.empty((y.shape[0], 0)) if x is None else x  # type: ignore[union-attr]
    y = np.empty((x.shape[0], 0)) if y is None else y
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{path}: x has {x.shape[0]} rows but y has {y.shape[0]}; they must match."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{path}: the arrays are empty (0 rows).")
    for part, names in ((x, x_names), (y, y_names)):
        bad = np.argwhere(~np.isfinite(part))
        if bad.size:
            r, c = bad[0]
            raise ValueError(
                f"{path}: row {r}, column {names[c]!r} is {part[r, c]}; NaN and inf are not "
                "allowed. Remove or impute those rows."
            )
    return x.astype(dtype), y.astype(dtype), x_names, y_names


def load_table(
    path: str | os.PathLike,
    x_cols: Any = None,
    y_cols: Any = None,
    *,
    dtype: Any = None,
    delimiter: str | None = None,
) -> Dataset:
    """Read a data set from a CSV file with a header row, or from an `.npz` archive.

    **CSV** (any suffix but `.npz`): the first non-blank line that does not start with `#` is
    the header; cells are separated by `delimiter` (default `","`, or a tab for `.tsv`).
    Columns are chosen by header name or by 0-based index (negative counts from the end).
    `y_cols=None` takes the last column; `x_cols=None` takes every column not in `y_cols`.

    **NPZ**: `x_cols` / `y_cols` name arrays in the archive (default `"x"` and `"y"`); each is
    `(N,)` (one column) or `(N, k)`, and the named arrays are joined column-wise.

    **Arguments:**

    - `path`: the file.
    - `x_cols`: input column(s): a name, an index, or a list of them. An empty list gives
      `x` of shape `(N, 0)` (to read only outputs, e.g. a file of predictions).
    - `y_cols`: output column(s), likewise; an empty list gives `y` of shape `(N, 0)` (to read
      only inputs, e.g. for `predict`).
    - `dtype`: float dtype of the result; default the JAX default float (float32, or float64
      under `jax_enable_x64`).
    - `delimiter`: CSV cell separator (see above).

    **Returns:** a `Dataset` with `x (N, n_x)`, `y (N, n_y)` as JAX arrays, `name` the file's
    stem, and `x_names`, `y_names` the chosen columns.

    **Raises:** `FileNotFoundError` for a missing file; `ValueError` for an unknown column
    (listing the available ones), a cell that is not a number (naming its line and column),
    NaN/inf values, ragged rows, or a file without data rows.

    ```python
    ds = load_table("plant.csv", x_cols=["u1", "u2"], y_cols="y")
    model, history = eqx_ffn.fit(eqx_ffn.FFN(ds.n_x, ds.n_y, key=key), ds.x, ds.y)
    ```
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_table: no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"load_table: {path} is a directory, not a data file.")
    dt = _resolve_dtype(dtype)
    if path.suffix.lower() == ".npz":
        x, y, x_names, y_names = _read_npz(path, x_cols, y_cols, dt)
    else:
        x, y, x_names, y_names = _read_csv(path, x_cols, y_cols, dt, delimiter)
    return Dataset(
        x=jnp.asarray(x),
        y=jnp.asarray(y),
        name=path.stem,
        description=(
            f"{x.shape[0]} rows read from {path}: x = {', '.join(x_names)}; "
            f"y = {', '.join(y_names)}."
        ),
        x_names=x_names,
        y_names=y_names,
    )


def write_csv(
    path: str | os.PathLike,
    columns: Any,
    header: Sequence[str],
    *,
    delimiter: str = ",",
) -> Path:
    """Write a 2-D array as a CSV file with a header row (e.g. predictions for the CLI).

    Numbers are written in the shortest form that reads back to the same value in the array's
    dtype, so `load_table` round-trips them exactly. Parent folders are created.

    **Arguments:**

    - `path`: the file to write (overwritten).
    - `columns`: array of shape `(N, k)` (or `(N,)`, one column).
    - `header`: `k` column names.
    - `delimiter`: cell separator (default `","`).

    **Returns:** the path written.
    """
    arr = np.asarray(columns)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"write_csv expects columns of shape (N, k); got {arr.shape}.")
    header = [str(h) for h in header]
    if len(header) != arr.shape[1]:
        raise ValueError(
            f"write_csv: header has {len(header)} names but columns has {arr.shape[1]} columns."
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"write_csv expects real numbers; got dtype {arr.dtype}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        # str() of a NumPy scalar is its shortest round-tripping repr in its own dtype.
        writer.writerows([str(v) for v in row] for row in arr)
    return path
