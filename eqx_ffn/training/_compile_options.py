"""XLA compiler options for the programs eqx_ffn compiles on CPUs, and the one way to compile
with them: `compile_with_options` falls back to XLA's defaults where a backend refuses an
option."""

from __future__ import annotations

from typing import Any

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
