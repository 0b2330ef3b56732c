"""Dynamical systems on Cascaded Tanks through `eqx_ffn.sysid` (issues 22 and 23).

1. the next lecture through the library (Adam 1e-3 on the whole record): largest relative
   difference of the per-step training losses and of the test RMSE against the plain-JAX
   transcription the tests use (`tests/sysid/lecture_sysid.py`);
2. speed per step: the library's fit, a bare `jit(lax.scan)` over the steps, the lecture's
   Python loop (same process, after a warm-up);
3. Levenberg-Marquardt: its time to the training loss of the lecture's Adam steps;
4. the recipe under the benchmark's protocol (test initial state estimated from the first 50
   samples, RMSE over samples 50-1023): `l2` chosen by blocked 5-fold cross-validation on the
   training record (`choose_l2`), never on the test record; mean and spread over seeds,
   fitting time per seed;
5. NARX: one-step and free-run test RMSE;
6. truncated simulation (windows, encoder) against the whole-record Adam fit;
7. `sysid.fit_ensemble` of 16 models against 16 sequential warm fits.

Silverbox's recipe (10 minutes of fitting) runs on its own: `python tests/sysid/recipe_silverbox.py`.
The data: M. Schoukens, P. Mattson, T. Wigren, J.-P. Noel, "Cascaded tanks benchmark combining
soft and hard nonlinearities", Workshop on Nonlinear System Identification Benchmarks, 2016.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import eqx_ffn.sysid as sysid

from ._common import Mode
from ._report import Check, Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sysid"))
import lecture_sysid as L

TITLE = "Dynamical systems: the next lecture and the Cascaded Tanks recipe (issues 22, 23)"

TRAIN, TEST = sysid.datasets.cascaded_tanks()
N_INIT = 50


def benchmark_rmse(model) -> float:
    """The benchmark's protocol: x0 from the first 50 test samples, RMSE over samples 50-1023."""
    x0 = sysid.estimate_initial_state(model, TEST, N_INIT)
    return float(sysid.rmse(TEST.y, sysid.simulate(model, TEST.u, x0), skip=N_INIT)[0])


def lecture_equality(steps: int, eager: bool = True) -> dict:
    """The library's per-step losses and test RMSE against the transcription's loops (the eager
    one too when `eager`; a quick run's check reads the jitted one)."""
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    fitted, x0, hist = sysid.fit(model, TRAIN, learning_rate=1e-3, steps=steps)
    jit_vars, jit_losses = L.train_python_loop(steps, jit_update=True)
    ref_vars, ref_losses = L.train_python_loop(steps) if eager else (jit_vars, jit_losses)
    _, scan_losses = L.train_bare_scan(steps)

    def rel(a, b):
        return np.max(np.abs(a - b) / b)

    lib_rmse = float(sysid.rmse(TEST.y, sysid.simulate(fitted, TEST.u, x0))[0])
    ref_rmse = L.lecture_test_rmse(ref_vars)
    return {
        "loop": rel(hist.loss, ref_losses) if eager else None, "jit_loop": rel(hist.loss, jit_losses),
        "scan": rel(hist.loss, scan_losses), "loops": rel(jit_losses, ref_losses) if eager else None,
        "rmse": lib_rmse, "ref_rmse": ref_rmse, "rmse_rel": abs(lib_rmse - ref_rmse) / ref_rmse,
        "target": float(ref_losses[-1]),
    }  # fmt: skip


def speed(steps: int) -> dict:
    """Seconds per step: the minimums over 3 interleaved rounds of the library's fit, the bare
    scan and the lecture's loop (which jits its gradient anew on every call, as the lecture's
    code does)."""
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    sysid.fit(model, TRAIN, steps=10)  # compile
    L.train_bare_scan(steps)  # compile
    lib, bare, loop, hist = [], [], [], None
    for _ in range(3):
        t = time.perf_counter()
        _, _, hist = sysid.fit(model, TRAIN, steps=steps)
        lib.append((time.perf_counter() - t) / steps)
        t = time.perf_counter()
        jax.block_until_ready(L.train_bare_scan(steps)[0])
        bare.append((time.perf_counter() - t) / steps)
        t = time.perf_counter()
        jax.block_until_ready(L.train_python_loop(steps)[0])
        loop.append((time.perf_counter() - t) / steps)
    assert hist is not None
    return {"library": min(lib), "bare": min(bare), "loop": min(loop), "compile": hist.compile_time}


