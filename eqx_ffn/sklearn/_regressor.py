"""`FFNRegressor`: a feedforward network regressor with scikit-learn's estimator interface."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import RegressorMixin

from ._base import _FFNEstimator
from ._docs import ATTRIBUTES_DOC, PARAMETERS_DOC, PARTIAL_FIT_DOC
from ._inputs import check_finite_target, check_numeric_target, validated
from ._partial import stochastic_only

__all__ = ["FFNRegressor"]


class FFNRegressor(RegressorMixin, _FFNEstimator):
    """A feedforward network regressor with scikit-learn's estimator interface.

    Trains an `eqx_ffn.FFN` with `eqx_ffn.fit` (one compiled loop) on the mean squared error;
    works in `Pipeline`, `GridSearchCV`, `cross_val_score`. `y` may be 1-D or 2-D (several
    outputs); `predict` returns the same number of dimensions.
    """

    __doc__ = (
        (__doc__ or "")
        + PARAMETERS_DOC
        + ATTRIBUTES_DOC.format(
            what="predictions in the data's units",
            scores="the validation R² per epoch (of the targets the network is trained on; "
            "with several outputs, 1 - SSE / SST with both summed over outputs)",
            extra="",
        )
        + PARTIAL_FIT_DOC
        + """
    ```python
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from eqx_ffn.sklearn import FFNRegressor

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    reg = FFNRegressor(early_stopping=True, random_state=0).fit(x_train, y_train)
    print(reg.score(x_test, y_test), reg.predict(x_test[:3]).shape)   # R² ~0.4, (3,)
    ```
    """
    )

    _classifier = False
    _record_name: ClassVar[str] = "FFNRegressor"
    _record_keys: ClassVar[tuple[str, ...]] = ("y_ndim",)
    _y_ndim: int  # of the y given to fit: predict returns as many dimensions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FFNRegressor:
        """Train on `X` (N, n_features) and `y` (N,) or (N, n_outputs).

        **Arguments:** `X`, `y` (array-likes or DataFrames), `sample_weight` (N,) >= 0 or None.

        **Returns:** `self`, fitted.
        """
        self._validate_params()
        check_numeric_target(y, "FFNRegressor")
        x, y_arr = validated(self, X, y, multi_output=True, y_numeric=True)
        y_arr = y_arr.astype(np.float64)
        check_finite_target(y_arr)
        self._y_ndim = y_arr.ndim
        y2 = y_arr[:, None] if y_arr.ndim == 1 else y_arr
        self.n_outputs_ = y2.shape[1]
        return self._fit(x, y2, sample_weight, y2.shape[1])

    @stochastic_only
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> FFNRegressor:
        """Train one epoch on `X` (N, n_features) and `y` (N,) or (N, n_outputs), continuing
        from the current network and the optimizer's state (scikit-learn's `partial_fit`).

        The first call on an unfitted estimator initialises it from these data as `fit` would
        (`n_features_in_`, the scalers, the network); later calls need the same features and
        outputs. Stochastic solvers only (an `AttributeError` for `solver="lbfgs"`); no early
        stopping. See the class docstring.

        **Arguments:** `X`, `y` (array-likes or DataFrames), `sample_weight` (N,) >= 0 or None.

        **Returns:** `self`.
        """
        self._validate_params()
        first = not hasattr(self, "model_")
        check_numeric_target(y, "FFNRegressor")
        x, y_arr = validated(self, X, y, multi_output=True, y_numeric=True, reset=first)
        y_arr = y_arr.astype(np.float64)
        check_finite_target(y_arr)
        y2 = y_arr[:, None] if y_arr.ndim == 1 else y_arr
        if first:
            self._y_ndim, self.n_outputs_ = y_arr.ndim, y2.shape[1]
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y2.shape[1]} output(s) (columns); this estimator was fitted with "
                f"{self.n_outputs_}. Call fit to train a new network."
            )
        return self._partial_fit(x, y2, sample_weight, y2.shape[1])

    def _validation_scores(self, val_loss: np.ndarray, y_val: np.ndarray) -> np.ndarray:
        # The engine's validation loss is the MSE over samples and outputs of the (standardised)
        # targets: R² = 1 - SSE / SST, both summed over outputs (for one output, R² itself).
        sst = float(np.mean(np.var(y_val, axis=0)))
        if sst == 0.0:  # a constant validation target: r2_score's force_finite convention
            return np.where(val_loss == 0, 1.0, 0.0)
        return 1.0 - np.asarray(val_loss, np.float64) / sst

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for `X` (N, n_features): shape (N,) when `y` was 1-D, else
        (N, n_outputs); float64 (computed in the network's dtype, float32 by default)."""
        out = self._raw_predict(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def _record_fields(self) -> dict[str, Any]:
        return {"y_ndim": int(self._y_ndim)}
