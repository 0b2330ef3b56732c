"""A dynamical system: a neural state-space model of the Cascaded Tanks benchmark (eqx_ffn.sysid).

The course's next lecture: x(k+1) = x(k) + f(x(k), u(k)), y(k) = C x(k), with f a network of
16 tanh units, fitted to the benchmark's training record by minimising the free-run simulation
error (Levenberg-Marquardt through the simulation, 100 iterations). On the test record the
initial state is estimated from the first 50 samples and the rest is simulated; the benchmark's
score is that simulation's RMSE in volts.

    python tanks.py [OUT_FOLDER]

Writes simulation.png (measured and simulated test output) and tanks.eqx (the model and its
initial state, for eqx_ffn.sysid.load) into OUT_FOLDER (default: the current folder).
EQX_FFN_EXAMPLE_STEPS=N runs N iterations instead of 100 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import jax.random as jr

from eqx_ffn import sysid

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "100"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

train, test = sysid.datasets.cascaded_tanks()  # 1024 samples each, one input, one output

# 1 input, 2 states, 1 output; the model standardises u and y with the training record's scaler.
model = sysid.NeuralStateSpace(n_u=1, n_x=2, n_y=1, hidden_sizes=(16,), key=jr.key(0))
model, x0, history = sysid.fit(model, train, optimizer="lm", steps=steps, l2=3e-2)
print(f"{history.steps} iterations, training loss {history.final_loss:.4g} "
      f"({history.stop_reason})")  # fmt: skip

# The test record starts from an unknown state: estimate it from its first 50 samples.
x0_test = sysid.estimate_initial_state(model, test, n_init=50)
y_sim = sysid.simulate(model, test.u, x0_test)
rmse = float(sysid.rmse(test.y, y_sim, skip=50).squeeze())
fit = float(sysid.fit_percent(test.y, y_sim, skip=50).squeeze())
print(f"test simulation RMSE {rmse:.3f} V, fit {fit:.1f}% (samples 50-1023)")

sysid.plot_simulation(test, y_sim, unit="V", path=out / "simulation.png")
sysid.save(out / "tanks.eqx", model, x0)
print(f"wrote {out / 'simulation.png'} and {out / 'tanks.eqx'}")
