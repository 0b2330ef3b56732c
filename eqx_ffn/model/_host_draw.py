"""The uniform initialisation draws computed on the host with NumPy, bit for bit JAX's.

A new architecture's draw program (`_ffn._init_program`) costs an XLA compile, 0.1-0.3 s on a
CPU, more than the draw itself: the first model of a fresh process, or every new width of a
search, waits for it. The uniform variance-scaling schemes need nothing but the Threefry-2x32
hash and bit manipulation, which NumPy's wrapping `uint32` arithmetic computes exactly as XLA
does. So those draws, up to `HOST_DRAW_MAX` entries, run here, with no compile (for the first
few models of an architecture: `_ffn.HOST_DRAWS`).

JAX's own steps, reproduced (partitionable Threefry, JAX's default, `_ffn._batched_draw_exact`):

- `jr.split(key, n)`: key `i` is `threefry2x32(key, (0, i))`, both output words;
- `jr.uniform(k, (m,), dtype, -1)`: the bits of entry `i` are the two output words of
  `threefry2x32(k, (0, i))` xor-ed (float32), or concatenated high-low (float64); the top mantissa
  bits, with the exponent of 1.0, make a float in [1, 2); minus 1, times 2, minus 1 (each exact
  but the last, a single rounding either way), at least -1.

`tests/model/test_host_draw.py` checks the numbers against the compiled draw.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

HOST_DRAW_MAX = 1 << 21
"""Networks whose weight matrices hold at most this many entries may draw on the host (about
60 ms at the limit on a 2-core CPU, against 0.1-0.3 s of compiling a draw program; 784-256-256-10
takes 6 ms)."""

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))

UNIFORM_SCALING = {"glorot_uniform": (1.0, "fan_avg"), "kaiming_uniform": (2.0, "fan_in")}
"""`jax.nn.initializers.variance_scaling(scale, mode, "uniform")` behind these names."""


def uniform_factor(init: str, n_in: int, n_out: int, dtype: Any) -> np.ndarray:
    """What a uniform scheme multiplies `jr.uniform(k, shape, dtype, -1)` by, as
    `variance_scaling` does: `sqrt(3 * variance)`, `variance` rounded to `dtype` (a 0-d array:
    the compiled draw and the host draw scale by the same number)."""
    scale, mode = UNIFORM_SCALING[init]
    denominator = (n_in + n_out) / 2 if mode == "fan_avg" else n_in
    variance = np.asarray(scale / denominator, dtype)
    return np.sqrt(np.asarray(3, dtype) * variance)


def threefry2x32(k1: int, k2: int, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 hash (20 rounds) of the counters `(x1, x2)` under the key `(k1, k2)`,
    as `jax._src.random.threefry2x32` computes it."""
    ks = (np.uint32(k1), np.uint32(k2), np.uint32(k1 ^ k2 ^ 0x1BD11BDA))
    x = [x1 + ks[0], x2 + ks[1]]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x[0] = x[0] + x[1]
            x[1] = (x[1] << np.uint32(r)) | (x[1] >> np.uint32(32 - r))
            x[1] = x[0] ^ x[1]
        x[0] = x[0] + ks[(i + 1) % 3]
        x[1] = x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x[0], x[1]


def _hash_range(key: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """`threefry2x32(key, (0, i))` for `i < n` (counters below 2**32)."""
    return threefry2x32(*key, np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))


def split(key: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """`jr.split(key, n)`'s key data."""
    a, b = _hash_range(key, n)
    return [(int(p), int(q)) for p, q in zip(a, b, strict=True)]


def uniform_pm1(key: tuple[int, int], n: int, dtype: np.dtype) -> np.ndarray:
    """`jr.uniform(key, (n,), dtype, -1)` (values in [-1, 1)) for float32 and float64."""
    a, b = _hash_range(key, n)
    with np.errstate(over="ignore"):
        if dtype == np.float32:
            bits = (a ^ b) >> np.uint32(32 - 23) | np.uint32(0x3F800000)
        else:
            bits = (a.astype(np.uint64) << np.uint64(32) | b) >> np.uint64(64 - 52)
            bits |= np.uint64(0x3FF0000000000000)
    floats = bits.view(dtype) - dtype.type(1)
    return np.maximum(dtype.type(-1), floats * dtype.type(2) + dtype.type(-1))


def host_draw_ok(sizes: tuple[int, ...], dtype: Any) -> bool:
    """Whether `draw_uniform` serves this network (float32 or float64, small enough)."""
    return np.dtype(dtype) in (np.float32, np.float64) and (
        sum(a * b for a, b in itertools.pairwise(sizes)) <= HOST_DRAW_MAX
    )


def draw_uniform(key_data: np.ndarray, sizes: tuple[int, ...], init: str, dtype: Any) -> list:
    """The weights `_ffn._batched_draw` draws for a uniform scheme (`UNIFORM_SCALING`), from the
    key's data `(2,)` uint32, as NumPy arrays."""
    dtype = np.dtype(dtype)
    root = (int(key_data[0]), int(key_data[1]))
    weights = []
    layers = itertools.pairwise(sizes)
    for layer, (n_in, n_out) in zip(split(root, len(sizes) - 1), layers, strict=True):
        w = uniform_pm1(split(layer, 2)[0], n_out * n_in, dtype).reshape(n_out, n_in)
        weights.append(w * uniform_factor(init, n_in, n_out, dtype))
    return weights
