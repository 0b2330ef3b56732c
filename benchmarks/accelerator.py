"""Issue 11: the accelerator path, every ratio measured in one run.

On the device JAX picks (`jax.devices()[0]`); PyTorch on CUDA when it sees a GPU. Sections:

- **wide**: a 1024-4096-4096-1024 ReLU MLP, full batch of 8192 rows, Adam 1e-4, MSE (FLOPs per
  step = 6 * batch * weights, the weight matrices' entries). `eqx_ffn.fit` in float32
  (`precision="highest"`), with float32 matmuls at `precision="default"` (TF32 on recent NVIDIA
  GPUs) and with `compute_dtype=jnp.bfloat16` (float32 master weights), against a bare
  `jit(lax.scan)` of the same Adam step (float32 at JAX's default precision, and bf16 compute
  with float32 master weights, as `gpu_probe2.py` measured) and PyTorch eager, TF32 and bf16
  autocast (fused Adam where PyTorch has it; `torch.cuda.synchronize` before every clock read).
  Targets: bf16 at least 1.9x the float32 (TF32) step of `fit`; `fit` bf16 at least PyTorch
  bf16 autocast's throughput.
- **big_n**: N = 4,000,000 points (1-64-64-1 tanh), batches of 4096, Adam 1e-3: `fit` with
  epoch sampling against a bare scan that draws each epoch's permutation on the device
  (`jax.random.permutation` + gather), and `sampling="replacement"` against a bare scan that draws
  `jax.random.randint` indices every step. Target: epoch sampling within 1.2x the bare scan.
- **lecture**: the lecture problem, `fit(optimizer=optax.adam(1e-2))` against a bare scan of the
  same step (also unrolled x8; and `fit` with the named `"adam"`). Target: within 1.2x.
- **lbfgs**: L-BFGS on the lecture problem placed on the accelerator, on the host CPU
  (`device="cpu"`) and by the default rule (`device=None`, `eqx_ffn.training._fit.LBFGS_ON_CPU_MAX_WORK`).
  Target: the default no slower than the host CPU (ratio of interleaved minimums <= 1.05: the
  rule runs the same program on the same device, so 5% is noise). Then larger problems (rows x
  parameters) on both devices, and where the accelerator starts to win (the crossover).
- **ensemble**: `fit_ensemble` of 1024 lecture members x 2000 steps against sequential `fit`
  calls (a few, extrapolated to 1024).
- **unroll**: the lecture fit with the step loop's `unroll` forced to 1, 4, 8, 16 (patching
  `eqx_ffn.training._fit.Prepared`; the engine picks 8 on GPUs when a chunk has >= 16 steps).

Per-step figures are whole warm calls (median) divided by the steps they ran; targets are ratios
of the minimums of interleaved calls (A B A B ...). On a CPU every size shrinks so that the case
exercises every code path in seconds: those figures are a smoke run, not the targets (the checks
then say so and are not judged).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax import lax

import eqx_ffn
from eqx_ffn.training import _fit

from ._common import (
    Mode,
    check,
    cpu_count,
    environment,
    lecture_data,
    median_time,
    optional,
    paired,
    ratio,
    timed,
    torch_device,
    torch_sync,
)

SMOKE = "CPU smoke run: not the targets"
WIDE_LR = 1e-4
BIG_LR = 1e-3
LECTURE_LR = 1e-2
LECTURE_STEPS = 2000
TARGET_BF16 = 1.9
TARGET_VS_TORCH = 1.0
TARGET_BIG_N = 1.2
TARGET_LECTURE = 1.2
TARGET_LBFGS = 1.05


class Sizes:
    """Sizes per device and mode: the issue's on an accelerator, tiny on a CPU (a smoke run)."""

    def __init__(self, mode: Mode, accelerator: bool):
        q = mode.quick
        self.accelerator = accelerator
        self.repeats = mode.repeats
        self.pairs = mode.repeats  # interleaved pairs of an expensive call
        self.cheap_pairs = max(mode.repeats, 5)  # ... of a call of a few milliseconds
        if accelerator:
            self.wide = (1024, 4096, 4096, 1024)
            self.wide_batch = 8192
            self.wide_steps = 30 if q else 100
            self.big_n, self.big_batch, self.big_steps = 4_000_000, 4096, 2000 if q else 5000
            self.lbfgs_steps = 300
            # (rows, inputs, hidden): work = rows * parameters from 2e6 to 1e9
            self.lbfgs_grid = [(4000, 8, (48,)), (20000, 16, (96, 96))]
            if not q:
                self.lbfgs_grid = [
                    (4000, 8, (48,)),
                    (20000, 8, (96,)),
                    (20000, 16, (96, 96)),
                    (50000, 16, (128, 128)),
                ]
            self.lbfgs_work = 2e9  # per size: steps ~ this / work, within [5, lbfgs_steps]
            self.members, self.ensemble_steps, self.sequential = 1024, 2000, 3 if q else 8
            self.unrolls = (1, 4, 8, 16)
        else:
            self.wide = (32, 64, 64, 32)
            self.wide_batch = 256
            self.wide_steps = 10
            self.big_n, self.big_batch, self.big_steps = 20_000, 256, 200
            self.lbfgs_steps = 50
            self.lbfgs_grid = [(2000, 8, (48,))]
            self.lbfgs_work = 2e8
            self.members, self.ensemble_steps, self.sequential = 16, 200, 2
            self.unrolls = (1, 8)
            # a smoke run: one timed repeat, one pair (compiling dominates on a CPU anyway)
            self.repeats = self.pairs = self.cheap_pairs = 1


