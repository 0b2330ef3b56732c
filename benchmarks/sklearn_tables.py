"""scikit-learn's shipped tables: `FFNRegressor` / `FFNClassifier` against `MLPRegressor` /
`MLPClassifier`, both with their defaults, and a `GridSearchCV` over both.

- Tables: diabetes (regression, test R²), wine, breast cancer, digits (classification, test
  accuracy); one split (`train_test_split(test_size=0.25, random_state=0)`, stratified for
  classes). scikit-learn's estimators get `StandardScaler` inputs in a `Pipeline`, as their
  documentation advises; ours standardise inside (`standardize=True`, the default).
- Wall time of `fit`: ours the first fit of its network in this process (compiling included) and
  the best of the warm refits (same settings: no compiling); scikit-learn's the best of its
  fits. Quality and `n_iter_` per seed (`random_state` 0, and 1, 2 in the full mode).
- Grid search: `GridSearchCV` over `learning_rate_init` in {1e-3, 3e-3, 1e-2} x `alpha` in
  {1e-4, 1e-2}, 5 folds, on diabetes with one architecture (the default, 100 ReLU units): wall
  time against the same search over `MLPRegressor`, and how many training programs eqx_ffn
  compiled (`eqx_ffn._engine.compile_count`).

`run(mode)` returns the figures; `python -m benchmarks.sklearn_tables [--quick]` prints them.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ._common import Mode, compile_count, delta

TABLES = ("diabetes", "wine", "breast_cancer", "digits")
GRID = {"learning_rate_init": [1e-3, 3e-3, 1e-2], "alpha": [1e-4, 1e-2]}
FOLDS = 5


def _split(name: str):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    classify = name != "diabetes"
    parts = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y if classify else None)
    return classify, parts


def _fit_timed(make, x, y) -> tuple[float, Any]:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est = make().fit(x, y)
        return time.perf_counter() - t0, est


def table(name: str, mode: Mode) -> dict[str, Any]:
    """One table: quality, iterations and fit wall time, ours against scikit-learn's."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eqx_ffn.sklearn import FFNClassifier, FFNRegressor

    classify, (x_tr, x_te, y_tr, y_te) = _split(name)
    ours_cls = FFNClassifier if classify else FFNRegressor
    theirs_cls = MLPClassifier if classify else MLPRegressor
    seeds = (0,) if mode.quick else (0, 1, 2)
    rows = []
    first_s = None
    for seed in seeds:
        t, ours = _fit_timed(lambda s=seed: ours_cls(random_state=s), x_tr, y_tr)
        first_s = t if first_s is None else first_s
        t_sk, theirs = _fit_timed(
            lambda s=seed: make_pipeline(StandardScaler(), theirs_cls(random_state=s)), x_tr, y_tr
        )
        rows.append(
            {
                "seed": seed,
                "ours": float(ours.score(x_te, y_te)),
                "sklearn": float(theirs.score(x_te, y_te)),
                "ours_n_iter": int(ours.n_iter_),
                "sklearn_n_iter": int(theirs[-1].n_iter_),
                "sklearn_fit_s": t_sk,
            }
        )
    warm = [
        _fit_timed(lambda: ours_cls(random_state=0), x_tr, y_tr)[0] for _ in range(mode.repeats)
    ]
    sk = [r["sklearn_fit_s"] for r in rows]
    sk += [
        _fit_timed(lambda: make_pipeline(StandardScaler(), theirs_cls(random_state=0)), x_tr, y_tr)[
            0
        ]
        for _ in range(max(0, mode.repeats - len(rows)))
    ]
    ours_q = float(np.mean([r["ours"] for r in rows]))
    theirs_q = float(np.mean([r["sklearn"] for r in rows]))
    return {
        "table": name,
        "metric": "accuracy" if classify else "R²",
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "n_features": np.shape(x_tr)[1],
        "ours": ours_q,
        "sklearn": theirs_q,
        "ours_minus_sklearn": ours_q - theirs_q,
        "within_0.02": ours_q >= theirs_q - 0.02,
        "ours_first_fit_s": first_s,
        "ours_warm_fit_s": min(warm),
        "sklearn_fit_s": min(sk),
        "per_seed": rows,
    }


def grid_search(mode: Mode) -> dict[str, Any]:
    """The same `GridSearchCV` over `FFNRegressor` and over `MLPRegressor`, on diabetes."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eqx_ffn.sklearn import FFNRegressor

    _, (x_tr, _, y_tr, _) = _split("diabetes")
    fits = FOLDS * len(GRID["learning_rate_init"]) * len(GRID["alpha"]) + 1  # + the refit
    before = compile_count()
    t_ours, ours = _fit_timed(
        lambda: GridSearchCV(FFNRegressor(random_state=0), GRID, cv=FOLDS), x_tr, y_tr
    )
    compiles = delta(compile_count(), before)
    their_grid = {f"mlpregressor__{k}": v for k, v in GRID.items()}
    t_sk, theirs = _fit_timed(
        lambda: GridSearchCV(
            make_pipeline(StandardScaler(), MLPRegressor(random_state=0)), their_grid, cv=FOLDS
        ),
        x_tr,
        y_tr,
    )
    return {
        "table": "diabetes",
        "grid": GRID,
        "folds": FOLDS,
        "fits": fits,
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "ours_over_sklearn": t_ours / t_sk,
        "ours_compiles": compiles,
        "ours_best_params": ours.best_params_,
        "ours_best_cv_r2": float(ours.best_score_),
        "sklearn_best_params": {k.split("__")[1]: v for k, v in theirs.best_params_.items()},
        "sklearn_best_cv_r2": float(theirs.best_score_),
    }


def run(mode: Mode) -> dict[str, Any]:
    return {
        "title": "scikit-learn's tables: FFNRegressor/FFNClassifier vs MLPRegressor/MLPClassifier",
        "how": "defaults on both sides; one split (25% test); MLP* in a Pipeline with "
        "StandardScaler; wall times of fit (ours: first fit compiles, warm fits reuse)",
        "tables": [table(name, mode) for name in TABLES],
        "grid_search": grid_search(mode),
    }


def _print(result: dict[str, Any]) -> None:
    print(result["title"])
    head = "table          metric    ours   sklearn  diff    ours 1st s  ours warm s  sklearn s"
    print(head)
    for r in result["tables"]:
        print(
            f"{r['table']:<14} {r['metric']:<8} {r['ours']:6.3f}  {r['sklearn']:6.3f}  "
            f"{r['ours_minus_sklearn']:+6.3f}  {r['ours_first_fit_s']:10.2f}  "
            f"{r['ours_warm_fit_s']:11.2f}  {r['sklearn_fit_s']:9.2f}"
        )
    g = result["grid_search"]
    print(
        f"GridSearchCV ({g['fits']} fits, diabetes): ours {g['ours_s']:.1f} s "
        f"({g['ours_compiles']} programs compiled, best CV R² {g['ours_best_cv_r2']:.3f}), "
        f"MLPRegressor {g['sklearn_s']:.1f} s (best CV R² {g['sklearn_best_cv_r2']:.3f})"
    )


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, three timed repeats")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    _print(run(Mode(args.quick)))
