"""The feedforward network: `Dense` layers and the `FFN` module."""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from beartype import beartype
from jaxtyping import Array, Float, PRNGKeyArray, jaxtyped

from .._validation import as_jax_array, check_bool, check_int, check_precision, default_float
from ..training._compile_options import FAST_COMPILE_OPTIONS, compile_with_options, fast_jit
from ._activations import resolve_activation
from ._host_draw import UNIFORM_SCALING, draw_uniform, host_draw_ok, uniform_factor
from ._init import check_init, init_dense


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    if shape is None:
        return type(x).__name__
    return f"{type(x).__name__} of shape {tuple(shape)} and dtype {getattr(x, 'dtype', '?')}"


def _one_sample(fn: Callable) -> Callable:
    """Decorate `__call__(self, x)`: a clear error for a wrong sample, then jaxtyping + beartype.

    The checks run in Python, so under `jax.jit` they cost nothing after tracing.
    """
    typed = jaxtyped(typechecker=beartype)(fn)

    @functools.wraps(fn)
    def wrapper(self, x):
        name = type(self).__name__
        if not isinstance(x, (jax.Array, np.ndarray)):
            raise TypeError(
                f"{name} expects `x` to be a JAX or NumPy array of shape ({self.in_size},); "
                f"got {_describe(x)}. Convert it with jnp.asarray(x)."
            )
        if x.shape != (self.in_size,):
            hint = ""
            if x.ndim >= 2 and x.shape[-1] == self.in_size:
                hint = (
                    f" It looks like a batch: {name} takes ONE sample; batch with "
                    f"jax.vmap(model)(x) (or eqx.filter_vmap)."
                )
            hint = hint or " Batch with jax.vmap(model)(x)."
            raise ValueError(
                f"{name} expects one sample `x` of shape ({self.in_size},) (in_size="
                f"{self.in_size}); got shape {tuple(x.shape)}.{hint}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"{name} expects a floating-point `x` of shape ({self.in_size},); got dtype "
                f"{x.dtype}. Cast it, e.g. x.astype(jnp.float32)."
            )
        if isinstance(x, np.ndarray):
            x = jnp.asarray(x)
        return typed(self, x)

    return wrapper


class Dense(eqx.Module):
    """An affine layer `y = weight @ x + bias` on one sample.

    **Arguments:**

    - `weight`: floating array of shape `(out_size, in_size)`.
    - `bias`: array of shape `(out_size,)`, or `None` for no bias.
    - `precision`: the matmul precision of this layer, `None` (default: JAX's
      `default_matmul_precision`, which is TF32 on recent NVIDIA GPUs), `"default"`, `"high"` or
      `"highest"` (full float32).
    """

    weight: Float[Array, "out_size in_size"]
    bias: Float[Array, " out_size"] | None
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    precision: str | None = eqx.field(static=True, default=None)

    def __init__(self, weight: Any, bias: Any | None, *, precision: str | None = None):
        self.weight = as_jax_array(weight)
        self.bias = None if bias is None else as_jax_array(bias)
        self.precision = check_precision(precision)
        if self.weight.ndim != 2 or 0 in self.weight.shape:
            raise ValueError(
                f"Dense weight must have shape (out_size, in_size) with both sizes >= 1; got "
                f"{self.weight.shape}."
            )
        if not jnp.issubdtype(self.weight.dtype, jnp.floating):
            raise TypeError(
                f"Dense weight must be a floating-point array; got dtype {self.weight.dtype}."
            )
        self.out_size, self.in_size = (int(s) for s in self.weight.shape)
        if self.bias is not None and self.bias.shape != (self.out_size,):
            raise ValueError(
                f"Dense bias must have shape ({self.out_size},) to match weight "
                f"{self.weight.shape}; got {self.bias.shape}."
            )
        if self.bias is not None and not jnp.issubdtype(self.bias.dtype, jnp.floating):
            raise TypeError(
                f"Dense bias must be a floating-point array; got dtype {self.bias.dtype}."
            )

    @_one_sample
    def __call__(self, x: Float[Array, "{self.in_size}"]) -> Float[Array, "{self.out_size}"]:
        if self.weight.ndim != 2:  # at trace time: free under jit
            raise ValueError(_stacked_message(self.weight.shape))
        y = jnp.matmul(self.weight, x, precision=self.precision)
        if self.bias is not None:
            y = y + self.bias
        return y