def _sine(x):
    return 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)


def _runner(
    name: str, label: str, call: Callable[[], Any], steps: int, sz: Sizes, **extra: Any
) -> dict[str, Any]:
    """First call (compiles), then the median of warm calls; per step = call time / steps."""
    first_s, out = timed(call)
    m = median_time(call, sz.repeats, warmup=0)
    rec: dict[str, Any] = {
        "name": name,
        "label": label,
        "steps": steps,
        "first_call_s": first_s,
        "call_s": m["median"],
        "call_min_s": m["min"],
        "per_step_s": m["median"] / steps,
        "per_step_min_s": m["min"] / steps,
        **extra,
    }
    hist = _history(m["result"])
    if hist is not None:
        rec["compile_s"] = _history(out).compile_time  # type: ignore[union-attr]
        rec["final_loss"] = hist.final_loss
        rec["history_per_step_s"] = hist.run_time / max(hist.steps, 1)
        if hist.steps != steps:  # stopped early: the per-step figures use the steps it ran
            rec["steps"] = hist.steps
            rec["per_step_s"] = m["median"] / hist.steps
            rec["per_step_min_s"] = m["min"] / hist.steps
    return rec


def _history(out: Any) -> Any:
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], eqx_ffn.History):
        return out[1]
    return None


def _device_of(tree: Any) -> str:
    leaf = next(leaf for leaf in jax.tree.leaves(tree) if isinstance(leaf, jax.Array))
    return str(next(iter(leaf.devices())))


def _bare_scan(
    model: Any,
    opt: optax.GradientTransformation,
    steps: int,
    *,
    compute_dtype: Any = None,
    unroll: int = 1,
) -> Callable[..., Callable[[], Any]]:
    """`bind(x, y) -> call`: one jitted `lax.scan` of `steps` full-batch steps on `(x, y)`
    (MSE; with `compute_dtype`, parameters and inputs are cast inside the loss and the loss is
    reduced in float32). The data are arguments, not constants baked into the program; the
    first call compiles, as `fit`'s does."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss_fn(p, x, y):
        if compute_dtype is not None:
            p = jax.tree.map(lambda a: a.astype(compute_dtype), p)
            x = x.astype(compute_dtype)
        out = jax.vmap(eqx.combine(p, static))(x).astype(jnp.float32)
        return jnp.mean((out - y) ** 2)

    @jax.jit
    def train(p, s, x, y):
        def body(c, _):
            p, s = c
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        return lax.scan(body, (p, s), None, length=steps, unroll=unroll)

    s0 = opt.init(params)

    def bind(x, y):
        return lambda: train(params, s0, x, y)

    return bind


def _judge(passed: bool, sz: Sizes) -> bool | None:
    return passed if sz.accelerator else None


def _how(text: str, sz: Sizes) -> str:
    return text if sz.accelerator else f"{SMOKE}; {text}"


# -- (a) the wide MLP ---------------------------------------------------------------------------


@contextlib.contextmanager
def _tf32(torch: Any, on: bool):
    """PyTorch's TF32 switches for CUDA matmuls and convolutions, restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = on
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = old


