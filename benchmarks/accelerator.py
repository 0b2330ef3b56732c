"""Issue 11: the accelerator path, every ratio measured in one run.

On the device JAX picks (`jax.devices()[0]`); PyTorch on CUDA when it sees a GPU. Sections:

- **wide**: a 1024-4096-4096-1024 ReLU MLP, full batch of 8192 rows, Adam 1e-4, MSE (FLOPs per
  step = 6 * batch * weights, the weight matrices' entries). `eqx_ffn.fit` in float32
  (`precision="highest"`), with float32 matmuls at `precision="default"` (TF32 on recent NVIDIA
  GPUs) and with `compute_dtype=jnp.bfloat16` (float32 master weights), against a bare
  `jit(lax.scan)` of the same Adam step (float32 at JAX's default precision, and bf16 compute
  with float32 master weights) and PyTorch eager, TF32 and bf16
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
  (`device="cpu"`) and by the default rule (`device=None`, its threshold `LBFGS_ON_CPU_MAX_WORK`).
  Target: the default no slower than the host CPU (ratio of interleaved minimums <= 1.05: the
  rule runs the same program on the same device, so 5% is noise). Then larger problems (rows x
  parameters) on both devices, and where the accelerator starts to win (the crossover).
- **ensemble**: `fit_ensemble` of 1024 lecture members x 2000 steps against sequential `fit`
  calls (a few, extrapolated to 1024).
- **unroll**: the lecture fit with the step loop's `unroll` forced to 1, 4, 8, 16 (the fit
  options' `_unroll`; the engine picks 8 on accelerators when a chunk has >= 16 steps).

Per-step figures are whole warm calls (median) divided by the steps they ran; targets are ratios
of the minimums of interleaved calls (A B A B ...). On a CPU every size shrinks so that the case
exercises every code path in seconds: those figures are a smoke run, not the targets (the checks
then say so and are not judged). A quick run on a CPU skips the smoke run and lists the checks.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from . import peers
from ._common import Mode, attempt, lecture_data, median_time, paired, ratio, timed
from ._report import Check, Table
from .ensemble import _make

TITLE = "Accelerator path (issue 11)"
SMOKE = "CPU smoke run: not the targets"
# runners a CPU smoke run skips (the sizes case runs fit's and the bare scan's replacement draws)
SMOKE_SKIP = ("precision='highest'", "bf16 compute", "unroll=8", "replacement", "randint")
WIDE_LR, BIG_LR, LECTURE_LR, LECTURE_STEPS = 1e-4, 1e-3, 1e-2, 2000
TARGET_BF16, TARGET_VS_TORCH, TARGET_BIG_N, TARGET_LECTURE, TARGET_LBFGS = 1.9, 1.0, 1.2, 1.2, 1.05
CHECKS = {  # name: (check, target)
    "bf16": ("wide MLP: fit bf16 compute at least 1.9x the float32 (TF32) step",
             f">= {TARGET_BF16}"),
    "vs_torch": ("wide MLP: fit bf16 throughput at least PyTorch bf16 autocast's",
                 f">= {TARGET_VS_TORCH}"),
    "big_n": ("big N (epoch sampling): fit per step within 1.2x a bare scan with device-side "
              "permutation", f"<= {TARGET_BIG_N}"),
    "lecture": ("lecture problem: fit Adam within 1.2x a bare lax.scan", f"<= {TARGET_LECTURE}"),
    "lbfgs": ("L-BFGS on the lecture problem: the default placement no slower than the host CPU",
              f"<= {TARGET_LBFGS}"),
}  # fmt: skip


class Sizes:
    """Sizes per device and mode: the issue's on an accelerator, tiny on a CPU (a smoke run)."""

    def __init__(self, mode: Mode, accelerator: bool):
        q = mode.quick
        self.accelerator = accelerator
        self.repeats = self.pairs = mode.repeats
        self.skip: tuple = ()  # runners this run skips
        self.cheap_pairs = max(mode.repeats, 5)  # interleaved pairs of a call of milliseconds
        if accelerator:
            self.wide, self.wide_batch, self.wide_steps = (
                (1024, 4096, 4096, 1024),
                8192,
                30 if q else 100,
            )
            self.big_n, self.big_batch, self.big_steps = 4_000_000, 4096, 2000 if q else 5000
            self.lbfgs_steps, self.lbfgs_work = 300, 2e9  # grid steps ~ work / (rows x params)
            self.lbfgs_grid = [(4000, 8, (48,)), (20000, 16, (96, 96))]  # (rows, inputs, hidden)
            if not q:
                self.lbfgs_grid[1:1] = [(20000, 8, (96,))]
                self.lbfgs_grid.append((50000, 16, (128, 128)))
            self.members, self.ensemble_steps, self.sequential = 1024, 2000, 3 if q else 8
            self.unrolls = (1, 4, 8, 16)
        else:  # a smoke run: one repeat, one pair (compiling dominates on a CPU anyway)
            self.wide, self.wide_batch, self.wide_steps = (32, 64, 64, 32), 256, 10
            self.big_n, self.big_batch, self.big_steps = 20_000, 256, 156
            self.lbfgs_steps, self.lbfgs_work = 50, 2e8
            self.lbfgs_grid: list = []  # no accelerator to compare the CPU with
            self.members, self.ensemble_steps, self.sequential = 16, 200, 2
            self.unrolls = (1, 8)
            self.repeats = self.pairs = self.cheap_pairs = 1
            self.skip = SMOKE_SKIP

    def check(self, which: str, value: float | None, ok: bool | None, how: str) -> Check:
        """`CHECKS[which]`, judged only on an accelerator."""
        name, target = CHECKS[which]
        if self.accelerator:
            return Check(name, value, target, ok, 11, how)
        return Check(name, value, target, None, 11, f"{SMOKE}; {how}")


