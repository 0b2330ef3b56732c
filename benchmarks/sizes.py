"""`fit` against the lean bare scan and PyTorch at the sizes users train (issue 21).

The cases of `../shared/tools/perf_probe.py`: the lecture (1-16-1 tanh, N=200, full batch);
mid (8-64-64-1 tanh, N=20,000, full batch); big N (1-64-64-1 tanh, N=200,000, batches of 256);
MNIST-size (784-256-256-10 ReLU, N=60,000, batches of 128, softmax cross-entropy); wide
(784-1024-1024-10 ReLU, N=8,192, batches of 1024, cross-entropy). Adam; mini-batches drawn with
replacement on every side (`fit(sampling="replacement")`, `jax.random.randint` in the bare scan,
`torch.randint` in PyTorch). Each runner is timed whole and warm, in interleaved rounds; the
figures are the minimums over the rounds, per step. Targets: fit / bare scan <= 1.2 at every
size, fit / PyTorch <= 1.0 for mid, big N, MNIST-size and wide.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from . import peers
from ._common import Mode, attempt, bucket, timed
from ._report import Check, Table

TITLE = "fit against a lean bare scan and PyTorch at the sizes users train (issue 21)"
# name: (sizes, activation, N, batch, loss, learning rate, steps full, steps quick)
CASES = {
    "lecture": ((1, 16, 1), "tanh", 200, None, "mse", 1e-2, 2000, 2000),
    "mid": ((8, 64, 64, 1), "tanh", 20_000, None, "mse", 1e-3, 100, 20),
    "big N": ((1, 64, 64, 1), "tanh", 200_000, 256, "mse", 1e-3, 2000, 400),
    "MNIST-size": ((784, 256, 256, 10), "relu", 60_000, 128, "ce", 1e-3, 200, 40),
    "wide": ((784, 1024, 1024, 10), "relu", 8192, 1024, "ce", 1e-3, 8, 4),
}
TORCH_CHECKED = ("mid", "big N", "MNIST-size", "wide")
BARE_TARGET, TORCH_TARGET = 1.2, 1.0


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A case's inputs, uniform with unit variance (float32), and targets: class labels (int32)
    for cross-entropy, else `tanh(2 x_1 + x_d)`."""
    sizes, _, n, _, loss, *_ = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.random((n, sizes[0]), dtype=np.float32)  # NumPy's fastest draw: 60,000 x 784 in 0.1 s
    x *= np.float32(2 * np.sqrt(3))
    x -= np.float32(np.sqrt(3))
    if loss == "ce":
        return x, rng.integers(0, sizes[-1], n).astype(np.int32)
    return x, np.tanh(x[:, :1] * 2 + x[:, -1:]).astype(np.float32)


def wide_data() -> tuple[np.ndarray, np.ndarray]:
    """The wide case's data (the `efficiency` case's too: one program for both)."""
    return _data("wide")


def _runners(name: str, quick: bool) -> tuple[dict[str, Any], dict[str, int]]:
    """`(runner -> call, runner -> steps a call)`."""
    sizes, act, n, batch, loss, lr, steps, quick_steps = CASES[name]
    steps = quick_steps if quick else steps
    x, y = _data(name)
    model = eqx_ffn.FFN(sizes[0], sizes[-1], sizes[1:-1], activation=act, init="glorot_uniform",
                        key=jr.key(0))  # fmt: skip
    kw: dict[str, Any] = {"optimizer": "adam", "learning_rate": lr, "steps": steps,
                          "batch_size": batch, "progress": False, "key": jr.key(3),
                          "loss": "softmax_cross_entropy" if loss == "ce" else "mse"}  # fmt: skip
    if batch is not None:
        kw["sampling"] = "replacement"
    runners = {
        "fit": lambda: eqx_ffn.fit(model, x, y, **kw)[0],
        "bare": peers.bare_scan(
            model, x, y, steps, optax.adam(lr), loss=loss, batch=batch, share=quick and ("adam", lr)
        ),
    }
    rows = bucket(n)
    if batch is None and rows != n and not quick:
        # the same scan on the rows fit computes: full-batch data padded to their size bucket
        # (zero rows here; fit's carry weight 0, which costs nothing more)
        xp, yp = (np.concatenate([a, np.zeros((rows - n, *a.shape[1:]), a.dtype)]) for a in (x, y))
        runners["bare_padded"] = peers.bare_scan(model, xp, yp, steps, optax.adam(lr), loss=loss)
    built = peers.torch_mlp(sizes, x, y, activation=act, loss=loss, lr=lr, batch=batch,
                            reuse=True)  # fmt: skip
    per_call = dict.fromkeys(runners, steps)
    if built is not None:  # quick: at most 100 PyTorch steps a call (its time per step is flat)
        train, per_call["torch"] = built[0], min(steps, 100) if quick else steps
        runners["torch"] = lambda: train(per_call["torch"])
    return runners, per_call