def _torch_wide(
    torch: Any, sizes, x, y, steps: int, bf16: bool
) -> tuple[Callable[[], None], dict[str, Any], Callable[[], float]]:
    """`(call, info, last_loss)`: `call()` runs `steps` eager Adam steps (TF32, or bf16
    autocast) and waits for the device."""
    dev = torch_device(torch)
    if dev.type == "cpu":
        torch.set_num_threads(cpu_count())
    torch.manual_seed(0)
    xt = torch.from_numpy(np.array(x, np.float32)).to(dev)  # a writable host copy
    yt = torch.from_numpy(np.array(y, np.float32)).to(dev)
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(dev)

    def step(opt):
        opt.zero_grad(set_to_none=True)
        if bf16:
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                out = net(xt)
            loss = torch.mean((out.float() - yt) ** 2)
        else:
            loss = torch.mean((net(xt) - yt) ** 2)
        loss.backward()
        opt.step()
        return loss

    fused = True
    try:  # fused Adam: CUDA (and recent CPU builds); a failure shows at the first step
        opt = torch.optim.Adam(net.parameters(), lr=WIDE_LR, fused=True)
        with _tf32(torch, not bf16):
            step(opt)
    except (RuntimeError, TypeError, ValueError):
        fused = False
        opt = torch.optim.Adam(net.parameters(), lr=WIDE_LR)
    last: dict[str, Any] = {}

    def call():
        with _tf32(torch, not bf16):
            for _ in range(steps):
                last["loss"] = step(opt)
            torch_sync(torch, dev)

    info = {"device": str(dev), "fused_adam": fused, "threads": torch.get_num_threads()}
    return call, info, lambda: float(last["loss"].detach())


