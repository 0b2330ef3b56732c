"""Issue 12: scikit-learn's shipped tables, `FFNRegressor` / `FFNClassifier` against
`MLPRegressor` / `MLPClassifier`, both with their defaults, and a `GridSearchCV` over both.

- Tables: diabetes (regression, test R²), wine, breast cancer, digits (classification, test
  accuracy); one split (`train_test_split(test_size=0.25, random_state=0)`, stratified for
  classes). scikit-learn's estimators get `StandardScaler` inputs in a `Pipeline`, as their
  documentation advises; ours standardise inside (`standardize=True`, the default, which also
  scales a regression target). For information, on the regression table, `MLPRegressor` with
  its target standardised too (`TransformedTargetRegressor`): what ours does by default.
- Target (per table): ours within 0.02 of scikit-learn's (mean over the seeds; `random_state` 0,
  and 1, 2 in the full mode).
- Wall time of `fit`: ours the first fit of its network in this process (compiling included) and
  the best of the warm refits (same settings: no compiling); scikit-learn's the best of its fits.
  The training programs each table compiled (`eqx_ffn.training._engine.compile_count`): one on the first
  fit of a network, none on the refits.
- Grid search: `GridSearchCV` over `learning_rate_init` in {1e-3, 3e-3, 1e-2} x `alpha` in
  {1e-4, 1e-2}, 5 folds (30 fits and the refit), on diabetes with one architecture (the default,
  100 ReLU units). Ours runs first thing in a fresh process (`--grid-worker`: nothing compiled
  before it; JAX keeps compiled executables of its own, so emptying eqx_ffn's program cache here
  would not make it cold). Target: at most 2 training programs (the training sizes of the folds
  and of the refit, 264, 265 and 331 rows, share one padded size). Wall time against the same
  search over `MLPRegressor`; ours again in the same process (warm).

`run(mode)` returns the figures; `python -m benchmarks.sklearn_tables [--quick]` prints them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import Mode, check, compile_count, delta

TABLES = ("diabetes", "wine", "breast_cancer", "digits")
GRID = {"learning_rate_init": [1e-3, 3e-3, 1e-2], "alpha": [1e-4, 1e-2]}
FOLDS = 5
QUALITY_GAP = 0.02  # ours may trail scikit-learn's test score by at most this much
MAX_PROGRAMS = 2  # training programs the grid search may compile


def _split(name: str):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    classify = name != "diabetes"
    parts = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y if classify else None)
    return classify, parts


def _fit_timed(make: Callable[[], Any], x: Any, y: Any) -> tuple[float, Any]:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est = make().fit(x, y)
        return time.perf_counter() - t0, est


def table(name: str, mode: Mode) -> dict[str, Any]:
    """One table: quality, iterations and fit wall time, ours against scikit-learn's."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eqx_ffn.sklearn import FFNClassifier, FFNRegressor

    classify, (x_tr, x_te, y_tr, y_te) = _split(name)
    ours_cls = FFNClassifier if classify else FFNRegressor
    theirs_cls = MLPClassifier if classify else MLPRegressor

    def theirs(seed: int) -> Any:
        return make_pipeline(StandardScaler(), theirs_cls(random_state=seed))

    seeds = (0,) if mode.quick else (0, 1, 2)
    rows = []
    first_s = first_programs = None
    for seed in seeds:
        before = compile_count()
        t, ours = _fit_timed(lambda s=seed: ours_cls(random_state=s), x_tr, y_tr)
        if first_s is None:
            first_s, first_programs = t, delta(compile_count(), before)
        t_sk, sk = _fit_timed(lambda s=seed: theirs(s), x_tr, y_tr)
        row = {
            "seed": seed,
            "ours": float(ours.score(x_te, y_te)),
            "sklearn": float(sk.score(x_te, y_te)),
            "ours_n_iter": int(ours.n_iter_),
            "sklearn_n_iter": int(sk[-1].n_iter_),
            "sklearn_max_iter": int(sk[-1].max_iter),
            "ours_fit_s": t,
            "sklearn_fit_s": t_sk,
        }
        if not classify:  # for information: scikit-learn with its target standardised too
            _, sk_y = _fit_timed(
                lambda s=seed: TransformedTargetRegressor(theirs(s), transformer=StandardScaler()),
                x_tr,
                y_tr,
            )
            row["sklearn_scaled_y"] = float(sk_y.score(x_te, y_te))
        rows.append(row)
    before = compile_count()
    warm = [
        _fit_timed(lambda: ours_cls(random_state=0), x_tr, y_tr)[0] for _ in range(mode.repeats)
    ]
    warm_programs = delta(compile_count(), before)
    sk_times = [r["sklearn_fit_s"] for r in rows]
    if not mode.quick:  # scikit-learn's fits take seconds on the larger tables: the full mode
        sk_times += [
            _fit_timed(lambda: theirs(0), x_tr, y_tr)[0]
            for _ in range(max(0, mode.repeats - len(rows)))
        ]
    ours_q = float(np.mean([r["ours"] for r in rows]))
    theirs_q = float(np.mean([r["sklearn"] for r in rows]))
    out = {
        "table": name,
        "metric": "accuracy" if classify else "R²",
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "n_features": int(np.shape(x_tr)[1]),
        "seeds": len(seeds),
        "ours": ours_q,
        "sklearn": theirs_q,
        "ours_minus_sklearn": ours_q - theirs_q,
        "within_0.02": ours_q >= theirs_q - QUALITY_GAP,
        "ours_first_fit_s": first_s,
        "ours_first_fit_programs": first_programs,
        "ours_warm_fit_s": min(warm),
        "ours_warm_fit_programs": warm_programs,
        "sklearn_fit_s": min(sk_times),
        "sklearn_fits_timed": len(sk_times),
        "ours_n_iter": float(np.mean([r["ours_n_iter"] for r in rows])),
        "sklearn_n_iter": float(np.mean([r["sklearn_n_iter"] for r in rows])),
        "sklearn_hit_max_iter": all(r["sklearn_n_iter"] >= r["sklearn_max_iter"] for r in rows),
        "per_seed": rows,
    }
    if not classify:
        out["sklearn_scaled_y"] = float(np.mean([r["sklearn_scaled_y"] for r in rows]))
    return out


