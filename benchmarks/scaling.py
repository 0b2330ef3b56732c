"""Case 2: `fit` steps per second as the data and the width grow.

Sweeps: N in (200, 2,000, 20,000, 200,000), full batch and mini-batch 256 (1-16-1 tanh); width
in (16, 64, 256, 1024), one hidden layer, N = 2,000 full batch. FLOPs per step are estimated as
forward + backward = `6 * batch * (weights in matmuls)`; achieved FLOP/s = that / time per step.
Only matmul arithmetic is counted: with one input and one output, the elementwise work (tanh,
the loss, Adam's update of every parameter) is of the same order and is not in the estimate, so
achieved FLOP/s of these tiny nets is far below the machine's peak by construction. A size is
flagged when its time per step grew faster than its arithmetic (achieved FLOP/s fell by more than
20% from the previous size in the sweep). `x floor` is the time per step over that of a bare
`jit(lax.scan)` of the same Adam step on the same data (is a flag fit's doing or XLA's?); for
mini-batches the floor takes contiguous slices of data shuffled once, so it pays nothing for
sampling and `x floor` is what fit's sampling costs.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

import eqx_ffn

from ._common import Mode, median_time, ratio, timed

BATCH = 256
FLAG_DROP = 0.8  # flag when achieved FLOP/s < 0.8 x the previous size's


def _data(n: int) -> tuple[Any, Any]:
    x = -1 + 2 * jr.uniform(jr.key(1), (n, 1))
    return x, 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)


def _matmul_weights(model: eqx_ffn.FFN) -> int:
    return sum(layer.in_size * layer.out_size for layer in model.layers)


def _steps_for(n_batch: int, width: int) -> int:
    """Enough steps to take ~0.05-0.5 s here, without running for long on big sizes."""
    work = n_batch * max(width, 16)
    if work <= 2000 * 16:
        return 2000
    if work <= 20000 * 16:
        return 500
    if work <= 200000 * 16:
        return 100
    return 50


def _floor_per_step(
    mode: Mode, model: eqx_ffn.FFN, x, y, steps: int, batch_size: int | None
) -> float:
    """Seconds per step of a bare `jit(lax.scan)` of the same Adam step: the floor.

    Full batch: the whole data every step. Mini-batch: the data shuffled once beforehand, then
    contiguous slices of `batch_size` rows, so the floor pays nothing for sampling.
    """
    p0, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.adam(1e-2)
    if batch_size is not None:
        perm = jr.permutation(jr.key(7), x.shape[0])
        x, y = x[perm], y[perm]
    per_epoch = 1 if batch_size is None else x.shape[0] // batch_size

    def loss_fn(p, xb, yb):
        return jnp.mean((yb - jax.vmap(eqx.combine(p, static))(xb)) ** 2)

    def step(carry, t):
        p, s = carry
        if batch_size is None:
            xb, yb = x, y
        else:
            start = (t % per_epoch) * batch_size
            xb = jax.lax.dynamic_slice_in_dim(x, start, batch_size)
            yb = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    @jax.jit
    def train(p, s):
        return jax.lax.scan(step, (p, s), jnp.arange(steps))

    s0 = tx.init(p0)
    return median_time(lambda: train(p0, s0), mode.repeats, warmup=1)["median"] / steps


def one(mode: Mode, n: int, width: int, batch_size: int | None) -> dict[str, Any]:
    x, y = _data(n)
    model = eqx_ffn.FFN(1, 1, (width,), init="glorot_normal", key=jr.key(0))
    n_batch = n if batch_size is None else batch_size
    steps = _steps_for(n_batch, width)
    kwargs = {"steps": steps, "batch_size": batch_size, "progress": False}
    _, (_, first) = timed(lambda: eqx_ffn.fit(model, x, y, **kwargs))
    m = median_time(lambda: eqx_ffn.fit(model, x, y, **kwargs), mode.repeats, warmup=0)
    hist = m["result"][1]
    per_step = m["median"] / hist.steps
    flops = 6 * n_batch * _matmul_weights(model)
    floor = _floor_per_step(mode, model, x, y, steps, batch_size)
    return {
        "n": n,
        "width": width,
        "batch": "full" if batch_size is None else batch_size,
        "steps": hist.steps,
        "compile_s": first.compile_time,
        "run_s": m["median"],
        "per_step_s": per_step,
        "steps_per_s": 1.0 / per_step,
        "flops_per_step": flops,
        "achieved_flops": flops / per_step,
        "completed": hist.stop_reason == "completed",
        "floor_per_step_s": floor,
        "x_floor": ratio(per_step, floor),
    }


def _flag(rows: list[dict[str, Any]]) -> None:
    prev = None
    for row in rows:
        row["time_growth"] = None if prev is None else ratio(row["per_step_s"], prev["per_step_s"])
        row["flops_growth"] = (
            None if prev is None else ratio(row["flops_per_step"], prev["flops_per_step"])
        )
        row["flag"] = bool(
            prev is not None and row["achieved_flops"] < FLAG_DROP * prev["achieved_flops"]
        )
        prev = row


def run(mode: Mode) -> dict[str, Any]:
    ns = (200, 2_000, 20_000) if mode.quick else (200, 2_000, 20_000, 200_000)
    widths = (16, 256) if mode.quick else (16, 64, 256, 1024)
    full, mini, wide = [], [], []
    for n in ns:
        full.append(one(mode, n, 16, None))
        if n > BATCH:
            mini.append(one(mode, n, 16, BATCH))
    for w in widths:
        hit = [r for r in full if r["n"] == 2_000 and r["width"] == w]
        wide.append(dict(hit[0]) if hit else one(mode, 2_000, w, None))
    for rows in (full, mini, wide):
        _flag(rows)
    return {
        "title": "Scaling of fit (Adam 1e-2): steps/s vs N and vs width",
        "flops_note": "FLOPs/step = 6 * batch * matmul weights (forward + backward); matmul "
        "arithmetic only, elementwise work (tanh, loss, Adam) not counted.",
        "flag_rule": f"flagged: achieved FLOP/s < {FLAG_DROP} x the previous size's",
        "n_full_batch": full,
        "n_minibatch": mini,
        "width": wide,
    }