def _time(call: Callable[[], Any], steps: int, sz: Sizes) -> tuple[float, float, Any]:
    """`(first call seconds, median seconds per step, last result)`; a `fit` that stopped early
    counts the steps it ran."""
    first, _ = timed(call)
    t = median_time(call, sz.repeats, warmup=0)
    hist = t.result[1] if isinstance(t.result, tuple) else None
    if isinstance(hist, eqx_ffn.History):
        steps = hist.steps
    return first, t.median / steps, t.result


def _loss(out: Any) -> float | None:
    hist = out[1] if isinstance(out, tuple) else None
    if isinstance(hist, eqx_ffn.History):
        return float(hist.final_loss)
    return float(np.asarray(hist)[-1]) if hist is not None else None


def _runs_table(
    title: str,
    calls: dict[str, tuple[Callable, int]],
    sz: Sizes,
    base: str | None,
    extra: Callable[[float], Any] | None = None,
    extra_col: str = "",
) -> tuple[Table, dict]:
    """A table of runners (first call, per step, then `x base` or `extra(per_step)`)."""
    cols = ["runner", "first call", "per step", extra_col or "x " + str(base), "final loss"]
    t = Table(title, cols, formats="tss" + ("g" if extra else "x") + "g")
    per: dict[str, float] = {}
    for label, (call, steps) in calls.items():
        if any(s in label for s in sz.skip):
            continue
        out, error = attempt(lambda: _time(call, steps, sz))  # noqa: B023
        if out is None:
            t.add(f"{label}: failed: {error}", None, None, None, None)
            continue
        first, per[label], result = out
        t.rows.append([label, first, per[label], None, _loss(result)])
    for row in t.rows:
        if row[0] in per:
            row[3] = extra(per[row[0]]) if extra else ratio(per[row[0]], per.get(base or ""))
    return t, per