def _our_search() -> Any:
    from sklearn.model_selection import GridSearchCV

    from eqx_ffn.sklearn import FFNRegressor

    return GridSearchCV(FFNRegressor(random_state=0), GRID, cv=FOLDS)


def grid_worker() -> dict[str, Any]:
    """Our `GridSearchCV`, run first thing in a fresh process (`--grid-worker`): its training
    programs, every XLA compile, its wall time; then the same search again (warm)."""
    from ._common import XlaCompiles

    snap = XlaCompiles.snapshot()
    _, (x_tr, _, y_tr, _) = _split("diabetes")
    before = compile_count()
    t_cold, cold = _fit_timed(_our_search, x_tr, y_tr)
    programs = delta(compile_count(), before)
    xla_n, xla_s = XlaCompiles.since(snap)
    before = compile_count()
    t_warm, _ = _fit_timed(_our_search, x_tr, y_tr)
    return {
        "ours_s": t_cold,
        "ours_compiles": programs,
        "ours_xla_compiles": xla_n,
        "ours_xla_compile_s": xla_s,
        "ours_warm_s": t_warm,
        "ours_compiles_warm": delta(compile_count(), before),
        "ours_best_params": cold.best_params_,
        "ours_best_cv_r2": float(cold.best_score_),
    }


