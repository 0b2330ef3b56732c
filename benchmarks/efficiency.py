"""Case 3: hardware efficiency of one training step of a 784-1024-1024-10 MLP, batch 1024.

Adam (1e-3) on softmax cross-entropy, ReLU. Achieved FLOP/s = `6 * 1024 * (784*1024 +
1024*1024 + 1024*10)` per step (forward + backward matmuls) / time per step, divided by the
FLOP/s of a plain jitted 1024x1024 @ 1024x1024 float32 matmul measured in the same process (its
best repeat: the reference is what the hardware can do; the steps are medians).
Two eqx_ffn runners: `make_step` (one jitted step per call) and `fit` (the steps inside one
compiled loop). PyTorch, when installed, against its own `torch.mm` of the same size.
"""

from __future__ import annotations

import itertools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from ._common import Mode, cpu_count, median_time, optional, ratio, torch_device, torch_sync

SIZES = (784, 1024, 1024, 10)
BATCH = 1024
MATMUL = 1024
LR = 1e-3


def step_flops() -> int:
    weights = sum(a * b for a, b in itertools.pairwise(SIZES))
    return 6 * BATCH * weights


def _data() -> tuple[jax.Array, jax.Array]:
    kx, ky = jr.split(jr.key(3))
    return jr.normal(kx, (BATCH, SIZES[0])), jr.randint(ky, (BATCH,), 0, SIZES[-1])


def jax_matmul(mode: Mode) -> dict[str, Any]:
    ka, kb = jr.split(jr.key(4))
    a = jr.normal(ka, (MATMUL, MATMUL), jnp.float32)
    b = jr.normal(kb, (MATMUL, MATMUL), jnp.float32)
    f = jax.jit(jnp.matmul)
    m = median_time(lambda: f(a, b), max(mode.repeats, 5), warmup=2, min_time=mode.min_time)
    flops = 2 * MATMUL**3
    # The reference is what the hardware can do: the best repeat, not the median.
    return {
        "seconds": m["min"],
        "median_seconds": m["median"],
        "flops": flops,
        "flops_per_s": flops / m["min"],
    }


def jax_make_step(mode: Mode) -> dict[str, Any]:
    x, y = _data()
    model = eqx_ffn.FFN(
        SIZES[0], SIZES[-1], SIZES[1:-1], activation="relu", init="glorot_normal", key=jr.key(5)
    )
    optimizer = optax.adam(LR)
    step = eqx_ffn.make_step("softmax_cross_entropy", optimizer)
    state = {"model": model, "opt": optimizer.init(eqx.filter(model, eqx.is_inexact_array))}

    def once():
        state["model"], state["opt"], loss = step(state["model"], state["opt"], x, y)
        return loss

    m = median_time(once, mode.repeats, warmup=2, min_time=mode.min_time)
    return {"per_step_s": m["median"], "achieved_flops": step_flops() / m["median"]}


def jax_fit(mode: Mode) -> dict[str, Any]:
    x, y = _data()
    model = eqx_ffn.FFN(
        SIZES[0], SIZES[-1], SIZES[1:-1], activation="relu", init="glorot_normal", key=jr.key(5)
    )
    steps = 3 if mode.quick else 10
    kwargs = {
        "loss": "softmax_cross_entropy",
        "optimizer": optax.adam(LR),
        "steps": steps,
        "progress": False,
    }
    eqx_ffn.fit(model, x, y, **kwargs)  # compile
    m = median_time(lambda: eqx_ffn.fit(model, x, y, **kwargs), mode.slow_repeats, warmup=0)
    hist = m["result"][1]
    per_step = hist.run_time / hist.steps
    return {
        "per_step_s": per_step,
        "steps": hist.steps,
        "achieved_flops": step_flops() / per_step,
    }


def torch_case(mode: Mode) -> dict[str, Any]:
    torch = optional("torch")
    if torch is None:
        return {"skipped": "torch not installed"}
    torch.set_num_threads(cpu_count())
    dev = torch_device(torch)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL, MATMUL, generator=gen).to(dev)
    b = torch.randn(MATMUL, MATMUL, generator=gen).to(dev)

    def mm():
        c = torch.mm(a, b)
        torch_sync(torch, dev)
        return c

    mm_t = median_time(mm, max(mode.repeats, 5), warmup=2, min_time=mode.min_time)["min"]
    x, y = _data()
    xt = torch.tensor(np.asarray(x), device=dev)
    yt = torch.tensor(np.asarray(y), dtype=torch.long, device=dev)
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()
        torch_sync(torch, dev)
        return None

    st = median_time(step, mode.repeats, warmup=2, min_time=mode.min_time)["median"]
    flops = 2 * MATMUL**3
    return {
        "device": dev.type,
        "threads": torch.get_num_threads(),
        "matmul_flops_per_s": flops / mm_t,
        "per_step_s": st,
        "achieved_flops": step_flops() / st,
        "efficiency": (step_flops() / st) / (flops / mm_t),
    }


def run(mode: Mode) -> dict[str, Any]:
    mm = jax_matmul(mode)
    ms = jax_make_step(mode)
    ft = jax_fit(mode)
    for r in (ms, ft):
        r["efficiency"] = ratio(r["achieved_flops"], mm["flops_per_s"])
    return {
        "title": "Hardware efficiency: one Adam step, 784-1024-1024-10 ReLU MLP, batch 1024",
        "flops_per_step": step_flops(),
        "matmul": f"{MATMUL}x{MATMUL} @ {MATMUL}x{MATMUL} float32",
        "jax_matmul": mm,
        "eqx_ffn_make_step": ms,
        "eqx_ffn_fit": ft,
        "torch": torch_case(mode),
    }