def wide(mode: Mode, sz: Sizes) -> dict[str, Any]:
    sizes, b, steps = sz.wide, sz.wide_batch, sz.wide_steps
    kx, ky, km = jr.split(jr.key(1), 3)
    x = jr.normal(kx, (b, sizes[0]))
    y = jr.normal(ky, (b, sizes[-1]))
    model = eqx_ffn.FFN(
        sizes[0], sizes[-1], sizes[1:-1], activation="relu", init="glorot_normal", key=km
    )
    weights = sum(a * c for a, c in itertools.pairwise(sizes))
    flops = 6 * b * weights
    kw = {"optimizer": "adam", "learning_rate": WIDE_LR, "steps": steps, "progress": False}

    def fit(**extra):
        return lambda: eqx_ffn.fit(model, x, y, **kw, **extra)

    calls = {
        "fit_f32": ("eqx_ffn.fit, float32, precision='highest'", fit(precision="highest")),
        "fit_tf32": (
            "eqx_ffn.fit, float32, precision='default' (TF32 matmuls on recent NVIDIA GPUs)",
            fit(precision="default"),
        ),
        "fit_bf16": (
            "eqx_ffn.fit, compute_dtype=bfloat16 (float32 master weights)",
            fit(compute_dtype=jnp.bfloat16),
        ),
        "bare_f32": (
            "bare jit(lax.scan), float32 (JAX's default precision)",
            _bare_scan(model, optax.adam(WIDE_LR), steps)(x, y),
        ),
        "bare_bf16": (
            "bare jit(lax.scan), bf16 compute, float32 master weights",
            _bare_scan(model, optax.adam(WIDE_LR), steps, compute_dtype=jnp.bfloat16)(x, y),
        ),
    }
    runners: list[dict[str, Any]] = []
    for name, (label, call) in calls.items():
        runners.append(_runner(name, label, call, steps, sz))
    torch = optional("torch")
    torch_calls: dict[str, Callable] = {}
    if torch is None:
        runners.append({"name": "torch", "skipped": "torch not installed"})
    else:
        for name, bf16, label in (
            ("torch_tf32", False, "PyTorch eager, TF32"),
            ("torch_bf16", True, "PyTorch eager, bf16 autocast"),
        ):
            try:
                call, info, last_loss = _torch_wide(torch, sizes, x, y, steps, bf16)
                rec = _runner(name, f"{label} ({info['device']})", call, steps, sz, **info)
                rec["final_loss"] = last_loss()
                runners.append(rec)
                torch_calls[name] = call
            except Exception as e:  # keep the JAX figures
                runners.append({"name": name, "error": f"{type(e).__name__}: {e}"})
    for r in runners:
        if "per_step_s" in r:
            r["tflops"] = flops / r["per_step_s"] / 1e12
    by = {r["name"]: r for r in runners}
    out: dict[str, Any] = {
        "sizes": list(sizes),
        "batch": b,
        "steps_per_call": steps,
        "flops_per_step": flops,
        "runners": runners,
        "checks": [],
    }
    bf16_call, tf32_call = calls["fit_bf16"][1], calls["fit_tf32"][1]
    p = paired(tf32_call, bf16_call, sz.pairs)
    out["bf16_speedup"] = p
    vs_highest = ratio(by["fit_f32"].get("per_step_s"), by["fit_bf16"].get("per_step_s"))
    out["checks"].append(
        check(
            "wide MLP: fit bf16 compute at least 1.9x the float32 (TF32) step",
            p["min_ratio"],
            f">= {TARGET_BF16}",
            _judge(p["min_ratio"] >= TARGET_BF16, sz),
            11,
            how=_how(
                f"ratio of the minimums over {p['pairs']} interleaved pairs of {steps}-step "
                "calls (fit precision='default' / fit compute_dtype=bfloat16); against "
                f"precision='highest' (medians): {_fmt(vs_highest)}x",
                sz,
            ),
            interleaved=p["ratio"],
        )
    )
    if "torch_bf16" in torch_calls:
        p = paired(torch_calls["torch_bf16"], bf16_call, sz.pairs)
        out["vs_torch_bf16"] = p
        out["checks"].append(
            check(
                "wide MLP: fit bf16 throughput at least PyTorch bf16 autocast's",
                p["min_ratio"],
                f">= {TARGET_VS_TORCH}",
                _judge(p["min_ratio"] >= TARGET_VS_TORCH, sz),
                11,
                how=_how(
                    f"PyTorch time / fit time, ratio of the minimums over {p['pairs']} "
                    f"interleaved pairs of {steps}-step calls",
                    sz,
                ),
                interleaved=p["ratio"],
            )
        )
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


# -- (b) big N, mini-batches --------------------------------------------------------------------


