"""eqx_ffn's FFNRegressor inside scikit-learn: a Pipeline tuned by GridSearchCV.

scikit-learn's diabetes table (442 patients, 10 inputs, a disease-progression score): the
pipeline scales the inputs (StandardScaler) and fits FFNRegressor (which also standardises the
target, `standardize=True` by default, and keeps the scalers in the model); GridSearchCV picks
the hidden widths and the L2 penalty `alpha` by 3-fold cross-validation on 80% of the rows; the
score is R^2 on the other 20%.

    python sklearn_pipeline.py [OUT_FOLDER]

Writes grid_search.csv (every setting tried, its mean cross-validated R^2 and rank) into
OUT_FOLDER (default: the current folder). Needs scikit-learn (pip install scikit-learn); says so
and exits 0 without it. EQX_FFN_EXAMPLE_STEPS=N trains N epochs instead of 200 (the tests use a
few).
"""

import csv
import os
import sys
from pathlib import Path

try:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError:
    print("skipped: this example needs scikit-learn (pip install scikit-learn)")
    sys.exit(0)

from eqx_ffn.sklearn import FFNRegressor

epochs = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "200"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

x, y = load_diabetes(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)

# Step names prefix the grid's keys: "ffn__alpha" is the "ffn" step's `alpha`.
pipeline = Pipeline([
    ("scale", StandardScaler()),
    ("ffn", FFNRegressor(activation="tanh", max_iter=epochs, random_state=0)),
])  # fmt: skip
grid = {"ffn__hidden_layer_sizes": [(8,), (32,)], "ffn__alpha": [1e-2, 1.0]}
search = GridSearchCV(pipeline, grid, cv=3, scoring="r2")
search.fit(x_train, y_train)

print(f"best setting {search.best_params_}, cross-validated R^2 {search.best_score_:.3f}")
print(f"R^2 on the held-out 20%: {search.score(x_test, y_test):.3f}")
ridge = RidgeCV().fit(x_train, y_train)  # a linear model, for comparison
print(f"R^2 of a linear model (RidgeCV) on the same rows: {ridge.score(x_test, y_test):.3f}")

results = search.cv_results_
with open(out / "grid_search.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["hidden_layer_sizes", "alpha", "mean_r2", "std_r2", "rank"])
    for i, params in enumerate(results["params"]):
        writer.writerow([params["ffn__hidden_layer_sizes"], params["ffn__alpha"],
                         f"{results['mean_test_score'][i]:.4f}",
                         f"{results['std_test_score'][i]:.4f}",
                         results["rank_test_score"][i]])  # fmt: skip
print(f"wrote {out / 'grid_search.csv'}")
