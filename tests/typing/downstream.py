"""Downstream code as a typed user writes it: checked by pyright in tests/test_typing.py, never run.

`# revealed: T` ends a line whose `reveal_type` must show `T` (`T...`: starting with `T`);
`# revealed (fit keeps the model's type): T` marks what needs `fit` to be generic in the model's
type; `# error: rule` ends a line where pyright must report that rule. No other line may have an
error.
"""

from __future__ import annotations

import jax.random as jr
import numpy as np

import eqx_ffn
from eqx_ffn.sklearn import FFNClassifier, FFNRegressor

x = np.zeros((10, 2), np.float32)
y = np.zeros((10, 1), np.float32)

net = eqx_ffn.FFN(2, 1, (4,), key=jr.key(0))
reveal_type(net)  # revealed: FFN
wrapped = eqx_ffn.Standardized.around(net, x, y)
reveal_type(wrapped)  # revealed: Standardized

model, history = eqx_ffn.fit(net, x, y, steps=10)
reveal_type(history)  # revealed: History
reveal_type(model)  # revealed (fit keeps the model's type): FFN
model_w, _ = eqx_ffn.fit(wrapped, x, y, steps=10)
reveal_type(model_w)  # revealed (fit keeps the model's type): Standardized

loaded = eqx_ffn.load("model.eqx")
reveal_type(loaded)  # revealed: FFN | Standardized

reg = FFNRegressor(hidden_layer_sizes=(8,)).fit(x, y[:, 0])
reveal_type(reg)  # revealed: FFNRegressor
reveal_type(reg.model_)  # revealed: Standardized
reveal_type(FFNClassifier().fit(x, y[:, 0]).predict_proba(x))  # revealed: ndarray[...

# misuse that must be reported
eqx_ffn.fit(net, x, y, steps="10")  # error: reportArgumentType
eqx_ffn.FFN(1, 1, key=0)  # error: reportArgumentType
eqx_ffn.fit(net, x, y, stepz=10)  # error: reportCallIssue
FFNRegressor(hidden_layer_sizes=(8,), solverr="adam")  # error: reportCallIssue
