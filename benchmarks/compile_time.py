"""What compiling costs in one process, and what reusing a compiled program saves.

The first `fit` call (traces, lowers and compiles its program) against later identical calls
(found in `fit`'s program cache: `compile_time == 0`, no compile counted). The training
programs are new to the process: a 1-17-1 network, a size no other case uses. Across processes (JAX's
persistent compilation cache, cold against warm) see the `process` case.
"""

from __future__ import annotations

import jax

import eqx_ffn

from ._common import Mode, compile_count, lecture_data, median_time, timed
from ._report import Table

TITLE = "Compile time: first call against reuse, in one process"
STEPS = 1500


def run(mode: Mode) -> list[Table]:
    x, y, _ = lecture_data()
    model = eqx_ffn.FFN(1, 1, (17,), key=jax.random.key(0))
    t = Table(
        "fit's own program cache",
        ["program", "first call", "of which compile", "compiles", "reuse call",
         "compiles on reuse", "first / reuse"],
        formats="tssgsgx",
    )  # fmt: skip
    for optimizer in ("adam", "lbfgs"):
        kw = {"optimizer": optimizer, "steps": STEPS, "progress": False}
        before = compile_count()
        first_s, (_, first) = timed(lambda kw=kw: eqx_ffn.fit(model, x, y, **kw))
        mid = compile_count()
        reuse = median_time(lambda kw=kw: eqx_ffn.fit(model, x, y, **kw), mode.repeats, warmup=0)
        t.add(f"fit {optimizer}, {STEPS} steps", first_s, first.compile_time, mid - before,
              reuse.median, compile_count() - mid, first_s / reuse.median)  # fmt: skip
    t.notes.append("Turn on JAX's persistent compilation cache with "
                   "`eqx_ffn.enable_compilation_cache()` (once at start-up).")  # fmt: skip
    return [t]
