"""XLA compiler options for the programs eqx_ffn compiles on CPUs.

Each caller falls back to XLA's defaults when a backend refuses an option.
"""

from __future__ import annotations

CPU_COMPILE_OPTIONS = {"xla_backend_optimization_level": 1}
"""For every CPU training program: LLVM's -O1 compiles about 10% faster than the default -O2,
and measured here its programs run as fast (lecture problem; 8-256-256-1 on 2000 rows, full
batch and batches of 256; 1-64-1 on 20,000 rows in batches of 32). Level 0 would change drawn
random values in their last bit."""

FAST_COMPILE_OPTIONS = {**CPU_COMPILE_OPTIONS, "xla_cpu_use_fusion_emitters": False}
"""For programs where compiling dominates (small training programs, `Config.fast_compile`;
the initial state and the initialisation draws, which run once): also XLA's older fusion
emitters, which compile the lecture's Adam program about a third faster and run tiny kernels
as fast (on larger kernels they run slower, so larger programs keep the new ones)."""