def lm_vs_adam(target: float, adam_steps: int) -> dict:
    model = sysid.NeuralStateSpace.from_params(L.init_params())
    sysid.fit(model, TRAIN, steps=10), sysid.fit(model, TRAIN, optimizer="lm", steps=2)
    _, _, probe = sysid.fit(model, TRAIN, optimizer="lm", steps=60)
    hit = np.nonzero(probe.loss <= target)[0]
    if not len(hit):
        return {"iterations": None, "lm": None, "adam": None}
    n = int(hit[0]) + 1  # iterations until the loss at the start of one is <= target
    t = time.perf_counter()
    sysid.fit(model, TRAIN, optimizer="lm", steps=n)
    lm_time = time.perf_counter() - t
    t = time.perf_counter()
    sysid.fit(model, TRAIN, steps=adam_steps)
    adam_time = time.perf_counter() - t
    return {"iterations": n - 1, "lm": lm_time, "adam": adam_time}


HIDDEN, RESTARTS, KEEP, FIRST, SECOND, RATIO = (32,), 8, 4, 50, 100, 2.0
"""The recipe's sizes: the state network's hidden widths, restarts, members refined, LM
iterations of the two phases, and the training-loss ratio within which a refined member joins
the ensemble."""
L2_GRID = (1e-3, 1e-2, 3e-2, 1e-1)
FOLDS = 5


def _segment(a: int, b: int, n_init: int = 0) -> sysid.Experiment:
    """Samples `[a, b)` of the training record."""
    return sysid.Experiment(TRAIN.u[a:b], TRAIN.y[a:b], TRAIN.ts, n_init=n_init)


def choose_l2() -> tuple[float, dict]:
    """The `l2` of `L2_GRID` with the lowest blocked cross-validation error on the training
    record (the test record is not looked at).

    The record is cut into `FOLDS` (5) contiguous blocks; for each block the recipe (seed 0)
    is fitted on the rest (the samples before and after it as two records, each with its own
    initial state) and the block is simulated, its initial state estimated from its first 50
    samples; the score is the mean over blocks of the ensemble's RMSE after those 50.
    """
    edges = np.linspace(0, TRAIN.T, FOLDS + 1).astype(int)
    scores = {}
    for l2 in L2_GRID:
        errors = []
        for a, b in itertools.pairwise(edges):
            rest = [_segment(s, e) for s, e in ((0, a), (b, TRAIN.T)) if e > s]
            held_out = _segment(a, b, N_INIT)
            models = recipe(0, l2, rest)
            sims = [
                sysid.simulate(m, held_out.u, sysid.estimate_initial_state(m, held_out))
                for m in models
            ]
            errors.append(float(sysid.rmse(held_out.y, np.mean(sims, axis=0), skip=N_INIT)[0]))
        scores[l2] = float(np.mean(errors))
    best = min(scores, key=scores.__getitem__)
    return best, scores


def recipe(seed: int, l2: float, train=TRAIN) -> list:
    """The recipe: restarts of a small residual state-space model fitted by LM, an ensemble.

    `RESTARTS` (8) models `NeuralStateSpace(1, 2, 1, HIDDEN)` (`HIDDEN` = (32,); the lecture's
    initialisation scheme, keys `jr.fold_in(jr.key(seed), r)`) get `FIRST` (50)
    Levenberg-Marquardt iterations on the whole training record's simulation error with `l2`
    (one `sysid.fit_ensemble` call); the `KEEP` (4) lowest training losses get `SECOND` (100)
    more from where they stopped (another); those within `RATIO` (2x) the lowest training loss
    form the ensemble, whose prediction is the mean of the members' simulations (each with its
    own initial-state estimate). Only the training record is used to choose.
    """
    models = [
        sysid.NeuralStateSpace(1, 2, 1, HIDDEN, key=jr.fold_in(jr.key(seed), r))
        for r in range(RESTARTS)
    ]
    models, x0s, hists = sysid.fit_ensemble(models, train, optimizer="lm", steps=FIRST, l2=l2)
    order = np.argsort([h.final_loss for h in hists])[:KEEP]
    models, _, hists = sysid.fit_ensemble(
        [models[i] for i in order], train, optimizer="lm", steps=SECOND, l2=l2,
        x0=np.stack([x0s[i] for i in order]),
    )  # fmt: skip
    losses = [h.final_loss for h in hists]
    return [m for m, loss in zip(models, losses, strict=True) if loss <= RATIO * min(losses)]