def _stacked_message(shape: tuple[int, ...]) -> str:
    return (
        f"this model holds weights of shape {shape}: a stacked ensemble of {shape[0]} members "
        "(as fit_ensemble returns), not one model. Predict with "
        "eqx_ffn.ensemble_predict(models, x), or take one member with "
        "eqx_ffn.ensemble_member(models, i)."
    )


MAX_SIZE = 2**31 - 1
"""The largest layer width (XLA indexes arrays with 32-bit integers per dimension)."""


def _set_fields(self, layers, activation, final_activation) -> None:
    # object.__setattr__ so that this also serves `from_layers`, which bypasses __init__.
    setattr_ = object.__setattr__
    activation, activation_name = resolve_activation(activation)
    final, final_name = resolve_activation(final_activation, argument="final_activation")
    setattr_(self, "layers", tuple(layers))
    setattr_(self, "activation", activation)
    setattr_(self, "final_activation", final)
    setattr_(self, "in_size", layers[0].in_size)
    setattr_(self, "out_size", layers[-1].out_size)
    setattr_(self, "hidden_sizes", tuple(layer.out_size for layer in layers[:-1]))
    setattr_(self, "activation_name", activation_name)
    setattr_(self, "final_activation_name", final_name)


def check_hidden_sizes(hidden_sizes: Sequence[int] | int) -> tuple[int, ...]:
    """`(16,)`, `(16, 8)`, `()`, or an int for one layer; each width an integer >= 1."""
    if isinstance(hidden_sizes, (int, np.integer)) and not isinstance(hidden_sizes, bool):
        hidden_sizes = (hidden_sizes,)
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence):
        raise TypeError(
            f"hidden_sizes must be a sequence of ints such as (16,) or (16, 8); "
            f"got {hidden_sizes!r}."
        )
    return tuple(
        check_int(h, f"hidden_sizes[{i}]", 1, MAX_SIZE) for i, h in enumerate(hidden_sizes)
    )


def check_param_dtype(dtype: Any) -> jnp.dtype:
    """A floating parameter dtype that JAX can hold (float64 only with `jax_enable_x64`)."""
    if dtype is None:
        return default_float()
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype must be a floating dtype such as jnp.float32 or jnp.bfloat16; got {dtype!r}."
        ) from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating-point dtype; got {dt}.")
    if dt.itemsize == 8 and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise ValueError(
            f"dtype={dt} needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "first (otherwise JAX silently builds float32)."
        )
    return dt


