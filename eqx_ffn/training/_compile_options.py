"""XLA compiler options for the programs eqx_ffn compiles on CPUs, and the one way to compile
with them: `compile_with_options` falls back to XLA's defaults where a backend refuses an
option."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.core

CPU_COMPILE_OPTIONS = {"xla_backend_optimization_level": 1}
"""For every CPU training program: LLVM's -O1 compiles faster than the default -O2 and its
programs run as fast (see benchmarks/BENCHMARKS.md). Level 0 would change drawn random values in
their last bit."""

FAST_COMPILE_OPTIONS = {**CPU_COMPILE_OPTIONS, "xla_cpu_use_fusion_emitters": False}
"""For programs where compiling dominates (small training programs, `Config.fast_compile`; the
initial state and the initialisation draws, which run once): also XLA's older fusion emitters,
which compile small programs faster and run tiny kernels as fast (on larger kernels they run
slower, so larger programs keep the new ones)."""

SMALL_CALL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""For programs whose chunk is one kernel (`Config.small_call`): no YNNPACK fusions, which the
one-kernel emitter cannot emit (their dots are tiny there)."""


def compile_with_options(lowered: Any, options: dict[str, Any] | None) -> Any:
    """`lowered.compile(options)`, or XLA's defaults where the backend refuses an option."""
    if options:
        try:
            return lowered.compile(options)
        except Exception:  # an option this XLA does not know: its defaults
            pass
    return lowered.compile()


def top_level(args: Any) -> bool:
    """Whether no `jit` traces these arguments: each is concrete, or batched by `jax.vmap`
    (perhaps nested) over a concrete array. A tracer of JAX's batching carries `val` and
    `batch_dim`; any other (or a future JAX without them) says no."""
    for x in jax.tree.leaves(args):
        while isinstance(x, jax.core.Tracer) and hasattr(x, "batch_dim"):
            x = getattr(x, "val", None)
        if x is None or isinstance(x, jax.core.Tracer):
            return False
    return True


def fast_jit(fun: Callable, static_argnums: int | tuple[int, ...] = ()) -> Callable:
    """`jax.jit(fun, static_argnums=...)`, compiled on a CPU with `FAST_COMPILE_OPTIONS`: for
    programs that run once per shape, where compiling is most of their cost (the data
    generators, initial draws). Called under an outer `jit` (which refuses compiler options on
    a nested one, `top_level`), the plain `jax.jit`, traced inline."""
    plain = jax.jit(fun, static_argnums=static_argnums)
    fast: dict[str, Any] = {}  # backend -> its jitted function

    @functools.wraps(fun)
    def call(*args: Any) -> Any:
        if not top_level(args):
            return plain(*args)
        backend = jax.default_backend()
        if backend not in fast:
            options = FAST_COMPILE_OPTIONS if backend == "cpu" else None
            fast[backend] = jax.jit(fun, static_argnums=static_argnums, compiler_options=options)
        return fast[backend](*args)

    # the compiled programs held (what `jax.jit`'s own `_cache_size` tells)
    call._cache_size = lambda: plain._cache_size() + sum(f._cache_size() for f in fast.values())  # type: ignore[attr-defined]
    return call