def big_n(mode: Mode, sz: Sizes) -> dict[str, Any]:
    n, b, steps = sz.big_n, sz.big_batch, sz.big_steps
    k1, k2 = jr.split(jr.key(2))
    x = jr.uniform(k1, (n, 1), minval=-1, maxval=1)
    y = _sine(x)
    model = eqx_ffn.FFN(1, 1, (64, 64), init="glorot_normal", key=k2)
    opt = optax.adam(BIG_LR)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    s0 = opt.init(params)

    def loss_fn(p, xb, yb):
        return jnp.mean((jax.vmap(eqx.combine(p, static))(xb) - yb) ** 2)

    def update(c, xb, yb):
        p, s = c
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    per_epoch = n // b  # the bare scans use full batches only
    epochs = max(1, round(steps / per_epoch))
    bare_epoch_steps = epochs * per_epoch

    @jax.jit
    def bare_epoch(p, s, x, y, key):
        def epoch(c, e):
            perm = jr.permutation(jr.fold_in(key, e), x.shape[0])

            def step(c, i):
                idx = lax.dynamic_slice_in_dim(perm, i * b, b)
                return update(c, x[idx], y[idx])

            return lax.scan(step, c, jnp.arange(per_epoch))

        return lax.scan(epoch, (p, s), jnp.arange(epochs))

    @jax.jit
    def bare_replacement(p, s, x, y, key):
        def step(c, t):
            idx = jr.randint(jr.fold_in(key, t), (b,), 0, x.shape[0])
            return update(c, x[idx], y[idx])

        return lax.scan(step, (p, s), jnp.arange(steps))

    key = jr.key(9)
    kw = {"optimizer": opt, "steps": steps, "batch_size": b, "progress": False}
    calls = {
        "fit_epoch": (
            "eqx_ffn.fit, epoch sampling",
            lambda: eqx_ffn.fit(model, x, y, **kw),
            steps,
        ),
        "bare_epoch": (
            "bare scan, permutation drawn on the device each epoch + gather",
            lambda: bare_epoch(params, s0, x, y, key),
            bare_epoch_steps,
        ),
        "fit_replacement": (
            "eqx_ffn.fit, sampling='replacement'",
            lambda: eqx_ffn.fit(model, x, y, sampling="replacement", **kw),
            steps,
        ),
        "bare_replacement": (
            "bare scan, jax.random.randint indices each step + gather",
            lambda: bare_replacement(params, s0, x, y, key),
            steps,
        ),
    }
    runners = [_runner(k, label, call, s, sz) for k, (label, call, s) in calls.items()]
    by = {r["name"]: r for r in runners}
    for fit_name, bare_name in (
        ("fit_epoch", "bare_epoch"),
        ("fit_replacement", "bare_replacement"),
    ):
        by[fit_name]["x_bare"] = ratio(by[fit_name]["per_step_s"], by[bare_name]["per_step_s"])
    p = paired(calls["fit_epoch"][1], calls["bare_epoch"][1], sz.pairs)
    per_step_ratio = p["min_ratio"] * bare_epoch_steps / steps
    return {
        "n": n,
        "batch": b,
        "steps": steps,
        "device_sampling_in_fit": jax.devices()[0].platform != "cpu",
        "runners": runners,
        "paired": p,
        "checks": [
            check(
                "big N (epoch sampling): fit per step within 1.2x a bare scan with device-side "
                "permutation",
                per_step_ratio,
                f"<= {TARGET_BIG_N}",
                _judge(per_step_ratio <= TARGET_BIG_N, sz),
                11,
                how=_how(
                    f"per-step ratio of the minimums over {p['pairs']} interleaved pairs "
                    f"(fit {steps} steps, bare scan {bare_epoch_steps})",
                    sz,
                ),
                interleaved=p["ratio"] * bare_epoch_steps / steps,
            )
        ],
    }


# -- (c) the lecture problem ----------------------------------------------------------------------


