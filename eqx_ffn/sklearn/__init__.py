"""scikit-learn estimators: `FFNRegressor` and `FFNClassifier`, and `save` / `load` for them.

Needs scikit-learn (`pip install "eqx_ffn[sklearn]"`). The estimators follow scikit-learn's
contract (`get_params`/`set_params`, `fit`/`predict`/`score`, `Pipeline`, `GridSearchCV`,
`cross_val_score`, pickling) and name their parameters as `MLPRegressor` / `MLPClassifier` do;
the trained network is `estimator.model_`, an ordinary `eqx_ffn` model.

```python
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from eqx_ffn.sklearn import FFNClassifier

x, y = load_iris(return_X_y=True)
print(cross_val_score(FFNClassifier(max_iter=100, random_state=0), x, y, cv=3).mean())  # ~0.9
```
"""

from __future__ import annotations

try:
    import sklearn as _sklearn  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'eqx_ffn.sklearn needs scikit-learn, which is not installed: pip install "eqx_ffn[sklearn]"'
    ) from e

from ._classifier import FFNClassifier as FFNClassifier
from ._files import load as load
from ._files import save as save
from ._regressor import FFNRegressor as FFNRegressor

__all__ = ["FFNClassifier", "FFNRegressor", "load", "save"]