def ensemble_rmse(models) -> float:
    """The benchmark's score of the mean of the members' simulations."""
    sims = []
    for m in models:
        x0 = sysid.estimate_initial_state(m, TEST, N_INIT)
        sims.append(np.asarray(sysid.simulate(m, TEST.u, x0)))
    return float(sysid.rmse(TEST.y, np.mean(sims, axis=0), skip=N_INIT)[0])


def quality(seeds: int) -> dict:
    """The recipe's scores over `seeds`, `l2` chosen by `choose_l2`."""
    l2, l2_scores = choose_l2()
    recipe(99, l2)  # compile
    scores, singles, times = [], [], []
    for seed in range(seeds):
        t = time.perf_counter()
        models = recipe(seed, l2)
        times.append(time.perf_counter() - t)
        scores.append(ensemble_rmse(models))
        singles.append(benchmark_rmse(models[0]))
    return {"l2": l2, "l2_scores": l2_scores, "scores": scores, "singles": singles,
            "times": times}  # fmt: skip


def narx(steps: int = 50) -> dict:
    """One-step LM fit, then LM on the simulation error from there."""
    model = sysid.NARX(1, 1, na=2, nb=2, nk=1, hidden_sizes=(16,), key=jr.key(0))
    one, _, _ = sysid.fit(model, TRAIN, criterion="one_step", optimizer="lm", steps=steps, l2=1e-4)
    sim, _, _ = sysid.fit(one, TRAIN, optimizer="lm", steps=steps, l2=1e-4)
    out = {}
    for name, m in (("one-step fit", one), ("then simulation fit", sim)):
        pred = sysid.predict(m, TEST, k=1)
        one_rmse = float(sysid.rmse(TEST.y, pred, skip=max(N_INIT, m.lag))[0])
        out[name] = (one_rmse, benchmark_rmse(m))
    return out


TRUNCATED = dict(
    criterion="truncated",
    window=64,
    batch_size=16,
    encoder={"n_init": 20, "hidden_sizes": (16,)},
    learning_rate=5e-3,
)


def truncated_vs_whole(seeds: int, steps: int, truncated_steps: int = 1000) -> dict:
    """Adam on the whole record (`steps`, the lecture's 1e-3) against truncated simulation
    (`TRUNCATED`, `truncated_steps`) from the same initialisations; benchmark protocol scores."""
    m = sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(0))
    sysid.fit(m, TRAIN, steps=2), sysid.fit(m, TRAIN, steps=2, **TRUNCATED)  # compile
    rows = {"whole": [], "truncated": []}
    for seed in range(seeds):
        m = sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(seed))
        for name, kw in (
            ("whole", {"steps": steps}),
            ("truncated", {"steps": truncated_steps, **TRUNCATED}),
        ):
            t = time.perf_counter()
            fitted, _, _ = (
                sysid.fit(m, TRAIN, key=jr.key(seed), **kw)
                if name == "truncated"
                else sysid.fit(m, TRAIN, **kw)
            )
            seconds = time.perf_counter() - t
            rows[name].append((benchmark_rmse(fitted), seconds))
    return rows


