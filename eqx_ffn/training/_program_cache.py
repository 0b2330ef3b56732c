"""Compiling the training programs, once: the caches, their keys, the size buckets that share a
program, and the compiler options.

A training program is keyed by its `Config` and the shapes, dtypes and placement of its inputs
(`program_key`); the initial-state program by its `InitConfig` and its inputs alike. The padded
data sizes come from `bucket`, so that fits on 160, 161 or 200 rows share one program.
`compile_count` counts the training programs this process has compiled (tests and benchmarks
read it).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any

import jax

from ._cache_key import signature
from ._compile_options import (
    CPU_COMPILE_OPTIONS,
    FAST_COMPILE_OPTIONS,
    SMALL_CALL_OPTIONS,
    compile_with_options,
)
from ._config import Config
from ._program import precision_context, program
from ._state import InitConfig, init_states

POW2_BUCKETS_UP_TO = 2048
"""Up to this many rows, N is padded to the next power of two; above, to 4 sizes per octave."""


def bucket(n: int, multiple: int = 1) -> int:
    """The padded size for `n` rows, rounded up to a multiple of `multiple` (the number of devices
    of a mesh): the next power of two up to `POW2_BUCKETS_UP_TO` rows (where compiling costs far
    more than the padding: cross-validation folds of 160, 161 or 200 rows share one program),
    then 4 sizes per octave (at most 25% padding, 12% on average).

    The padding rows carry weight zero and never enter a mini-batch.
    """
    if n <= POW2_BUCKETS_UP_TO:
        size = 1 << max(n - 1, 0).bit_length()
    else:
        step = 1 << (n.bit_length() - 3)  # a quarter of the octave [2^k, 2^(k+1))
        size = -(-n // step) * step
    return -(-size // multiple) * multiple


def bucket_floor(size: int) -> int:
    """The smallest `n` with `bucket(n) == size` (a lower bound on N for a padded size)."""
    lo, hi = 1, size
    while lo < hi:
        mid = (lo + hi) // 2
        if bucket(mid) >= size:
            hi = mid
        else:
            lo = mid + 1
    return lo


class _Cache:
    """A small LRU of compiled programs, safe to share between threads."""

    def __init__(self, size: int):
        self.size = size
        self.entries: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
            return hit

    def put(self, key: Any, value: Any) -> list[Any]:
        """Store `value`; returns the keys evicted."""
        with self.lock:
            self.entries[key] = value
            evicted = []
            while len(self.entries) > self.size:
                old, _ = self.entries.popitem(last=False)
                evicted.append(old)
            return evicted


_jitted_program = jax.jit(program, static_argnums=0)
_jitted_init = jax.jit(init_states, static_argnums=0)
_programs = _Cache(32)
_inits = _Cache(32)
_chunk_seconds: dict[Config, float] = {}  # seconds a chunk of a program takes
compile_count = 0
"""How many training programs this process has compiled (for tests and benchmarks)."""
init_compile_count = 0
"""How many initial-state programs this process has compiled."""


def program_key(cfg: Any, args) -> Any:
    leaves, treedef = jax.tree.flatten(args)
    return (cfg, treedef, tuple(signature(leaf) for leaf in leaves))


def _compile(cfg: Config, args) -> Any:
    with precision_context(cfg.precision):
        lowered = _jitted_program.lower(cfg, *args)
    options = None
    if cfg.fast_compile:
        options = FAST_COMPILE_OPTIONS
    elif cfg.cpu_options:
        options = CPU_COMPILE_OPTIONS
    if cfg.small_call:
        # no fallback to XLA's defaults here: the caller compiles without the one kernel
        small: dict[str, Any] = {**(options or {}), **SMALL_CALL_OPTIONS}
        return lowered.compile(small)
    return compile_with_options(lowered, options)


def compiled_program(cfg: Config, *args) -> tuple[Any, float]:
    """The compiled training program for `cfg` and these arguments, and the seconds spent
    compiling it (0 when it was cached)."""
    global compile_count
    key = program_key(cfg, args)
    hit = _programs.get(key)
    if hit is not None:
        return hit, 0.0
    t0 = time.perf_counter()
    try:
        compiled = _compile(cfg, args)
    except Exception:  # a compiler that refuses the one kernel: XLA's usual kernels
        if not cfg.small_call:
            raise
        compiled = _compile(dataclasses.replace(cfg, small_call=False), args)
    seconds = time.perf_counter() - t0
    with _programs.lock:
        compile_count += 1
    for old in _programs.put(key, compiled):
        _chunk_seconds.pop(old[0], None)
    return compiled, seconds


def compiled_init(cfg: InitConfig, *args) -> tuple[Any, float]:
    """The compiled initial-state program (`init_states`), and the seconds spent compiling it.
    It runs once per fit: compiled for compile speed (`FAST_COMPILE_OPTIONS`)."""
    global init_compile_count
    key = program_key(cfg, args)
    hit = _inits.get(key)
    if hit is not None:
        return hit, 0.0
    t0 = time.perf_counter()
    compiled = compile_with_options(_jitted_init.lower(cfg, *args), FAST_COMPILE_OPTIONS)
    with _inits.lock:
        init_compile_count += 1
    _inits.put(key, compiled)
    return compiled, time.perf_counter() - t0


def record_chunk_seconds(cfg: Config, seconds: float) -> None:
    """Remember how long one chunk of this program takes (to size later calls)."""
    with _programs.lock:
        old = _chunk_seconds.get(cfg)
        _chunk_seconds[cfg] = seconds if old is None else 0.5 * (old + seconds)


def chunk_seconds(cfg: Config) -> float | None:
    with _programs.lock:
        return _chunk_seconds.get(cfg)


def clear_cache() -> None:
    """Forget every compiled training and initial-state program of this process."""
    with _programs.lock:
        _programs.entries.clear()
        _chunk_seconds.clear()
    with _inits.lock:
        _inits.entries.clear()
