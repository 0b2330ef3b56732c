"""Cascaded Tanks through eqx_ffn.sysid: the figures of issue 22 (not a pytest module).

Run `python tests/sysid/recipe_cascaded_tanks.py [--quick] [--only 4,6,7]` from the repository
root. It prints:

1. the lecture through the library (2000 Adam steps): largest relative difference of the
   per-step training losses and of the test RMSE against a plain-JAX transcription;
2. speed per step: the library's fit, a bare `jit(lax.scan)` over the steps, the lecture's
   Python loop (one run each after a warm-up, same process);
3. Levenberg-Marquardt: its time to reach the training loss of the lecture's 2000 Adam steps;
4. the recipe under the benchmark's protocol (test initial state estimated from the first 50
   samples, RMSE over samples 50-1023): `l2` chosen on a validation split of the training
   record (its first 80% fitted, the last 20% simulated from a state estimated on its first 50
   samples), never on the test record; then mean and spread over 5 seeds, fitting time per seed;
5. NARX: one-step and free-run test RMSE;
6. truncated simulation (windows from an encoder) against the whole-record Adam fit: test RMSE
   and fitting time over 5 initialisations;
7. `sysid.fit_ensemble` of 16 models against 16 sequential warm fits (Adam and LM).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lecture_sysid as L

import eqx_ffn.sysid as sysid

TRAIN, TEST = sysid.datasets.cascaded_tanks()
N_INIT = 50


def benchmark_rmse(model) -> float:
    """The benchmark's protocol: x0 from the first 50 test samples, RMSE over samples 50-1023."""
    x0 = sysid.estimate_initial_state(model, TEST, N_INIT)
    return float(sysid.rmse(TEST.y, sysid.simulate(model, TEST.u, x0), skip=N_INIT)[0])


def lecture_equality(steps: int) -> float:
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    fitted, x0, hist = sysid.fit(model, TRAIN, learning_rate=1e-3, steps=steps)
    ref_vars, ref_losses = L.train_python_loop(steps)
    _, jit_losses = L.train_python_loop(steps, jit_update=True)
    _, scan_losses = L.train_bare_scan(steps)

    def rel(a, b):
        return np.max(np.abs(a - b) / b)

    lib_rmse = float(sysid.rmse(TEST.y, sysid.simulate(fitted, TEST.u, x0))[0])
    ref_rmse = L.lecture_test_rmse(ref_vars)
    print(
        f"1. lecture, {steps} Adam steps: max rel. loss difference library vs the lecture's loop "
        f"{rel(hist.loss, ref_losses):.2e}, vs the loop with a jitted update "
        f"{rel(hist.loss, jit_losses):.2e}, vs a bare scan {rel(hist.loss, scan_losses):.2e} "
        f"(the two loops differ by {rel(jit_losses, ref_losses):.2e}: float32 rounding of the "
        f"eager update); test RMSE {lib_rmse:.5f} V (library) vs {ref_rmse:.5f} V, rel. "
        f"{abs(lib_rmse - ref_rmse) / ref_rmse:.2e}; final training loss {hist.loss[-1]:.5f}"
    )
    return float(ref_losses[-1])


def speed(steps: int) -> None:
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    sysid.fit(model, TRAIN, steps=10)  # compile
    L.train_bare_scan(steps), L.train_python_loop(10)  # compile
    t = time.perf_counter()
    _, _, hist = sysid.fit(model, TRAIN, steps=steps)
    lib = (time.perf_counter() - t) / steps
    t = time.perf_counter()
    jax.block_until_ready(L.train_bare_scan(steps)[0])
    bare = (time.perf_counter() - t) / steps
    t = time.perf_counter()
    jax.block_until_ready(L.train_python_loop(steps)[0])
    loop = (time.perf_counter() - t) / steps
    print(
        f"2. per step: library {lib * 1e3:.2f} ms, bare jit(lax.scan) {bare * 1e3:.2f} ms "
        f"({lib / bare:.2f}x), lecture's Python loop {loop * 1e3:.2f} ms ({loop / lib:.2f}x "
        f"slower than the library); compile_time {hist.compile_time:.2f} s"
    )