def ensemble_speed(runs: dict) -> dict:
    """Sequential warm fits against one `fit_ensemble`, per optimiser of `runs` (optimiser:
    `(members, steps)`)."""
    out = {}
    for opt, (k, n) in runs.items():
        models = [sysid.NeuralStateSpace(1, 2, 1, (16,), key=jr.key(i)) for i in range(k)]
        lr = 1e-3 if opt == "adam" else None
        sysid.fit(models[0], TRAIN, optimizer=opt, learning_rate=lr, steps=2)  # compile
        sysid.fit_ensemble(models, TRAIN, optimizer=opt, learning_rate=lr, steps=2)
        t = time.perf_counter()
        for m in models:
            sysid.fit(m, TRAIN, optimizer=opt, learning_rate=lr, steps=n)
        seq = time.perf_counter() - t
        t = time.perf_counter()
        sysid.fit_ensemble(models, TRAIN, optimizer=opt, learning_rate=lr, steps=n)
        ens = time.perf_counter() - t
        out[opt] = (k, n, seq, ens)
    return out


def _not_run(name: str, target: str, issue: int) -> Check:
    """A check of the full run, listed by a quick run as not run."""
    return Check(name, None, target, None, issue, FULL_ONLY)


def _judged(name: str, value, target: str, ok: bool, how: str, quick: bool) -> Check:
    """An issue-22 check of the full run; a quick run lists it as not run."""
    if quick:
        return _not_run(name, target, 22)
    return Check(name, value, target, value is not None and ok, 22, how)


FULL_ONLY = "full run only: a quick run skips it"


def run(mode: Mode) -> list[Table]:
    """A quick run measures what its checks judge (the library's losses against the
    transcription's jitted loop, an Adam ensemble against its fits); the sections whose checks
    only the full run judges (the speeds, LM, the recipe, NARX, truncated simulation, the LM
    ensemble) are the full run's, their checks listed as not run."""
    q_ = mode.quick
    steps, seeds = (20, 1) if q_ else (2000, 5)
    eq = lecture_equality(steps, eager=not q_)
    sp = None if q_ else speed(steps)
    lm = {"lm": None} if q_ else lm_vs_adam(eq["target"], steps)
    lecture = Table(
        f"The next lecture through the library: Adam 1e-3, {steps} whole-record steps",
        ["what", "value"], formats="tg",
    )  # fmt: skip
    if eq["loop"] is not None:
        lecture.add("max rel. loss difference, library vs the lecture's loop", eq["loop"])
    lecture.add("... vs the loop with a jitted update", eq["jit_loop"])
    lecture.add("... vs a bare jit(lax.scan)", eq["scan"])
    if eq["loops"] is not None:
        lecture.add("... the two loops against each other (eager update's rounding)", eq["loops"])
    lecture.add(
        "test RMSE (V), library / transcription", f"{eq['rmse']:.5f} / {eq['ref_rmse']:.5f}"
    )
    if sp is not None:
        lecture.add("per step: library (s)", sp["library"])
        lecture.add("per step: bare jit(lax.scan) (s)", sp["bare"])
        lecture.add("per step: the lecture's Python loop (s)", sp["loop"])
    if lm["lm"] is not None:
        lecture.add(f"LM iterations to the {steps}-step Adam loss", lm["iterations"])
        lecture.add("LM time / Adam time", lm["lm"] / lm["adam"])
    if q_:
        lecture.notes.append("A quick run: the library against the jitted loop and the bare scan; "
                             "the eager loop, the speeds and LM are the full run's.")  # fmt: skip
    ratio = None if sp is None else sp["library"] / sp["bare"]
    speedup = None if sp is None else sp["loop"] / sp["library"]
    lm_ratio = None if lm["lm"] is None else lm["lm"] / lm["adam"]

    rounds = "minimums of 3 interleaved rounds"
    lecture.checks += [
        Check("per-step losses equal the transcription's (jitted update)", eq["jit_loop"],
              "<= 1e-5", eq["jit_loop"] <= 1e-5, 22, "max relative difference"),
        _judged("fit per step within 1.2x a bare jit(lax.scan)", ratio, "<= 1.2",
                ratio is not None and ratio <= 1.2, rounds, q_),
        _judged("fit at least 2.5x faster than the lecture's loop", speedup, ">= 2.5",
                speedup is not None and speedup >= 2.5, rounds, q_),
        _judged("LM reaches Adam's loss in at most 1/10 of its time", lm_ratio, "<= 0.1",
                lm_ratio is not None and lm_ratio <= 0.1, "", q_),
    ]  # fmt: skip
    return [lecture, _recipe_table(seeds, q_), *_other_tables(steps, q_)]


