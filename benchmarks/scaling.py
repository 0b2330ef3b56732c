"""`fit` steps per second as the data and the width grow.

Sweeps: N in (200, 2,000, 20,000, 200,000), full batch and mini-batch 256 (1-16-1 tanh); width
in (16, 64, 256, 1024), one hidden layer, N = 2,000 full batch (quick: fewer sizes, and no
mini-batch sweep). FLOPs per
step = `6 * batch * (weights in matmuls)` (forward + backward matmuls only: with one input and
one output the elementwise work is of the same order, so achieved FLOP/s of these tiny nets is
far below the machine's peak by construction). A size is flagged when its time per step grew
faster than its arithmetic (achieved FLOP/s fell by more than 20% from the previous size). `x
floor`: time per step / the lean bare scan's (`peers.bare_scan`, batches drawn with
`jax.random.randint`; fit's mini-batches use its default epoch sampling).
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import optax

import eqx_ffn

from . import peers
from ._common import Mode, median_time
from ._report import Table

TITLE = "Scaling of fit (Adam 1e-2): steps/s against N and width"
BATCH = 256
FLAG_DROP = 0.8


def _steps_for(work: int) -> int:
    """Enough steps to take ~0.05-0.5 s here, without running for long on big sizes."""
    return 2000 if work <= 32_000 else 500 if work <= 320_000 else 100 if work <= 3_200_000 else 50


def one(mode: Mode, n: int, width: int, batch: int | None) -> tuple[float, int, float, int]:
    """`(seconds per step, steps, floor seconds per step, FLOPs per step)`."""
    x = -1 + 2 * jr.uniform(jr.key(1), (n, 1))
    y = 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)
    model = eqx_ffn.FFN(1, 1, (width,), init="glorot_normal", key=jr.key(0))
    rows = n if batch is None else batch
    steps = _steps_for(rows * max(width, 16))
    kw = {"steps": steps, "batch_size": batch, "progress": False}
    fit = median_time(lambda: eqx_ffn.fit(model, x, y, **kw), mode.repeats, warmup=1)
    floor = peers.bare_scan(
        model, x, y, steps, optax.adam(1e-2), batch=batch, share=mode.quick and ("adam", 1e-2)
    )
    per_floor = median_time(floor, mode.repeats, warmup=1).median / steps
    hist = fit.result[1]
    weights = sum(layer.in_size * layer.out_size for layer in model.layers)
    return fit.median / hist.steps, hist.steps, per_floor, 6 * rows * weights


def _table(title: str, key: str, points: list[tuple[int, int, int | None]], mode, done) -> Table:
    t = Table(title, [key, "batch", "steps", "per step", "steps/s", "FLOPs/step", "FLOP/s",
                      "time / FLOPs growth", "flag", "x floor"], formats="ggtsgffttx")  # fmt: skip
    prev = None
    for n, width, batch in points:
        if (n, width, batch) not in done:
            done[n, width, batch] = one(mode, n, width, batch)
        per, steps, floor, flops = done[n, width, batch]
        growth, flag = "—", ""
        if prev is not None:
            growth = f"{per / prev[0]:.3g}x / {flops / prev[3]:.3g}x"
            flag = (
                "**slower than arithmetic**" if flops / per < FLAG_DROP * prev[3] / prev[0] else ""
            )
        t.add(n if key == "N" else width, batch or "full", steps, per, round(1 / per), flops,
              flops / per, growth, flag, per / floor)  # fmt: skip
        prev = (per, steps, floor, flops)
    return t


def run(mode: Mode) -> list[Table]:
    ns = (200, 2_000) if mode.quick else (200, 2_000, 20_000, 200_000)
    widths = (16, 256) if mode.quick else (16, 64, 256, 1024)
    done: dict = {}
    tables = [
        _table("N, full batch (width 16)", "N", [(n, 16, None) for n in ns], mode, done),
        _table(f"N, mini-batch {BATCH} (width 16, epoch sampling)", "N",
               [(n, 16, BATCH) for n in ns if n > BATCH and not mode.quick], mode, done),
        _table("Width (one hidden layer, N = 2,000, full batch)", "width",
               [(2_000, w, None) for w in widths], mode, done),
    ]  # fmt: skip
    if mode.quick:  # one size shows no growth (epoch sampling: the accelerator case's smoke)
        tables[1].notes.append("Full run only.")
    return tables