def lecture(mode: Mode, sz: Sizes) -> dict[str, Any]:
    x, y, params, _ = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    opt = optax.adam(LECTURE_LR)
    steps = LECTURE_STEPS
    kw = {"steps": steps, "progress": False}
    calls = {
        "fit_optax": (
            "eqx_ffn.fit, optimizer=optax.adam(1e-2)",
            lambda: eqx_ffn.fit(model, x, y, optimizer=opt, **kw),
        ),
        "fit_named": (
            "eqx_ffn.fit, optimizer='adam', learning_rate=1e-2 (run-time learning rate)",
            lambda: eqx_ffn.fit(model, x, y, optimizer="adam", learning_rate=LECTURE_LR, **kw),
        ),
        "bare": ("bare jit(lax.scan), optax.adam(1e-2)", _bare_scan(model, opt, steps)(x, y)),
        "bare_unroll8": (
            "bare jit(lax.scan), unroll=8",
            _bare_scan(model, opt, steps, unroll=8)(x, y),
        ),
    }
    runners = [_runner(k, label, call, steps, sz) for k, (label, call) in calls.items()]
    bare_s = runners[2]["per_step_s"]
    for r in runners:
        r["x_bare"] = ratio(r["per_step_s"], bare_s)
    p = paired(calls["fit_optax"][1], calls["bare"][1], sz.cheap_pairs)
    return {
        "steps": steps,
        "runners": runners,
        "paired": p,
        "checks": [
            check(
                "lecture problem: fit Adam within 1.2x a bare lax.scan",
                p["min_ratio"],
                f"<= {TARGET_LECTURE}",
                _judge(p["min_ratio"] <= TARGET_LECTURE, sz),
                11,
                how=_how(
                    f"ratio of the minimums over {p['pairs']} interleaved pairs of whole warm "
                    f"calls ({steps} steps; the same optax.adam(1e-2) in both)",
                    sz,
                ),
                interleaved=p["ratio"],
            )
        ],
    }


# -- (d) L-BFGS placement -------------------------------------------------------------------------


def _lbfgs_problem(n: int, d: int, hidden: tuple[int, ...]) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n + d)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, 1)).astype(np.float32) / math.sqrt(d)
    y = (np.sin(2 * x @ w) + 0.1 * x[:, :1]).astype(np.float32)
    model = eqx_ffn.FFN(d, 1, hidden, init="glorot_normal", key=jr.key(d))
    return model, x, y


def lbfgs(mode: Mode, sz: Sizes) -> dict[str, Any]:
    accel = jax.devices()[0] if jax.devices()[0].platform != "cpu" else None
    threshold = float(_fit.LBFGS_ON_CPU_MAX_WORK)
    x, y, params, _ = lecture_data()
    x, y = np.asarray(x), np.asarray(y)  # on the host: each placement copies them itself
    lecture_model = eqx_ffn.FFN.from_params(params)

    def place(model, xx, yy, steps, device):
        kw = {"optimizer": "lbfgs", "steps": steps, "tol": 0.0, "progress": False}
        return lambda: eqx_ffn.fit(model, xx, yy, device=device, **kw)

    steps = sz.lbfgs_steps
    places: list[tuple[str, str, Any]] = [
        ("cpu", "device='cpu' (host CPU)", "cpu"),
        ("default", "device=None (the default placement rule)", None),
    ]
    if accel is not None:
        places.insert(0, ("accelerator", f"device={accel}", accel))
    runners = []
    calls = {}
    for name, label, device in places:
        call = place(lecture_model, x, y, steps, device)
        rec = _runner(name, label, call, steps, sz)
        rec["ran_on"] = _device_of(call()[0])
        runners.append(rec)
        calls[name] = call
    p = paired(calls["default"], calls["cpu"], sz.cheap_pairs)
    n_params = lecture_model.n_params
    grid = [_grid_point(x.shape[0], 1, (16,), n_params, runners, threshold)]
    for n, d, hidden in sz.lbfgs_grid:
        model, gx, gy = _lbfgs_problem(n, d, hidden)
        work = n * model.n_params
        g_steps = int(min(steps, max(5, sz.lbfgs_work / work)))
        recs = [_runner("cpu", "cpu", place(model, gx, gy, g_steps, "cpu"), g_steps, sz)]
        if accel is not None:
            call = place(model, gx, gy, g_steps, accel)
            recs.insert(0, _runner("accelerator", str(accel), call, g_steps, sz))
        grid.append(_grid_point(n, d, hidden, model.n_params, recs, threshold))
    return {
        "steps": steps,
        "precision": "None (JAX's default: TF32 matmuls on recent NVIDIA GPUs)",
        "threshold_work": threshold,
        "runners": runners,
        "paired_default_vs_cpu": p,
        "grid": grid,
        "crossover": _crossover(grid, threshold),
        "checks": [
            check(
                "L-BFGS on the lecture problem: the default placement no slower than the host CPU",
                p["min_ratio"],
                f"<= {TARGET_LBFGS}",
                _judge(p["min_ratio"] <= TARGET_LBFGS, sz),
                11,
                how=_how(
                    f"default / device='cpu', ratio of the minimums over {p['pairs']} "
                    f"interleaved pairs of {steps}-step fits (tol=0); the default ran on "
                    f"{runners[-1]['ran_on']}",
                    sz,
                ),
                interleaved=p["ratio"],
            )
        ],
    }


