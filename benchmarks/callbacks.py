"""What a callback costs (issue 24): `fit(..., callbacks=[f], callback_every=100)` against the same
fit without, interleaved in one process (`paired`: the ratio of the minimums).

A callback runs on the host between program calls. Where 100 steps take long (the mid size,
8-64-64-1 tanh, N=20,000, mini-batches of 256) it costs an extra call every 100 steps; where
they take much less than a call costs (the lecture's problem: 1-16-1 tanh, N=200, full batch,
2000 Adam steps, ~10 us a step on a CPU) one call runs many intervals and keeps the state at
the end of each, and the callbacks run on those when it returns. The callback reads the step
and the last loss (what a logger reads); the model it could ask for is built only when it
does. Also: a callback that stops the fit (`info.stop()`) at step 500 of 2000.
"""

from __future__ import annotations

import jax.random as jr
import numpy as np

import eqx_ffn

from ._common import Mode, paired
from ._report import Check, Table

TITLE = "Callbacks: a callback every 100 steps against none (issue 24)"
EVERY, TARGET = 100, 1.1


def _cases() -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    x1 = np.linspace(-1, 1, 200, dtype=np.float32)[:, None]
    x8 = rng.normal(size=(20_000, 8)).astype(np.float32)
    return {
        "lecture: 1-16-1 tanh, N=200, full batch": (
            eqx_ffn.FFN(1, 1, (16,), key=jr.key(0)), x1, np.sin(3 * x1), {}
        ),
        "mid: 8-64-64-1 tanh, N=20,000, batches of 256": (
            eqx_ffn.FFN(8, 1, (64, 64), key=jr.key(0)), x8, np.sin(x8.sum(1, keepdims=True)),
            {"batch_size": 256},
        ),
    }  # fmt: skip


def run(mode: Mode) -> list[Table]:
    steps = 1000 if mode.quick else 2000  # the ratio does not depend on it: a call per 100 steps
    t = Table(
        f"fit, {steps} Adam steps: a callback every {EVERY} steps against none",
        ["case", "without", "with the callback", "with / without", "callbacks run"],
        formats="tssxg",
    )
    for name, (model, x, y, extra) in _cases().items():
        seen: list[tuple[int, float]] = []

        def logger(info, seen=seen):
            seen.append((info.step, float(info.loss[-1])))

        kw = dict(steps=steps, progress=False, key=jr.key(1), **extra)

        def plain(kw=kw, model=model, x=x, y=y):
            return eqx_ffn.fit(model, x, y, **kw)

        def with_cb(kw=kw, model=model, x=x, y=y):
            return eqx_ffn.fit(model, x, y, callbacks=[logger], callback_every=EVERY, **kw)

        p = paired(with_cb, plain, mode.repeats + 2)
        seen.clear()
        with_cb()
        t.add(name, p.b_min, p.a_min, p.min_ratio, len(seen))
        how = f"ratio of the minimums over {p.pairs} interleaved pairs"
        t.checks.append(
            Check(f"{name}: callback every {EVERY} steps costs at most {TARGET}x",
                  p.min_ratio, f"<= {TARGET}", p.min_ratio <= TARGET, 24, how)
        )  # fmt: skip

    def stopper(info):
        if info.step >= 500:
            info.stop()

    model, x, y, _ = _cases()["lecture: 1-16-1 tanh, N=200, full batch"]
    steps = 2000
    _, h = eqx_ffn.fit(model, x, y, steps=steps, progress=False, callbacks=[stopper],
                       callback_every=EVERY)  # fmt: skip
    t.notes.append(
        f"A callback that calls `info.stop()` once step 500 is reached: the fit ran {h.steps} of "
        f"{steps} steps, `stop_reason={h.stop_reason!r}` (`callback_every` is rounded up to whole "
        "chunks of the compiled loop; the fit ends at the step of the callback that stopped it)."
    )
    stopped = h.stop_reason == "callback" and 500 <= h.steps < 1000
    t.checks.append(
        Check("a callback stops the fit at its first step past 500", float(h.steps),
              "in [500, 1000)", stopped, 24)
    )  # fmt: skip
    return [t]