def lm_vs_adam(target: float, adam_steps: int) -> None:
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    sysid.fit(model, TRAIN, steps=10), sysid.fit(model, TRAIN, optimizer="lm", steps=2)
    _, _, probe = sysid.fit(model, TRAIN, optimizer="lm", steps=60)
    hit = np.nonzero(probe.loss <= target)[0]
    if not len(hit):
        print(f"3. LM did not reach {target:.5f} in 60 iterations (best {probe.loss.min():.5f})")
        return
    n = int(hit[0]) + 1  # iterations until the loss at the start of one is <= target
    t = time.perf_counter()
    sysid.fit(model, TRAIN, optimizer="lm", steps=n)
    lm_time = time.perf_counter() - t
    t = time.perf_counter()
    sysid.fit(model, TRAIN, steps=adam_steps)
    adam_time = time.perf_counter() - t
    print(
        f"3. LM reaches the {adam_steps}-Adam-step loss {target:.5f} in {n - 1} iterations, "
        f"{lm_time:.2f} s; Adam {adam_time:.2f} s: {adam_time / lm_time:.1f}x"
    )


RESTARTS, KEEP = 8, 3
L2_GRID = (1e-3, 1e-2, 3e-2, 1e-1)


def choose_l2() -> float:
    """The `l2` of `L2_GRID` whose recipe (seed 0) simulates the training record's last 20%
    best when fitted on its first 80% (the test record is not looked at)."""
    fit_part, val_part = TRAIN.split(0.8)
    val_part = sysid.Experiment(val_part.u, val_part.y, val_part.ts, "validation", n_init=N_INIT)
    scores = {}
    for l2 in L2_GRID:
        models = recipe(0, l2, fit_part)
        sims = [
            sysid.simulate(m, val_part.u, sysid.estimate_initial_state(m, val_part)) for m in models
        ]
        scores[l2] = float(sysid.rmse(val_part.y, np.mean(sims, axis=0), skip=N_INIT)[0])
    best = min(scores, key=scores.__getitem__)
    print(f"4a. l2 by validation RMSE (train's last 20%): {scores}; chosen l2={best:g}")
    return best


def recipe(seed: int, l2: float, train=TRAIN) -> list:
    """The recipe: restarts of a small residual state-space model fitted by LM, an ensemble.

    `RESTARTS` models `NeuralStateSpace(1, 2, 1, (16,))` (the lecture's architecture and
    initialisation scheme, keys from `seed`) get 50 Levenberg-Marquardt iterations on the whole
    training record's simulation error with `l2` (one `sysid.fit_ensemble` call); the `KEEP`
    lowest training losses get 150 more (another); those within 1.5x the lowest training loss
    form the ensemble, whose prediction is the mean of the members' simulations (each with its
    own initial-state estimate). Only the training record is used to choose.
    """
    models = [
        sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.fold_in(jr.key(seed), r))
        for r in range(RESTARTS)
    ]
    models, x0s, hists = sysid.fit_ensemble(models, train, optimizer="lm", steps=50, l2=l2)
    order = np.argsort([h.final_loss for h in hists])[:KEEP]
    models, _, hists = sysid.fit_ensemble(
        [models[i] for i in order], train, optimizer="lm", steps=150, l2=l2,
        x0=np.stack([x0s[i] for i in order]),
    )  # fmt: skip
    losses = [h.final_loss for h in hists]
    return [m for m, loss in zip(models, losses) if loss <= 1.5 * min(losses)]


def ensemble_rmse(models) -> float:
    """The benchmark's score of the mean of the members' simulations."""
    sims = []
    for m in models:
        x0 = sysid.estimate_initial_state(m, TEST, N_INIT)
        sims.append(np.asarray(sysid.simulate(m, TEST.u, x0)))
    return float(sysid.rmse(TEST.y, np.mean(sims, axis=0), skip=N_INIT)[0])


def quality(seeds: int) -> None:
    l2 = choose_l2()
    recipe(99, l2)  # compile
    scores, singles, times = [], [], []
    for seed in range(seeds):
        t = time.perf_counter()
        models = recipe(seed, l2)
        times.append(time.perf_counter() - t)
        scores.append(ensemble_rmse(models))
        singles.append(benchmark_rmse(models[0]))
    s, one = np.array(scores), np.array(singles)
    print(
        f"4. recipe test RMSE over {seeds} seeds: {np.round(s, 3).tolist()} V; mean "
        f"{s.mean():.3f} V, std {s.std():.3f} V (its member of lowest training loss alone: mean {one.mean():.3f}"
        f" V, std {one.std():.3f} V); fitting time per seed {np.mean(times):.1f} s (max "
        f"{np.max(times):.1f} s)"
    )