def wide(mode: Mode, sz: Sizes) -> list[Table]:
    sizes, b, steps = sz.wide, sz.wide_batch, sz.wide_steps
    kx, ky, km = jr.split(jr.key(1), 3)
    x, y = jr.normal(kx, (b, sizes[0])), jr.normal(ky, (b, sizes[-1]))
    model = eqx_ffn.FFN(sizes[0], sizes[-1], sizes[1:-1], activation="relu", init="glorot_normal",
                        key=km)  # fmt: skip
    flops = 6 * b * sum(a * c for a, c in itertools.pairwise(sizes))
    kw = {"optimizer": "adam", "learning_rate": WIDE_LR, "steps": steps, "progress": False}

    def fit(**extra):
        return lambda: eqx_ffn.fit(model, x, y, **kw, **extra)

    tf32, bf16 = (
        "eqx_ffn.fit, float32, precision='default' (TF32 on recent NVIDIA GPUs)",
        "eqx_ffn.fit, compute_dtype=bfloat16 (float32 master weights)",
    )
    calls = {
        "eqx_ffn.fit, float32, precision='highest'": (fit(precision="highest"), steps),
        tf32: (fit(precision="default"), steps),
        bf16: (fit(compute_dtype=jnp.bfloat16), steps),
        "lean bare scan, float32": (peers.bare_scan(model, x, y, steps, optax.adam(WIDE_LR)), steps),
        "lean bare scan, bf16 compute": (peers.bare_scan(
            model, x, y, steps, optax.adam(WIDE_LR), compute_dtype=jnp.bfloat16), steps),
    }  # fmt: skip
    torch_bf16 = None
    for on in (False, True):
        built = peers.torch_mlp(sizes, np.asarray(x), np.asarray(y), activation="relu", lr=WIDE_LR,
                                bf16=on, reuse=True)  # fmt: skip
        if built is not None:
            train, info = built
            label = f"PyTorch eager, {'bf16 autocast' if on else 'TF32'} ({info['device']})"
            calls[label] = (lambda train=train: train(steps), steps)
            torch_bf16 = calls[label][0] if on else torch_bf16
    t, _ = _runs_table(f"Wide MLP {'-'.join(map(str, sizes))} ReLU, full batch of {b}, Adam, "
                         f"MSE, {steps} steps a call", calls, sz, None,
                         lambda s: flops / s / 1e12, "TFLOP/s")  # fmt: skip
    p = paired(calls[tf32][0], calls[bf16][0], sz.pairs)
    t.checks.append(sz.check("bf16", p.min_ratio, p.min_ratio >= TARGET_BF16,
                             f"ratio of the minimums over {p.pairs} interleaved pairs"))  # fmt: skip
    if torch_bf16 is not None:
        p = paired(torch_bf16, calls[bf16][0], sz.pairs)
        t.checks.append(sz.check("vs_torch", p.min_ratio, p.min_ratio >= TARGET_VS_TORCH,
                                 f"PyTorch time / fit time, {p.pairs} interleaved pairs"))  # fmt: skip
    return [t]


