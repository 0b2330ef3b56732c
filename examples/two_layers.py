"""The lecture's exercise with two hidden layers (docs/REFERENCE.md section 2).

The 1-D data of lecture.py, a network with two hidden layers of 16 tanh units started from the
lecture's parameters for that shape, trained by Adam at 1e-2 for 2000 steps next to the
one-layer network, so the two loss curves can be compared.

    python two_layers.py [OUT_FOLDER]

Writes loss.png (both curves) and fit.png (the two-layer fit) into OUT_FOLDER (default: the
current folder). EQX_FFN_EXAMPLE_STEPS=N runs N steps instead of 2000 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import eqx_ffn
from eqx_ffn import datasets, plot

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "2000"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

data = datasets.sine_1d()

# lecture_params(hidden_sizes=...) draws W1, b1, W2, b2, W3, b3 from jax.random.key(42).
model0 = eqx_ffn.FFN.from_params(datasets.lecture_params(hidden_sizes=(16, 16)))
print(eqx_ffn.summary(model0))
y0 = eqx_ffn.predict(model0, data.x)
print(f"at initialisation: row 10 -> {float(y0[10, 0]):.7g} (the lecture: 0.7192471), "
      f"MSE {float(((y0 - data.y) ** 2).mean()):.7g} (the lecture: 12.46754)")  # fmt: skip

# The same optimizer and step count for both depths.
histories = {}
model, histories["two layers (16, 16)"] = eqx_ffn.fit(
    model0, data.x, data.y, optimizer="adam", learning_rate=1e-2, steps=steps
)
one_layer = eqx_ffn.FFN.from_params(datasets.lecture_params())
_, histories["one layer (16)"] = eqx_ffn.fit(
    one_layer, data.x, data.y, optimizer="adam", learning_rate=1e-2, steps=steps
)
for name, history in histories.items():
    print(f"{name}: final training MSE {history.final_loss:.3g} after {history.steps} steps")

plot.plot_loss(histories, title="One vs two hidden layers, Adam 1e-2", path=out / "loss.png")
plot.plot_fit_1d(model, data.x, data.y, initial_model=model0, f=data.f, path=out / "fit.png")
print(f"wrote {out / 'loss.png'} and {out / 'fit.png'}")
