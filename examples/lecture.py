"""The lecture's 1-D fit (docs/REFERENCE.md section 1), step by step.

200 points of f(x) = 2 sin(3x) - 3 cos(7x) on [-1, 1]; one hidden layer of 16 tanh units started
from the lecture's own parameters; Adam at 1e-2 on the full batch for 2000 steps.

    python lecture.py [OUT_FOLDER]

Writes loss.png and fit.png into OUT_FOLDER (default: the current folder).
EQX_FFN_EXAMPLE_STEPS=N runs N steps instead of 2000 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import eqx_ffn
from eqx_ffn import datasets, plot

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "2000"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

# The data: x of shape (200, 1), y = f(x) of shape (200, 1), drawn from jax.random.key(42).
data = datasets.sine_1d()
print(data.description)

# The network with the lecture's initial weights (W1, b1, W2, b2 from the same key).
model0 = eqx_ffn.FFN.from_params(datasets.lecture_params())
print(eqx_ffn.summary(model0))
y0 = eqx_ffn.predict(model0, data.x)
print(f"at initialisation: row 10 -> {float(y0[10, 0]):.7g} (the lecture: 1.5116649), "
      f"MSE {float(((y0 - data.y) ** 2).mean()):.7g} (the lecture: 8.191615)")  # fmt: skip

# Training: one compiled loop; the History records the loss before every step.
model, history = eqx_ffn.fit(
    model0, data.x, data.y, optimizer="adam", learning_rate=1e-2, steps=steps
)
print(history.message)
print(f"final training MSE {history.final_loss:.3g} after {history.steps} steps")

# The figures: the loss against the step; data, initial and fitted curves.
plot.plot_loss(history, path=out / "loss.png")
plot.plot_fit_1d(model, data.x, data.y, initial_model=model0, f=data.f, path=out / "fit.png")
print(f"wrote {out / 'loss.png'} and {out / 'fit.png'}")