def big_n(mode: Mode, sz: Sizes) -> list[Table]:
    n, b = sz.big_n, sz.big_batch
    steps = max(1, round(sz.big_steps / (n // b))) * (n // b)  # whole epochs for the bare scan
    k1, k2 = jr.split(jr.key(2))
    x = jr.uniform(k1, (n, 1), minval=-1, maxval=1)
    y = 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)
    model = eqx_ffn.FFN(1, 1, (64, 64), init="glorot_normal", key=k2)
    kw = {"optimizer": optax.adam(BIG_LR), "steps": steps, "batch_size": b, "progress": False}
    bare = lambda s: peers.bare_scan(model, x, y, steps, optax.adam(BIG_LR), batch=b, sampling=s)  # noqa: E731
    calls = {
        "eqx_ffn.fit, epoch sampling": (lambda: eqx_ffn.fit(model, x, y, **kw), steps),
        "bare scan, device permutation each epoch": (bare("epoch"), steps),
        "eqx_ffn.fit, sampling='replacement'":
            (lambda: eqx_ffn.fit(model, x, y, sampling="replacement", **kw), steps),
        "bare scan, jax.random.randint each step": (bare("replacement"), steps),
    }  # fmt: skip
    where = "device" if jax.devices()[0].platform != "cpu" else "host"
    t, _ = _runs_table(f"Big N: {n:,} points, 1-64-64-1 tanh, batches of {b}, Adam; fit draws "
                       f"batch indices on the {where}", calls, sz, "bare scan, device permutation "
                       "each epoch")  # fmt: skip
    (a, _), (c, _) = (
        calls["eqx_ffn.fit, epoch sampling"],
        calls["bare scan, device permutation each epoch"],
    )
    p = paired(a, c, sz.pairs)
    t.checks.append(sz.check("big_n", p.min_ratio, p.min_ratio <= TARGET_BIG_N,
                             f"ratio of the minimums over {p.pairs} interleaved pairs of {steps}-step "
                             "calls"))  # fmt: skip
    return [t]


def lecture(mode: Mode, sz: Sizes) -> list[Table]:
    x, y, params = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    opt, steps = optax.adam(LECTURE_LR), LECTURE_STEPS
    kw = {"steps": steps, "progress": False}
    calls = {
        "eqx_ffn.fit, optimizer=optax.adam(1e-2)": (lambda: eqx_ffn.fit(model, x, y, optimizer=opt, **kw), steps),
        "eqx_ffn.fit, optimizer='adam', learning_rate=1e-2":
            (lambda: eqx_ffn.fit(model, x, y, optimizer="adam", learning_rate=LECTURE_LR, **kw), steps),
        "lean bare scan": (peers.bare_scan(model, x, y, steps, opt,
                                           share=mode.quick and ("adam", LECTURE_LR)), steps),
        "lean bare scan, unroll=8": (peers.bare_scan(model, x, y, steps, opt, unroll=8), steps),
    }  # fmt: skip
    t, _ = _runs_table(f"Lecture problem, Adam 1e-2, {steps} full-batch steps", calls, sz,
                       "lean bare scan")  # fmt: skip
    p = paired(calls["eqx_ffn.fit, optimizer=optax.adam(1e-2)"][0], calls["lean bare scan"][0],
               sz.cheap_pairs)  # fmt: skip
    t.checks.append(sz.check("lecture", p.min_ratio, p.min_ratio <= TARGET_LECTURE,
                             f"ratio of the minimums over {p.pairs} interleaved pairs"))  # fmt: skip
    return [t]


def lbfgs(mode: Mode, sz: Sizes) -> list[Table]:
    from eqx_ffn.training._placement import LBFGS_ON_CPU_MAX_WORK as threshold

    accel = jax.devices()[0] if jax.devices()[0].platform != "cpu" else None
    x, y, params = lecture_data()
    x, y = np.asarray(x), np.asarray(y)  # on the host: each placement copies them itself

    def place(model, xx, yy, steps, device):
        kw = {"optimizer": "lbfgs", "steps": steps, "tol": 0.0, "progress": False}
        return lambda: eqx_ffn.fit(model, xx, yy, device=device, **kw)

    model, steps = eqx_ffn.FFN.from_params(params), sz.lbfgs_steps
    t = Table(f"L-BFGS placement (optax zoom line search, tol=0, {steps} steps)",
              ["placement", "ran on", "first call", "per step", "final loss"], formats="ttssg")  # fmt: skip
    calls = {}
    for label, device in ([(f"device={accel}", accel)] if accel else []) + [
            ("device='cpu' (host CPU)", "cpu"), ("device=None (the default rule)", None)]:  # fmt: skip
        calls[label] = call = place(model, x, y, steps, device)
        first, per, out = _time(call, steps, sz)
        ran_on = str(next(iter(jax.tree.leaves(out[0])[0].devices())))
        t.add(label, ran_on, first, per, _loss(out))
    p = paired(
        calls["device=None (the default rule)"], calls["device='cpu' (host CPU)"], sz.cheap_pairs
    )
    t.checks.append(sz.check("lbfgs", p.min_ratio, p.min_ratio <= TARGET_LBFGS,
                             f"default / device='cpu', ratio of the minimums over {p.pairs} "
                             "interleaved pairs"))  # fmt: skip
    g = Table("L-BFGS per step by problem size, CPU against the accelerator",
              ["rows x parameters", "work", "the rule places it on", "steps", "CPU per step",
               "accelerator per step", "accelerator / CPU"], formats="tgtgssx")  # fmt: skip
    points = []
    for n, d, hidden in sz.lbfgs_grid:
        rng = np.random.default_rng(n + d)
        gx = rng.standard_normal((n, d)).astype(np.float32)
        gy = np.sin(2 * gx @ (rng.standard_normal((d, 1)) / math.sqrt(d))).astype(np.float32)
        gm = eqx_ffn.FFN(d, 1, hidden, init="glorot_normal", key=jr.key(d))
        work = n * gm.n_params
        g_steps = int(min(steps, max(5, sz.lbfgs_work / work)))
        cpu = _time(place(gm, gx, gy, g_steps, "cpu"), g_steps, sz)[1]
        acc = _time(place(gm, gx, gy, g_steps, accel), g_steps, sz)[1] if accel else None
        points.append((work, ratio(acc, cpu)))
        g.add(f"{n:,} x {gm.n_params:,} ({d}-{'-'.join(map(str, hidden))}-1)", float(work),
              "CPU" if work <= threshold else "default device", g_steps, cpu, acc, ratio(acc, cpu))  # fmt: skip
    g.notes.append(_crossover(points, threshold))
    return [t, g]


def _crossover(points: list[tuple[float, float | None]], threshold: float) -> str:
    """Where the accelerator's per-step time drops below the CPU's (log-interpolated in work)."""
    pts = sorted((w, r) for w, r in points if r is not None)
    if not pts:
        return "No accelerator: nothing to compare."
    for (wa, a), (wb, b) in itertools.pairwise(pts):
        if a >= 1 > b:
            w = math.exp(
                math.log(wa) + math.log(a) / (math.log(a) - math.log(b)) * math.log(wb / wa)
            )
            return (f"The accelerator overtakes the CPU at about {w:.3g} rows x parameters; the "
                    f"rule's threshold is {threshold:.3g} ({threshold / w:.3g}x the crossover).")  # fmt: skip
    side = "accelerator" if pts[0][1] < 1 else "CPU"
    return f"The {side} was faster at every size measured (threshold {threshold:.3g})."


def ensemble(mode: Mode, sz: Sizes) -> list[Table]:
    x, y, _ = lecture_data()
    k, steps = sz.members, sz.ensemble_steps
    keys = jr.split(jr.key(0), k)
    kw = {"optimizer": optax.adam(LECTURE_LR), "steps": steps, "progress": False}

    make = _make  # the ensemble case's initialiser: 8 members share its programs on a CPU
    pairs = [jr.split(key) for key in keys[: sz.sequential]]
    ens_cold, (_, hists) = timed(lambda: eqx_ffn.fit_ensemble(make, x, y, keys=keys, **kw))
    ens = median_time(
        lambda: eqx_ffn.fit_ensemble(make, x, y, keys=keys, **kw), mode.slow_repeats, 0
    )
    seq_cold, _ = timed(lambda: [eqx_ffn.fit(make(a), x, y, key=b, **kw) for a, b in pairs])
    seq = median_time(lambda: [eqx_ffn.fit(make(a), x, y, key=b, **kw) for a, b in pairs],
                      mode.slow_repeats, 0).median / len(pairs)  # fmt: skip
    t = Table(f"Ensembles: fit_ensemble of {k} lecture members x {steps} steps against sequential "
              f"fit ({len(pairs)} timed, extrapolated)", ["runner", "cold", "warm",
              "member-steps/s (warm)"], formats="tssg")  # fmt: skip
    t.add("one fit_ensemble call", ens_cold, ens.median, round(k * steps / ens.median))
    t.add(
        f"sequential fit, extrapolated to {k}",
        seq_cold / len(pairs) * k,
        seq * k,
        round(steps / seq),
    )
    t.notes.append(f"Ensemble compile {hists[0].compile_time:.2f} s; sequential / ensemble "
                   f"{seq * k / ens.median:.3g}x (warm).")  # fmt: skip
    return [t]


@contextlib.contextmanager
def forced_unroll(value: int):
    """Every `fit` in the block builds its program with the step loop unrolled `value` times."""
    from eqx_ffn.training._options import FitOptions

    original = FitOptions.__post_init__

    def post_init(self):
        object.__setattr__(self, "_unroll", value)
        original(self)

    FitOptions.__post_init__ = post_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        FitOptions.__post_init__ = original  # type: ignore[method-assign]


def unroll(mode: Mode, sz: Sizes) -> list[Table]:
    x, y, params = lecture_data()
    model = eqx_ffn.FFN.from_params(params)
    kw = {"optimizer": optax.adam(LECTURE_LR), "steps": LECTURE_STEPS, "progress": False}
    rows = []
    for u in sz.unrolls:
        with forced_unroll(u):
            rows.append(
                (f"unroll={u}", _time(lambda: eqx_ffn.fit(model, x, y, **kw), LECTURE_STEPS, sz)[1])
            )
    fastest = min(per for _, per in rows)
    t = Table(f"Unroll of the step loop, lecture fit ({LECTURE_STEPS} steps)",
              ["unroll", "per step", "x fastest"], formats="tsx")  # fmt: skip
    for label, per in rows:
        t.add(label, per, per / fastest)
    return [t]


SECTIONS = {"wide": wide, "big_n": big_n, "lecture": lecture, "lbfgs": lbfgs,
            "ensemble": ensemble, "unroll": unroll}  # fmt: skip


def _skipped(dev: Any) -> Table:
    """A quick run on a CPU: no smoke run, every check listed as not judged here."""
    t = Table(f"Accelerator path: not run (device `{dev}`)", [])
    t.notes.append(f"The targets are an accelerator's; a quick run on a CPU skips the {SMOKE.lower()} "
                   "(the full run times it: `python -m benchmarks --cases accelerator`).")  # fmt: skip
    t.checks = [Check(name, None, target, None, 11, "an accelerator's target; quick CPU run: "
                      "not run") for name, target in CHECKS.values()]  # fmt: skip
    return t


def run(mode: Mode) -> list[Table]:
    dev = jax.devices()[0]
    sz = Sizes(mode, dev.platform != "cpu")
    if mode.quick and not sz.accelerator:
        return [_skipped(dev)]
    tables: list[Table] = []
    for name, section in SECTIONS.items():
        out, error = attempt(lambda: section(mode, sz))  # noqa: B023
        tables += out or [Table(f"{name}: failed: {error}", [])]
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()  # PyTorch's cached blocks back to the device, for JAX
    note = (
        f"Device `{dev}` ({getattr(dev, 'device_kind', '?')}), backend `{jax.default_backend()}`."
    )
    tables[0].notes.insert(0, note if sz.accelerator else f"**{SMOKE}**: every size shrunk. {note}")
    return tables
