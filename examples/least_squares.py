"""Levenberg-Marquardt against Adam on the lecture's 1-D problem (docs/REFERENCE.md section 1).

The MSE is a sum of squared residuals, so a least-squares solver applies: each
Levenberg-Marquardt step uses the Jacobian of the residuals (a damped Gauss-Newton step) and
costs more than an Adam step, but needs far fewer of them on a small network. Both start from
the lecture's parameters; Adam runs 2000 steps at 1e-2, Levenberg-Marquardt 100.

    python least_squares.py [OUT_FOLDER]

Writes loss.png (both curves against the step) and fit.png (the Levenberg-Marquardt fit) into
OUT_FOLDER (default: the current folder). EQX_FFN_EXAMPLE_STEPS=N runs N steps of each instead
(the tests use a few).
"""

import os
import sys
from pathlib import Path

import eqx_ffn
from eqx_ffn import datasets, plot

n = os.environ.get("EQX_FFN_EXAMPLE_STEPS")
adam_steps, lm_steps = (int(n), int(n)) if n else (2000, 100)
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

data = datasets.sine_1d()
model0 = eqx_ffn.FFN.from_params(datasets.lecture_params())

# Adam: a first-order method with a fixed learning rate.
_, adam = eqx_ffn.fit(model0, data.x, data.y, optimizer="adam", learning_rate=1e-2,
                      steps=adam_steps)  # fmt: skip
# Levenberg-Marquardt: finds its own damping (no learning rate); the fit stops early
# ("converged") once the relative gradient, step or decrease falls below `tol`.
solver = eqx_ffn.LevenbergMarquardt()  # or optimizer="lm" with the defaults
model, lm = eqx_ffn.fit(model0, data.x, data.y, optimizer=solver, steps=lm_steps)

for name, history in (("Adam 1e-2", adam), ("Levenberg-Marquardt", lm)):
    print(f"{name}: {history.steps} steps, final training MSE {history.final_loss:.3g}, "
          f"{history.run_time:.2f} s running ({history.stop_reason})")  # fmt: skip

plot.plot_loss(
    {"Adam 1e-2": adam, "Levenberg-Marquardt": lm},
    title="Levenberg-Marquardt vs Adam, lecture problem",
    path=out / "loss.png",
)
plot.plot_fit_1d(model, data.x, data.y, initial_model=model0, f=data.f, path=out / "fit.png")
print(f"wrote {out / 'loss.png'} and {out / 'fit.png'}")
