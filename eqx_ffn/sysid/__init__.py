"""Dynamical systems: neural state-space and NARX models fitted by simulation error.

The course's next lecture (a residual neural state-space model fitted to the Cascaded Tanks
benchmark by its simulation error) through eqx_ffn, and beyond it: several records, NARX models,
Levenberg-Marquardt on the simulation residuals, early stopping, initial-state estimation on new
data, the benchmarks' metrics, figures and files.

```python
import jax.random as jr
from eqx_ffn import sysid

train, test = sysid.datasets.cascaded_tanks()
model = sysid.NeuralStateSpace(n_u=1, n_x=2, n_y=1, hidden_sizes=(16,), key=jr.key(0))
model, x0, history = sysid.fit(model, train, optimizer="lm", steps=100)
x0_test = sysid.estimate_initial_state(model, test, n_init=50)
y_sim = sysid.simulate(model, test.u, x0_test)
print(sysid.rmse(test.y, y_sim, skip=50))  # volts
```

Long records: `criterion="truncated"` cuts them into windows of `window` samples, draws
`batch_size` a step from all records and starts each from an encoder's state (an `FFN` over
the `n_init` measured samples before it, trained jointly, kept as `model.encoder` and used by
`estimate_initial_state`). `fit_ensemble` trains K models of one structure in one program.

A recipe for the Cascaded Tanks benchmark (`benchmarks/sysid.py`, figures in
benchmarks/BENCHMARKS.md): 8 restarts of `NeuralStateSpace(1, 2, 1, (16,))` in one
`fit_ensemble`, 50 Levenberg-Marquardt iterations each, `l2` chosen on a validation split of
the training record; the 3 lowest training losses get 150 more; the models within 1.5x the
lowest training loss form an ensemble whose simulations (each from its own
`estimate_initial_state` on the first 50 test samples) are averaged. Silverbox:
`tests/sysid/recipe_silverbox.py` (truncated simulation with an encoder).
"""

from . import datasets as datasets
from ._ensemble import fit_ensemble as fit_ensemble
from ._experiment import Experiment as Experiment
from ._experiment import Scaler as Scaler
from ._files import SysidFileError as SysidFileError
from ._files import load as load
from ._files import save as save
from ._fit import CRITERIA as CRITERIA
from ._fit import OPTIMIZERS as OPTIMIZERS
from ._fit import NonFiniteSimulationWarning as NonFiniteSimulationWarning
from ._fit import fit as fit
from ._metrics import fit_percent as fit_percent
from ._metrics import nrmse as nrmse
from ._metrics import r2 as r2
from ._metrics import rmse as rmse
from ._models import NARX as NARX
from ._models import NeuralStateSpace as NeuralStateSpace
from ._plot import plot_simulation as plot_simulation
from ._simulate import estimate_initial_state as estimate_initial_state
from ._simulate import predict as predict
from ._simulate import simulate as simulate

__all__ = [
    "CRITERIA",
    "NARX",
    "OPTIMIZERS",
    "Experiment",
    "NeuralStateSpace",
    "NonFiniteSimulationWarning",
    "Scaler",
    "SysidFileError",
    "datasets",
    "estimate_initial_state",
    "fit",
    "fit_ensemble",
    "fit_percent",
    "load",
    "nrmse",
    "plot_simulation",
    "predict",
    "r2",
    "rmse",
    "save",
    "simulate",
]