def one(name: str, rounds: int, quick: bool) -> dict[str, float]:
    """Seconds per step, the minimum over `rounds` interleaved rounds after a first call each
    (`first_<runner>`: that call)."""
    runners, per_call = _runners(name, quick)
    out = {f"first_{k}": timed(f)[0] for k, f in runners.items()}
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for k, f in runners.items():
            best[k] = min(best[k], timed(f)[0])
    return out | {k: v / per_call[k] for k, v in best.items()}


def run(mode: Mode) -> list[Table]:
    rounds = 2 if mode.quick else 5
    padded: dict[str, dict[str, float]] = {}
    t = Table(
        "Per step, minimum of interleaved rounds",
        ["case", "fit", "lean bare scan", "PyTorch", "fit / bare", "fit / PyTorch",
         "bare / PyTorch", "fit first call"],
        formats="tsssxxxs",
    )  # fmt: skip
    for name, (sizes, act, n, batch, loss, *_) in CASES.items():
        label = (f"{name}: {'-'.join(map(str, sizes))} {act}, N={n:,}, "
                 f"{'full batch' if batch is None else f'batch {batch}'}, {loss}")  # fmt: skip
        r, error = attempt(lambda name=name: one(name, rounds, mode.quick))
        if r is None:
            t.add(f"{label}: failed: {error}", *[None] * 7)
            t.checks.append(Check(f"{name}: fit per step within {BARE_TARGET}x the lean bare scan",
                                  None, f"<= {BARE_TARGET}", False, 21, error or ""))  # fmt: skip
            continue
        if "bare_padded" in r:
            padded[name] = r
        fit_bare, torch = r["fit"] / r["bare"], r.get("torch")
        fit_torch = None if torch is None else r["fit"] / torch
        t.add(label, r["fit"], r["bare"], torch, fit_bare, fit_torch,
              None if torch is None else r["bare"] / torch, r["first_fit"])  # fmt: skip
        how = f"minimum over {rounds} interleaved rounds"
        t.checks.append(Check(f"{name}: fit per step within {BARE_TARGET}x the lean bare scan",
                              fit_bare, f"<= {BARE_TARGET}", fit_bare <= BARE_TARGET, 21, how))  # fmt: skip
        if name in TORCH_CHECKED:
            ok = None if fit_torch is None else fit_torch <= TORCH_TARGET
            t.checks.append(Check(f"{name}: fit per step at most PyTorch's", fit_torch,
                                  f"<= {TORCH_TARGET}", ok, 21,
                                  how if torch is not None else "PyTorch not installed"))  # fmt: skip
    for name, r in padded.items():
        n = CASES[name][2]
        t.notes.append(
            f"{name}: fit pads the full batch of {n} rows to its size bucket of {bucket(n)} (so "
            "that cross-validation folds of other sizes share its program, issue 10); the lean "
            f"bare scan on {bucket(n)} rows takes {r['bare_padded'] * 1e6:.2f} us a step, "
            f"{r['bare_padded'] / r['bare']:.2f}x its time on {n} rows; fit / that scan: "
            f"{r['fit'] / r['bare_padded']:.2f}."
        )
    if jax.devices()[0].platform == "cpu":
        t.notes.append(
            "On a CPU, fit runs the lecture's chunk of steps as one kernel (XLA's one-kernel "
            "emitter for a call marked `xla_cpu_small_call`, `Config.small_call`); the lean bare "
            "scan runs in XLA's usual kernels, one or more per operation, as a hand-written "
            "`jit(lax.scan)` does by default. fit computes the lecture, mid and big-N networks "
            "feature-major (`model/_rows.py`: activations `(width, B)`, every weight gradient "
            "contracting a contiguous axis); the bare scan, as users write it, vmaps the "
            "one-sample network, whose weight gradients contract the rows, the major axis, on "
            "XLA's slower Eigen path."
        )
    steps = ", ".join(f"{k} {v[7] if mode.quick else v[6]}" for k, v in CASES.items())
    quick_note = (" (PyTorch at most 100; quick run: no padded-scan note, the figures are "
                  "indicative)")  # fmt: skip
    t.notes.append(
        f"Steps a call: {steps}{quick_note if mode.quick else ''}. Adam; the same initial `FFN` for fit and the bare scan "
        "(`init='glorot_uniform'`), PyTorch's own initialisation; PyTorch on the CPU with as "
        "many threads as cores. *Fit first call*: compiling included."
    )
    return [t]