def narx() -> None:
    model = sysid.NARX(1, 1, na=2, nb=2, nk=1, hidden_sizes=(16,), key=jr.key(0))
    one, _, _ = sysid.fit(model, TRAIN, criterion="one_step", optimizer="lm", steps=50, l2=1e-4)
    sim, _, _ = sysid.fit(one, TRAIN, optimizer="lm", steps=50, l2=1e-4)
    for name, m in (("one-step fit", one), ("then simulation fit", sim)):
        pred = sysid.predict(m, TEST, k=1)
        one_rmse = float(sysid.rmse(TEST.y, pred, skip=max(N_INIT, m.lag))[0])
        print(
            f"5. NARX(na=2, nb=2) {name}: one-step test RMSE {one_rmse:.3f} V, free-run "
            f"{benchmark_rmse(m):.3f} V"
        )


TRUNCATED = dict(
    criterion="truncated",
    window=64,
    batch_size=16,
    encoder={"n_init": 20, "hidden_sizes": (16,)},
    learning_rate=5e-3,
)


def truncated_vs_whole(seeds: int, steps: int) -> None:
    """Adam on the whole record (`steps`, the lecture's 1e-3) against truncated simulation
    (`TRUNCATED`, 1000 steps) from the same initialisations; benchmark protocol scores."""
    m = sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(0))
    sysid.fit(m, TRAIN, steps=2), sysid.fit(m, TRAIN, steps=2, **TRUNCATED)  # compile
    rows = {"whole": [], "truncated": []}
    for seed in range(seeds):
        m = sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(seed))
        for name, kw in (("whole", {"steps": steps}), ("truncated", {"steps": 1000, **TRUNCATED})):
            t = time.perf_counter()
            fitted, _, _ = (
                sysid.fit(m, TRAIN, key=jr.key(seed), **kw)
                if name == "truncated"
                else sysid.fit(m, TRAIN, **kw)
            )
            seconds = time.perf_counter() - t
            rows[name].append((benchmark_rmse(fitted), seconds))
    for name, r in rows.items():
        a = np.array(r)
        print(
            f"6. {name}: test RMSE mean {a[:, 0].mean():.3f} V (std {a[:, 0].std():.3f}, "
            f"{np.round(a[:, 0], 3).tolist()}), fitting time mean {a[:, 1].mean():.2f} s"
        )


def ensemble_speed() -> None:
    models = [sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(i)) for i in range(16)]
    for opt, steps in (("adam", 300), ("lm", 30)):
        lr = 1e-3 if opt == "adam" else None
        sysid.fit(models[0], TRAIN, optimizer=opt, learning_rate=lr, steps=2)  # compile
        sysid.fit_ensemble(models, TRAIN, optimizer=opt, learning_rate=lr, steps=2)
        t = time.perf_counter()
        for m in models:
            sysid.fit(m, TRAIN, optimizer=opt, learning_rate=lr, steps=steps)
        seq = time.perf_counter() - t
        t = time.perf_counter()
        sysid.fit_ensemble(models, TRAIN, optimizer=opt, learning_rate=lr, steps=steps)
        ens = time.perf_counter() - t
        print(
            f"7. {opt} {steps} steps: 16 sequential warm fits {seq:.2f} s, one fit_ensemble "
            f"{ens:.2f} s ({seq / ens:.2f}x)"
        )


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    steps = 200 if quick else 2000
    run = lambda n: only is None or str(n) in only  # noqa: E731
    target = lecture_equality(steps) if run(1) or run(3) else 0.0
    if run(2):
        speed(steps)
    if run(3):
        lm_vs_adam(target, steps)
    if run(4):
        quality(2 if quick else 5)
    if run(5):
        narx()
    if run(6):
        truncated_vs_whole(2 if quick else 5, steps)
    if run(7):
        ensemble_speed()