def _recipe_table(seeds: int, quick: bool) -> Table:
    t = Table(
        f"The Cascaded Tanks recipe, {seeds} seed(s): test RMSE (V) under the benchmark's protocol",
        ["seed", "ensemble", "lowest-loss member", "fitting (s)"], formats="tggs",
    )  # fmt: skip
    names = ("recipe test RMSE, mean over seeds", "recipe fitting time per seed")
    if quick:
        t.notes.append("Full run only (its targets are the full run's).")
        t.checks += [_not_run(names[0], "<= 0.39 V", 22), _not_run(names[1], "<= 60 s", 22)]
        return t
    q = quality(seeds)
    for i, (a, b, s) in enumerate(zip(q["scores"], q["singles"], q["times"], strict=True)):
        t.add(str(i), a, b, s)
    mean = float(np.mean(q["scores"]))
    t.notes.append(
        "`l2` chosen by blocked 5-fold cross-validation on the training record: "
        f"{q['l2']:g} (mean held-out RMSE by l2: "
        + ", ".join(f"{k:g}: {v:.3f} V" for k, v in q["l2_scores"].items())
        + f"). Mean {mean:.3f} V, std {float(np.std(q['scores'])):.3f} V. The field "
        "(REFERENCE_SYSID section 2): GRU 0.396 V, polynomial NARX 0.413 V, LSTM 0.490 V, the "
        "lecture ~0.5 V."
    )
    worst = float(np.max(q["times"]))
    t.checks += [Check(names[0], mean, "<= 0.39 V", mean <= 0.39, 22, f"{seeds} seed(s)"),
                 Check(names[1], worst, "<= 60 s", worst <= 60, 22)]  # fmt: skip
    return t


def _other_tables(steps: int, quick: bool) -> list[Table]:
    other = Table("NARX, truncated simulation, ensembles", ["what", "value"], formats="tg")
    truncated = "truncated: test RMSE at most the whole-record fit's, in less time"
    if quick:
        other.notes.append("A quick run: NARX, truncated simulation and LM's ensemble are the "
                           "full run's.")  # fmt: skip
        other.checks.append(_not_run(truncated, "RMSE ratio <= 1, time ratio < 1", 23))
    else:
        for name, (one, free) in narx().items():
            other.add(f"NARX(na=2, nb=2) {name}: one-step test RMSE (V)", one)
            other.add(f"NARX(na=2, nb=2) {name}: free-run test RMSE (V)", free)
        rows = truncated_vs_whole(5, steps)
        for name, r in rows.items():
            a = np.array(r)
            other.add(f"{name}: test RMSE mean (V)", float(a[:, 0].mean()))
            other.add(f"{name}: fitting time mean (s)", float(a[:, 1].mean()))
        tr, wh = np.array(rows["truncated"]), np.array(rows["whole"])
        other.checks.append(Check(
            truncated, float(tr[:, 0].mean() / wh[:, 0].mean()), "RMSE ratio <= 1, time ratio < 1",
            bool(tr[:, 0].mean() <= wh[:, 0].mean() and tr[:, 1].mean() < wh[:, 1].mean()), 23,
            "value: RMSE ratio"))  # fmt: skip
    runs = {"adam": (4, 50)} if quick else {"adam": (16, 300), "lm": (16, 30)}
    for opt, (k, n, seq, ens) in ensemble_speed(runs).items():
        other.add(f"{opt} {n} steps: {k} sequential warm fits / one fit_ensemble", seq / ens)
        other.checks.append(Check(f"sysid.fit_ensemble of {k} ({opt}) faster than {k} fits",
                                  seq / ens, "> 1", seq / ens > 1, 23))  # fmt: skip
    if quick:
        other.checks.append(
            _not_run("sysid.fit_ensemble of 16 (lm) faster than 16 fits", "> 1", 23)
        )
    return [other]
