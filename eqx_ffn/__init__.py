"""eqx_ffn: feedforward neural networks on JAX and Equinox."""

from importlib.metadata import PackageNotFoundError, version

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._compilation_cache import enable_compilation_cache as enable_compilation_cache
from ._ensemble import ensemble_member as ensemble_member
from ._ensemble import ensemble_predict as ensemble_predict
from ._ensemble import fit_ensemble as fit_ensemble
from ._ffn import FFN as FFN
from ._ffn import Dense as Dense
from ._fit import NonFiniteLossWarning as NonFiniteLossWarning
from ._fit import fit as fit
from ._fit import make_step as make_step
from ._history import History as History
from ._init import INITS as INITS
from ._losses import LOSSES as LOSSES
from ._ravel import ravel as ravel
from ._solvers import OPTIMIZERS as OPTIMIZERS
from ._solvers import OptaxSolver as OptaxSolver
from ._solvers import Solver as Solver
from ._standardize import Standardized as Standardized
from ._standardize import Standardizer as Standardizer
from ._summary import summary as summary

try:
    __version__ = version("eqx_ffn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
