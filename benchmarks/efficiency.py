"""Hardware efficiency of one training step of a 784-1024-1024-10 ReLU MLP, batch 1024.

Adam (1e-3) on softmax cross-entropy. Achieved FLOP/s = `6 * 1024 * (784*1024 + 1024*1024 +
1024*10)` per step (forward + backward matmuls) / time per step, over the FLOP/s of a plain
1024x1024 @ 1024x1024 float32 matmul in the same process and library (its best repeat: what the
hardware can do; the steps are medians). eqx_ffn: `make_step` (one jitted step a call, on one
batch) and `fit` (the steps in one compiled loop, each on a batch of 1024 drawn with replacement
from 8,192 rows: the `sizes` case's wide runner, whose program it reuses); PyTorch
(`peers.torch_mlp`, on one batch) against its own `torch.mm`.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from . import peers
from ._common import Mode, median_time
from ._report import Table
from .sizes import wide_data

TITLE = "Hardware efficiency: one Adam step, 784-1024-1024-10 ReLU MLP, batch 1024"
SIZES = (784, 1024, 1024, 10)
BATCH, MATMUL, LR = 1024, 1024, 1e-3
FLOPS = 6 * BATCH * sum(a * b for a, b in itertools.pairwise(SIZES))


def run(mode: Mode) -> list[Table]:
    _, _, ka, kb = jr.split(jr.key(3), 4)
    # sizes' wide case: 8,192 rows, batches of 1,024 drawn with replacement (its program)
    x_all, y_all = wide_data()
    x, y = x_all[:BATCH], y_all[:BATCH]  # make_step's and PyTorch's batch
    a, b = jr.normal(ka, (MATMUL, MATMUL)), jr.normal(kb, (MATMUL, MATMUL))
    mm_flops = 2 * MATMUL**3
    matmul = jax.jit(jnp.matmul)
    peak = mm_flops / median_time(lambda: matmul(a, b), 5, warmup=2, min_time=mode.min_time).min
    model = eqx_ffn.FFN(SIZES[0], SIZES[-1], SIZES[1:-1], activation="relu",
                        init="glorot_normal", key=jr.key(5))  # fmt: skip
    opt = optax.adam(LR)
    step = eqx_ffn.make_step("softmax_cross_entropy", opt)
    state = [model, opt.init(eqx.filter(model, eqx.is_inexact_array))]

    def one_step():
        state[0], state[1], loss = step(state[0], state[1], x, y)
        return loss

    steps = 3 if mode.quick else 10
    kw = {"loss": "softmax_cross_entropy", "optimizer": "adam", "learning_rate": LR,
          "steps": steps, "batch_size": BATCH, "sampling": "replacement", "key": jr.key(3),
          "progress": False}  # fmt: skip
    eqx_ffn.fit(model, x_all, y_all, **kw)  # compiles, unless the sizes case did
    fit = median_time(lambda: eqx_ffn.fit(model, x_all, y_all, **kw), mode.slow_repeats, warmup=0)
    hist = fit.result[1]
    t = Table("Per step against a plain matmul",
              ["runner", "per step", "achieved FLOP/s", "reference matmul FLOP/s", "efficiency"],
              formats="tsffg")  # fmt: skip
    for label, per in (
        ("eqx_ffn.make_step (one jitted step a call)",
         median_time(one_step, mode.repeats, warmup=2, min_time=mode.min_time).median),
        ("eqx_ffn.fit (the steps in one compiled loop)", hist.run_time / hist.steps),
    ):  # fmt: skip
        t.add(label, per, FLOPS / per, peak, FLOPS / per / peak)
    built = peers.torch_mlp(SIZES, np.asarray(x), np.asarray(y), activation="relu", loss="ce",
                            lr=LR, reuse=True)  # fmt: skip
    if built is None:
        t.add("PyTorch: not installed", None, None, None, None)
    else:
        import torch

        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        ta, tb = torch.randn(MATMUL, MATMUL, device=dev), torch.randn(MATMUL, MATMUL, device=dev)

        def mm():
            torch.mm(ta, tb)
            peers.torch_sync(torch, dev)

        torch_peak = mm_flops / median_time(mm, 5, warmup=2).min
        train, info = built
        per = median_time(lambda: train(1), mode.repeats, warmup=2, min_time=mode.min_time).median
        t.add(f"PyTorch eager ({info['device']}, {info['threads']} threads; reference torch.mm)",
              per, FLOPS / per, torch_peak, FLOPS / per / torch_peak)  # fmt: skip
    t.notes.append(f"FLOPs per step (forward + backward matmuls): {FLOPS:.3g}; efficiency = "
                   "achieved / reference. The steps are medians, the matmul its best repeat.")  # fmt: skip
    return [t]