def _memory_limit() -> int:
    """Bytes the default device can hold (its memory limit, or the host's physical memory)."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    except Exception:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 40


def check_memory(sizes: Sequence[int], use_bias: bool, dtype: Any) -> None:
    """Refuse, before allocating, a network whose parameters alone exceed the device memory."""
    n = sum(a * b + (b if use_bias else 0) for a, b in itertools.pairwise(sizes))
    need = n * jnp.dtype(dtype).itemsize
    limit = _memory_limit()
    if need > limit:
        raise ValueError(
            f"A network of sizes {tuple(sizes)} has {n:,} parameters: {need / 2**30:,.1f} GiB "
            f"in {jnp.dtype(dtype)}, more than this device's {limit / 2**30:,.1f} GiB. Use "
            "smaller hidden sizes."
        )


_BATCHED_DRAW_MAX = 1 << 20
"""Networks whose layers padded to the largest take at most this many draws draw all their
random arrays in ONE batched draw (see `_batched_draw`)."""


def _batched_draw(sizes: tuple[int, ...], init: str, use_bias: bool, dtype: Any, keys) -> tuple:
    """The same numbers as `init_dense(init, ...)` layer by layer, in one batched draw, for
    `init="normal"` and the uniform variance-scaling schemes.

    `jr.normal(k, shape)` (and `jr.uniform`) hash the flat index of each entry (JAX's
    partitionable Threefry): a draw of `m` entries begins with the draw of any smaller size, so
    the first `out * in` entries of `jr.normal(k, (m,))` reshaped are `jr.normal(k, (out, in))`.
    Vmapped over every layer's keys, the program holds one hash (and one inverse error function)
    instead of one per array: it compiles about three times faster (a fresh process's first
    model). The uniform schemes scale as `variance_scaling` does: `jr.uniform(k, shape, dtype, -1)
    * sqrt(3 * variance)`, `variance` an array of `dtype`."""
    pairs = jax.vmap(jr.split)(keys)  # (layers, 2): each layer's weight and bias keys
    m = max(max(a * b for a, b in itertools.pairwise(sizes)), max(sizes[1:]))
    weights, biases = [], []
    if init == "normal":
        flat = jax.vmap(lambda k: jr.normal(k, (m,), dtype))(pairs.reshape(-1, *keys.shape[1:]))
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            weights.append(flat[2 * i, : n_out * n_in].reshape(n_out, n_in))
            biases.append(flat[2 * i + 1, :n_out] if use_bias else None)
        return weights, biases
    flat = jax.vmap(lambda k: jr.uniform(k, (m,), dtype, -1))(pairs[:, 0])
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        factor = uniform_factor(init, n_in, n_out, dtype)
        weights.append(flat[i, : n_out * n_in].reshape(n_out, n_in) * factor)
        biases.append(jnp.zeros((n_out,), dtype) if use_bias else None)
    return weights, biases


def _batched_draw_exact(key) -> bool:
    # the prefix property above holds for the partitionable Threefry (JAX's default)
    return str(jr.key_impl(key)) == "threefry2x32" and bool(
        getattr(jax.config, "jax_threefry_partitionable", False)
    )


def _draw_fn(sizes: tuple[int, ...], init: str, use_bias: bool, dtype: str) -> Callable:
    def draw(key):
        keys = jr.split(key, len(sizes) - 1)
        padded = (len(sizes) - 1) * 2 * max(a * b for a, b in itertools.pairwise(sizes))
        if (
            (init == "normal" or init in UNIFORM_SCALING)
            and len(sizes) > 2
            and padded <= _BATCHED_DRAW_MAX
            and _batched_draw_exact(key)
        ):
            return _batched_draw(sizes, init, use_bias, jnp.dtype(dtype), keys)
        weights, biases = [], []
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
            w, b = init_dense(init, n_in, n_out, use_bias, jnp.dtype(dtype), key=k)
            weights.append(w)
            biases.append(b)
        return weights, biases

    return draw


@functools.lru_cache(maxsize=64)
def _init_compiled(
    sizes: tuple[int, ...], init: str, use_bias: bool, dtype: str, key_aval: Any
) -> Callable:
    lowered = jax.jit(_draw_fn(sizes, init, use_bias, dtype)).lower(key_aval)
    return compile_with_options(lowered, FAST_COMPILE_OPTIONS)  # runs once


@functools.lru_cache(maxsize=64)
def _jitted_draw(sizes: tuple[int, ...], init: str, use_bias: bool, dtype: str) -> Callable:
    """The draw as one jitted function, for a traced key: under `jax.vmap` alone (as when
    `fit_ensemble` builds models from a batch of keys) one batched program compiled for compile
    speed, where the draw would otherwise run, and compile, op by op; under an outer `jit`
    traced inline (`fast_jit`)."""
    return fast_jit(_draw_fn(sizes, init, use_bias, dtype))


HOST_DRAWS = 3
"""Models of one architecture drawn on the host before its draw program is compiled."""
_host_draws: dict[tuple, int] = {}


def _host_key(sizes: tuple[int, ...], init: str, dtype: str, key: jax.Array) -> Any:
    """The key's data `(2,)` when the draw runs on the host (`_host_draw`), else None: a uniform
    scheme, small enough, from one threefry key that no device holds on purpose, for the first
    `HOST_DRAWS` models of an architecture (later ones compile the draw program, faster per
    model)."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not (
        init in UNIFORM_SCALING
        and host_draw_ok(sizes, dtype)
        and not key.committed
        and key.shape == (() if typed else (2,))
        and _batched_draw_exact(key)
    ):
        return None
    seen = _host_draws.get((sizes, init, dtype), 0)
    _host_draws[sizes, init, dtype] = seen + 1
    if seen >= HOST_DRAWS:
        return None
    return np.asarray(jax.random.key_data(key) if typed else key)


def _host_uniform(sizes, init: str, use_bias: bool, dtype: str, key_data: Any) -> tuple:
    """`_batched_draw`'s numbers for a uniform scheme, drawn with NumPy (no compile)."""
    weights = draw_uniform(key_data, sizes, init, dtype)
    biases = [as_jax_array(np.zeros((n,), dtype)) if use_bias else None for n in sizes[1:]]
    return [as_jax_array(w) for w in weights], biases


