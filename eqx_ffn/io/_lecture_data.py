"""The lecture's data sets (docs/REFERENCE.md), its initial parameters, and splitting data.

Every generator draws its data inside ONE compiled function: eager `jax.random` calls compile
one small program each, while a single `jax.jit` program compiles once per shape and is reused
by later calls, so a first call is faster than the lecture's eager code and later calls take
about a millisecond (measured in benchmarks/BENCHMARKS.md). On a CPU those programs compile with
`FAST_COMPILE_OPTIONS` (`fast_jit`: 0.08 against 0.24 s for `sine_1d`'s). The results are
bit-for-bit those of the lecture's eager code.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_int, default_float
from ..model._ffn import check_hidden_sizes
from ..training._compile_options import fast_jit

__all__ = [
    "Dataset",
    "lecture_params",
    "sine_1d",
    "sine_1d_large",
    "sine_1d_target",
    "sine_cosine_2d",
    "sine_cosine_2d_target",
    "train_test_split",
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


# -- section 1-3: the 1-D problem --------------------------------------------------------------


def sine_1d_target(x: Float[Array, "*batch 1"]) -> Float[Array, "*batch 1"]:
    """The lecture's target `f(x) = 2 sin(3x) - 3 cos(7x)`, elementwise; shape is kept."""
    return 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)


@functools.partial(fast_jit, static_argnums=1)
def _sine_1d(key: jax.Array, n: int) -> tuple[Array, Array]:
    k_inputs = jr.split(key, 5)[0]  # the lecture's keys: inputs, W1, b1, W2, b2
    x = -1 + 2 * jr.uniform(k_inputs, (n, 1))
    return x, sine_1d_target(x)


def sine_1d(n: int = 200, *, key: PRNGKeyArray | None = None) -> Dataset:
    """The lecture's 1-D data set (docs/REFERENCE.md section 1; `n=20000` is section 3's).

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
    n = check_int(n, "n")
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
    """docs/REFERENCE.md section 3's data set: `sine_1d(20000, key=key)`, for mini-batching."""
    return sine_1d(20000, key=key)


@functools.partial(fast_jit, static_argnums=(1,))
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
    defaults this is docs/REFERENCE.md section 1 (5 keys); `hidden_sizes=(16, 16)` is section 2
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
    sizes = (check_int(n_x, "n_x"), *hidden, check_int(n_y, "n_y"))
    return dict(_lecture_params(_check_key(key), sizes))


# -- section 4: the 2-D problem ----------------------------------------------------------------


def sine_cosine_2d_target(x: Float[Array, "*batch 2"]) -> Float[Array, "*batch 1"]:
    """The 2-D example's target `f(x) = 2 sin(x1) - 3 cos(x2)`: `(..., 2)` to `(..., 1)`."""
    return 2 * jnp.sin(x[..., 0:1]) - 3 * jnp.cos(x[..., 1:2])


@functools.partial(fast_jit, static_argnums=(2, 3))
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
    """The 2-D example (docs/REFERENCE.md section 4): `f(x) = 2 sin(x1) - 3 cos(x2)` plus noise.

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
    n_train = check_int(n_train, "n_train")
    n_test = check_int(n_test, "n_test", minimum=0)
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float, np.floating, np.integer))
        or not math.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(
            f"noise must be a finite number >= 0 (a standard deviation); got {noise!r}."
        )
    dtype = default_float()
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