def grid_search(mode: Mode) -> dict[str, Any]:
    """The same `GridSearchCV` over `FFNRegressor` (in a fresh process: nothing compiled before
    it) and over `MLPRegressor` (here), on diabetes."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eqx_ffn.training import _engine

    from ._common import python_process

    process_s, ours = python_process(["-m", "benchmarks.sklearn_tables", "--grid-worker"])
    _, (x_tr, _, y_tr, _) = _split("diabetes")
    fits = FOLDS * len(GRID["learning_rate_init"]) * len(GRID["alpha"]) + 1  # + the refit
    their_grid = {f"mlpregressor__{k}": v for k, v in GRID.items()}

    def theirs() -> Any:
        return GridSearchCV(
            make_pipeline(StandardScaler(), MLPRegressor(random_state=0)), their_grid, cv=FOLDS
        )

    sk = [_fit_timed(theirs, x_tr, y_tr) for _ in range(mode.slow_repeats)]
    t_sk = min(t for t, _ in sk)
    their_best = sk[-1][1]
    n = len(x_tr)
    sizes = sorted({n - len(fold) for fold in np.array_split(np.arange(n), FOLDS)} | {n})
    return {
        "table": "diabetes",
        "grid": GRID,
        "folds": FOLDS,
        "fits": fits,
        "training_sizes": sizes,
        "size_buckets": sorted({_engine.bucket(s) for s in sizes}),
        **ours,
        "ours_process_s": process_s,
        "sklearn_s": t_sk,
        "ours_over_sklearn": ours["ours_s"] / t_sk,
        "ours_warm_over_sklearn": ours["ours_warm_s"] / t_sk,
        "sklearn_best_params": {k.split("__")[1]: v for k, v in their_best.best_params_.items()},
        "sklearn_best_cv_r2": float(their_best.best_score_),
    }


def _checks(tables: list[dict[str, Any]], grid: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in tables:
        if "error" in t:
            out.append(
                check(f"{t['table']}: within {QUALITY_GAP} of scikit-learn", None, "", False, 12)
            )
            continue
        peer = "MLPClassifier" if t["metric"] == "accuracy" else "MLPRegressor"
        out.append(
            check(
                f"{t['table']}: test {t['metric']} of the defaults within {QUALITY_GAP} of "
                f"{peer}'s",
                t["ours_minus_sklearn"],
                f">= -{QUALITY_GAP}",
                bool(t["within_0.02"]),
                12,
                how=f"ours {t['ours']:.4f}, scikit-learn {t['sklearn']:.4f} (mean of "
                f"{t['seeds']} seed{'s' if t['seeds'] > 1 else ''}, one split)",
            )
        )
    if "error" in grid:
        out.append(check("GridSearchCV training programs", None, "", False, 12, how=grid["error"]))
    else:
        n = grid["ours_compiles"]
        out.append(
            check(
                f"GridSearchCV 3 learning rates x 2 alphas x {grid['folds']} folds compiles at "
                f"most {MAX_PROGRAMS} training programs",
                None if n is None else float(n),
                f"<= {MAX_PROGRAMS}",
                None if n is None else n <= MAX_PROGRAMS,
                12,
                how=f"{grid['fits']} fits, first thing in a fresh process; training sizes "
                f"{grid['training_sizes']} in buckets {grid['size_buckets']}; wall time "
                f"{grid['ours_s']:.2f} s (warm {grid['ours_warm_s']:.2f} s) against "
                f"MLPRegressor's {grid['sklearn_s']:.2f} s",
            )
        )
    return out


def _guarded(fn: Callable[..., dict[str, Any]], name: str, *args: Any) -> dict[str, Any]:
    """`fn(*args)`, or its error: one table failing must not lose the others' figures."""
    try:
        return fn(*args)
    except Exception as e:
        return {"table": name, "error": f"{type(e).__name__}: {e}"}


def run(mode: Mode) -> dict[str, Any]:
    tables = [_guarded(table, name, name, mode) for name in TABLES]
    grid = _guarded(grid_search, "diabetes", mode)
    return {
        "title": "scikit-learn's tables: FFNRegressor/FFNClassifier vs MLPRegressor/MLPClassifier "
        "(issue 12)",
        "how": "defaults on both sides; one split (25% test); MLP* in a Pipeline with "
        "StandardScaler; wall times of fit (ours: the first fit compiles, warm fits reuse)",
        "tables": tables,
        "grid_search": grid,
        "checks": _checks(tables, grid),
    }


def _print(result: dict[str, Any]) -> None:
    print(result["title"])
    head = "table          metric    ours   sklearn  diff    ours 1st s  ours warm s  sklearn s"
    print(head)
    for r in result["tables"]:
        if "error" in r:
            print(f"{r['table']:<14} failed: {r['error']}")
            continue
        print(
            f"{r['table']:<14} {r['metric']:<8} {r['ours']:6.3f}  {r['sklearn']:6.3f}  "
            f"{r['ours_minus_sklearn']:+6.3f}  {r['ours_first_fit_s']:10.2f}  "
            f"{r['ours_warm_fit_s']:11.2f}  {r['sklearn_fit_s']:9.2f}"
        )
    g = result["grid_search"]
    if "error" in g:
        print(f"GridSearchCV failed: {g['error']}")
    else:
        print(
            f"GridSearchCV ({g['fits']} fits, diabetes): ours {g['ours_s']:.1f} s "
            f"({g['ours_compiles']} programs compiled; warm {g['ours_warm_s']:.1f} s; best CV R² "
            f"{g['ours_best_cv_r2']:.3f}), MLPRegressor {g['sklearn_s']:.1f} s (best CV R² "
            f"{g['sklearn_best_cv_r2']:.3f})"
        )
    for c in result["checks"]:
        verdict = "n/a" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        print(f"{verdict}: {c['name']}: {c['value']} (target {c['target']}) [{c['how']}]")


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, three timed repeats")
    parser.add_argument(
        "--grid-worker", action="store_true", help="(internal) our grid search; one JSON line"
    )
    args = parser.parse_args()
    if args.grid_worker:
        import json

        print(json.dumps(grid_worker()))
        raise SystemExit(0)
    print(f"load average {os.getloadavg()[0]:.1f}")
    _print(run(Mode(args.quick)))
