"""The lecture's 2-D exercise (docs/REFERENCE.md section 4).

f(x) = 2 sin(x1) - 3 cos(x2) on [-2, 2]^2 with noise of standard deviation 0.1: 500 training
and 500 test points; a network 2 -> 16 -> 8 -> 1 (tanh) trained by Adam at 1e-2 for 5000 steps.

    python two_d.py [OUT_FOLDER]

Writes loss.png, residuals.png (on the test set) and surface.png (the true function and the
model on a 100 x 100 grid) into OUT_FOLDER (default: the current folder).
EQX_FFN_EXAMPLE_STEPS=N runs N steps instead of 5000 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import jax.random as jr

import eqx_ffn
from eqx_ffn import datasets, plot

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "5000"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

data = datasets.sine_cosine_2d()  # x (500, 2), y (500, 1), and x_test, y_test alike
print(data.description)

model0 = eqx_ffn.FFN(2, 1, (16, 8), key=jr.key(42))
print(eqx_ffn.summary(model0))
model, history = eqx_ffn.fit(model0, data.x, data.y, learning_rate=1e-2, steps=steps)
print(history.message)

# The test set: new points of the same noisy function; the noise alone gives MSE 0.01.
pred = eqx_ffn.predict(model, data.x_test)
test_mse = float(((pred - data.y_test) ** 2).mean())
print(f"training MSE {history.final_loss:.4g}, test MSE {test_mse:.4g} (noise variance 0.01)")

plot.plot_loss(history, path=out / "loss.png")
plot.plot_residuals(model, data.x_test, data.y_test, path=out / "residuals.png")
plot.plot_surface_2d(model, data.f, path=out / "surface.png")
print(f"wrote {out / 'loss.png'}, {out / 'residuals.png'} and {out / 'surface.png'}")