def _grid_point(n, d, hidden, n_params, recs, threshold) -> dict[str, Any]:
    by = {r["name"]: r for r in recs}
    work = n * n_params
    point = {
        "n": n,
        "d": d,
        "hidden": list(hidden),
        "params": n_params,
        "work": work,
        "rule_places_on_cpu": work <= threshold,
        "steps": by["cpu"]["steps"],
        "cpu_per_step_s": by["cpu"]["per_step_s"],
        "accelerator_per_step_s": by.get("accelerator", {}).get("per_step_s"),
        "cpu_final_loss": by["cpu"].get("final_loss"),
        "accelerator_final_loss": by.get("accelerator", {}).get("final_loss"),
    }
    point["accelerator_over_cpu"] = ratio(point["accelerator_per_step_s"], point["cpu_per_step_s"])
    return point


def _crossover(grid: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Where the accelerator's per-step time drops below the CPU's (log-interpolated in work)."""
    pts = sorted(
        (g for g in grid if g["accelerator_over_cpu"] is not None), key=lambda g: g["work"]
    )
    if not pts:
        return {"note": "no accelerator: nothing to compare"}
    out: dict[str, Any] = {"threshold_work": threshold}
    for lo, hi in itertools.pairwise(pts):
        a, b = lo["accelerator_over_cpu"], hi["accelerator_over_cpu"]
        if a >= 1 > b:
            la, lb = math.log(lo["work"]), math.log(hi["work"])
            t = math.log(a) / (math.log(a) - math.log(b))
            out["work"] = math.exp(la + t * (lb - la))
            out["between"] = [lo["work"], hi["work"]]
            break
    else:
        if pts[0]["accelerator_over_cpu"] < 1:
            out["note"] = f"the accelerator was faster at every size (from {pts[0]['work']:.3g})"
        else:
            out["note"] = f"the CPU was faster at every size (up to {pts[-1]['work']:.3g})"
    if "work" in out:
        out["threshold_over_crossover"] = threshold / out["work"]
    return out


# -- (e) ensembles -----------------------------------------------------------------------------------


def ensemble(mode: Mode, sz: Sizes) -> dict[str, Any]:
    x, y, _, _ = lecture_data()
    k, steps = sz.members, sz.ensemble_steps
    keys = jr.split(jr.key(0), k)
    kw = {"optimizer": optax.adam(LECTURE_LR), "steps": steps, "progress": False}

    def make(key):
        return eqx_ffn.FFN(1, 1, (16,), key=key)

    def ens():
        return eqx_ffn.fit_ensemble(make, x, y, keys=keys, **kw)

    cold_s, (_, cold_hist) = timed(ens)
    warm = median_time(ens, mode.slow_repeats, warmup=0)
    pairs = [jr.split(key) for key in keys[: sz.sequential]]

    def sequential():  # builds each model, as fit_ensemble does
        return [eqx_ffn.fit(make(mk), x, y, key=fk, **kw)[1] for mk, fk in pairs]

    seq_cold_s, _ = timed(sequential)
    seq = median_time(sequential, mode.slow_repeats, warmup=0)
    per_member = seq["median"] / len(pairs)
    return {
        "members": k,
        "steps": steps,
        "ensemble_cold_s": cold_s,
        "ensemble_compile_s": cold_hist[0].compile_time,
        "ensemble_warm_s": warm["median"],
        "member_steps_per_s": k * steps / warm["median"],
        "sequential_fits_timed": len(pairs),
        "sequential_first_s": seq_cold_s,
        "sequential_per_member_s": per_member,
        "sequential_extrapolated_s": per_member * k,
        "sequential_over_ensemble": ratio(per_member * k, warm["median"]),
        "median_final_loss": float(np.median([h.final_loss for h in warm["result"][1]])),
    }


# -- (f) the step loop's unroll factor -------------------------------------------------------------


@contextlib.contextmanager
def forced_unroll(value: int | None):
    """Every `fit` in the block builds its program with `unroll=value` (`None`: the engine's
    pick); yields a dict that receives the engine's own pick and the chunk length."""
    original = _fit.Prepared.__init__
    seen: dict[str, Any] = {}

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["engine_unroll"], seen["chunk"] = self.unroll, self.chunk
        if value is not None:
            self.unroll = value

    _fit.Prepared.__init__ = init  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        _fit.Prepared.__init__ = original  # type: ignore[method-assign]


def unroll(mode: Mode, sz: Sizes) -> dict[str, Any]:
    x, y, params, _ = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    opt = optax.adam(LECTURE_LR)
    kw = {"optimizer": opt, "steps": LECTURE_STEPS, "progress": False}
    runners = []
    seen: dict[str, Any] = {}  # the engine's own pick, filled by the first fit
    for u in sz.unrolls:
        with forced_unroll(u) as picked:
            call = lambda: eqx_ffn.fit(model, x, y, **kw)  # noqa: E731
            runners.append(_runner(f"unroll_{u}", f"unroll={u}", call, LECTURE_STEPS, sz))
        seen |= picked
    fastest = min(runners, key=lambda r: r["per_step_s"])
    for r in runners:
        r["x_fastest"] = ratio(r["per_step_s"], fastest["per_step_s"])
    return {
        "steps": LECTURE_STEPS,
        "engine_unroll": seen.get("engine_unroll"),
        "chunk": seen.get("chunk"),
        "runners": runners,
        "fastest": fastest["name"],
    }


# -- the case ------------------------------------------------------------------------------------


SECTIONS: dict[str, Callable[[Mode, Sizes], dict[str, Any]]] = {
    "wide": wide,
    "big_n": big_n,
    "lecture": lecture,
    "lbfgs": lbfgs,
    "ensemble": ensemble,
    "unroll": unroll,
}


def _torch_info() -> dict[str, Any]:
    torch = optional("torch")
    if torch is None:
        return {"torch": None}
    cuda = bool(torch.cuda.is_available())
    return {
        "torch": torch.__version__,
        "torch_cuda": getattr(torch.version, "cuda", None),
        "torch_device": torch.cuda.get_device_name(0) if cuda else "cpu",
    }


def run(mode: Mode) -> dict[str, Any]:
    dev = jax.devices()[0]
    sz = Sizes(mode, dev.platform != "cpu")
    result: dict[str, Any] = {
        "title": "Accelerator path (issue 11)",
        "smoke": None if sz.accelerator else SMOKE,
        "backend": jax.default_backend(),
        "device": str(dev),
        "device_kind": getattr(dev, "device_kind", "unknown"),
        "env": environment() | _torch_info(),
        "section_seconds": {},
    }
    checks: list[dict[str, Any]] = []
    for name, fn in SECTIONS.items():
        t0 = time.perf_counter()
        try:
            result[name] = fn(mode, sz)
            checks += result[name].pop("checks", [])
        except Exception as e:  # one section failing must not lose the others
            traceback.print_exc()
            result[name] = {"error": f"{type(e).__name__}: {e}"}
        result["section_seconds"][name] = time.perf_counter() - t0
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()  # PyTorch's cached blocks back to the device, for JAX
    result["checks"] = checks
    return result
