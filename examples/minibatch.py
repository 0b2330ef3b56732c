"""The lecture's mini-batch exercise (docs/REFERENCE.md section 3).

The function of lecture.py on 20,000 points; Adam at 1e-2 with batches of 32 (indices drawn from
jax.random.key(101), a fresh permutation each epoch) against the same number of full-batch steps.
A mini-batch step costs far less, and its loss is noisier.

    python minibatch.py [OUT_FOLDER]

Writes loss.png (both curves) and fit.png (the mini-batch fit) into OUT_FOLDER (default: the
current folder). EQX_FFN_EXAMPLE_STEPS=N runs N steps instead of 1000 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import jax.random as jr

import eqx_ffn
from eqx_ffn import datasets, plot

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "1000"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

data = datasets.sine_1d_large()  # x, y of shape (20000, 1)
print(data.description)
model0 = eqx_ffn.FFN.from_params(datasets.lecture_params())

# batch_size=32: each step sees 32 rows; `key` drives the sampling (reproducible).
model, mini = eqx_ffn.fit(
    model0, data.x, data.y, learning_rate=1e-2, steps=steps, batch_size=32, key=jr.key(101)
)
# The full batch: every step sees all 20,000 rows.
_, full = eqx_ffn.fit(model0, data.x, data.y, learning_rate=1e-2, steps=steps)

for name, history in (("mini-batch (32)", mini), ("full batch", full)):
    rate = history.steps / history.run_time if history.run_time > 0 else float("inf")
    print(f"{name}: final training MSE {history.final_loss:.3g} (on all rows), "
          f"{rate:,.0f} steps/s")  # fmt: skip

plot.plot_loss(
    {"mini-batch (32)": mini, "full batch (20,000)": full},
    title="Mini-batch (32) vs full batch, Adam 1e-2",
    path=out / "loss.png",
)
plot.plot_fit_1d(model, data.x[:500], data.y[:500], f=data.f, path=out / "fit.png")
print(f"wrote {out / 'loss.png'} and {out / 'fit.png'}")