def _init_program(sizes: tuple[int, ...], init: str, use_bias: bool, dtype: str) -> Callable:
    """One compiled program drawing every layer of an architecture (not one per eager op);
    traced inline when the key is traced (`fit_ensemble` vmaps the model's constructor)."""

    def call(key):
        if isinstance(key, jax.core.Tracer):
            return _jitted_draw(sizes, init, use_bias, dtype)(key)
        key_data = _host_key(sizes, init, dtype, key)
        if key_data is not None:
            return _host_uniform(sizes, init, use_bias, dtype, key_data)
        aval = jax.ShapeDtypeStruct(key.shape, key.dtype)
        return _init_compiled(sizes, init, use_bias, dtype, aval)(key)

    return call


class FFN(eqx.Module):
    """A feedforward network `y = L_k(σ(... σ(L_1 x)))` on ONE sample.

    With the defaults it is the lecture's network `y = W2 tanh(W1 x + b1) + b2`, 16 hidden units.

    **Arguments:**

    - `in_size`: number of inputs `n_x >= 1`.
    - `out_size`: number of outputs `n_y >= 1` (for classification: the number of classes).
    - `hidden_sizes`: widths of the hidden layers, e.g. `(16,)` (default), `(16, 8)`, or `()` for an
      affine map. An int means one hidden layer.
    - `activation`: hidden activation, a name (`"tanh"` (default), `"relu"`, `"gelu"`, `"sigmoid"`,
      `"softplus"`, `"silu"`, `"elu"`, `"identity"`) or any callable.
    - `final_activation`: applied to the output; `None` (default) is the identity.
    - `init`: `"normal"` (default: every weight AND bias standard normal, as the lecture does),
      `"glorot_uniform"`, `"glorot_normal"`, `"kaiming_uniform"`, `"kaiming_normal"`,
      `"lecun_normal"` (these draw weights from `jax.nn.initializers` and set biases to zero),
      or `"equinox"` (exactly `eqx.nn.Linear`'s uniform weights and biases).
    - `use_bias`: whether layers have biases.
    - `dtype`: parameter dtype; default the JAX default float (float32, or float64 under
      `jax_enable_x64`); float64 needs `jax_enable_x64`; bfloat16/float16 train with float32
      master copies in `fit`.
    - `precision`: matmul precision of every layer, `None` (JAX's default; TF32 on recent NVIDIA
      GPUs), `"default"`, `"high"` or `"highest"` (full float32).
    - `key`: a `jax.random` key (keyword-only).

    **Call:** `model(x)` with `x` of shape `(in_size,)` returns shape `(out_size,)`. For a batch
    `x` of shape `(N, in_size)` use `jax.vmap(model)(x)`, which returns `(N, out_size)`.

    ```python
    import jax, jax.random as jr
    import eqx_ffn
    model = eqx_ffn.FFN(1, 1, (16,), key=jr.key(0))
    y = jax.vmap(model)(jnp.ones((200, 1)))   # (200, 1)
    ```
    """

    layers: tuple[Dense, ...]
    activation: Callable[[Array], Array]
    final_activation: Callable[[Array], Array]
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    hidden_sizes: tuple[int, ...] = eqx.field(static=True)
    activation_name: str | None = eqx.field(static=True)
    final_activation_name: str | None = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        hidden_sizes: Sequence[int] | int = (16,),
        *,
        activation: str | Callable = "tanh",
        final_activation: str | Callable | None = None,
        init: str = "normal",
        use_bias: bool = True,
        dtype: Any = None,
        precision: str | None = None,
        key: PRNGKeyArray,
    ):
        in_size = check_int(in_size, "in_size", 1, MAX_SIZE)
        out_size = check_int(out_size, "out_size", 1, MAX_SIZE)
        hidden = check_hidden_sizes(hidden_sizes)
        check_init(init)
        check_bool(use_bias, "use_bias")
        if not isinstance(key, jax.Array) or not (
            jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,)
        ):
            raise TypeError(
                f"key must be a jax.random key such as jax.random.key(0); got {_describe(key)}."
            )
        dtype = check_param_dtype(dtype)
        sizes = (in_size, *hidden, out_size)
        check_memory(sizes, bool(use_bias), dtype)
        weights, biases = _init_program(sizes, init, bool(use_bias), dtype.name)(key)
        precision = check_precision(precision)
        layers = [Dense(w, b, precision=precision) for w, b in zip(weights, biases, strict=True)]
        _set_fields(self, tuple(layers), activation, final_activation)

    @_one_sample
    def __call__(self, x: Float[Array, "{self.in_size}"]) -> Float[Array, "{self.out_size}"]:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.final_activation(self.layers[-1](x))

    @property
    def n_params(self) -> int:
        """Number of trainable scalars (weights and biases)."""
        return sum(
            int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(eqx.filter(self, eqx.is_array))
        )

    @property
    def precision(self) -> str | None:
        """The first layer's matmul precision (`None`: JAX's default)."""
        return self.layers[0].precision

    @property
    def dtype(self) -> jnp.dtype:
        """The dtype of the first layer's weight."""
        return self.layers[0].weight.dtype

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[Dense],
        *,
        activation: str | Callable = "tanh",
        final_activation: str | Callable | None = None,
    ) -> FFN:
        """Build an FFN from `Dense` layers whose sizes chain."""
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must hold at least one Dense layer.")
        for i in range(len(layers) - 1):
            if layers[i].out_size != layers[i + 1].in_size:
                raise ValueError(
                    f"Layer sizes do not chain: layer {i + 1} gives {layers[i].out_size} outputs "
                    f"but layer {i + 2} takes {layers[i + 1].in_size} inputs."
                )
        # Bypass __init__ (which draws new parameters); fields are set as __init__ sets them.
        self = object.__new__(cls)
        _set_fields(self, layers, activation, final_activation)
        return self

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        activation: str | Callable = "tanh",
        final_activation: str | Callable | None = None,
        precision: str | None = None,
    ) -> FFN:
        """Build the FFN computing the lecture's `nn(params, x)` from its parameter dictionary.

        `params` holds `"W1", "b1", "W2", "b2", ...` (any number of layers; `Wi` of shape
        `(out, in)`, `bi` of shape `(out,)`; biases may be left out). The arrays are used as given,
        so the result is exactly the lecture's function. `precision="highest"` fixes full float32
        matmuls (the lecture's figures on a GPU, whose default float32 matmul is TF32):

        ```python
        model = FFN.from_params({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, precision="highest")
        ```
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict like {{'W1': ..., 'b1': ...}}; got {params!r}.")
        pattern = re.compile(r"^([Wb])([1-9][0-9]*)$")
        for name in params:
            if not isinstance(name, str) or not pattern.match(name):
                raise ValueError(
                    f"Unexpected key {name!r} in params: keys must be 'W1', 'b1', 'W2', 'b2', ..."
                )
        n = sum(1 for name in params if name.startswith("W"))
        if n == 0:
            raise ValueError("params holds no weight 'W1'.")
        expected = {f"W{i}" for i in range(1, n + 1)}
        given_w = {name for name in params if name.startswith("W")}
        if given_w != expected:
            raise ValueError(
                f"params must hold consecutive weights W1..W{n}; got {sorted(given_w)}."
            )
        extra_b = {name for name in params if name.startswith("b")} - {
            f"b{i}" for i in range(1, n + 1)
        }
        if extra_b:
            raise ValueError(f"params has biases without weights: {sorted(extra_b)}.")
        layers = []
        for i in range(1, n + 1):
            w = as_jax_array(params[f"W{i}"])
            b = params.get(f"b{i}")
            if w.ndim != 2:
                raise ValueError(f"params['W{i}'] must have shape (out, in); got {w.shape}.")
            if b is not None and np.shape(b) != (w.shape[0],):
                raise ValueError(
                    f"params['b{i}'] must have shape ({w.shape[0]},) to match W{i} {w.shape}; "
                    f"got {np.shape(b)}."
                )
            layers.append(Dense(w, b, precision=precision))
        return cls.from_layers(layers, activation=activation, final_activation=final_activation)

    def to_params(self) -> dict[str, Array]:
        """The lecture's parameter dictionary `{"W1": ..., "b1": ..., ...}` (no copy)."""
        params: dict[str, Array] = {}
        for i, layer in enumerate(self.layers, start=1):
            params[f"W{i}"] = layer.weight
            if layer.bias is not None:
                params[f"b{i}"] = layer.bias
        return params
