"""eqx_ffn: feedforward neural networks on JAX and Equinox.

The public API is re-exported here; `eqx_ffn.datasets` holds the lecture's data sets and table
I/O, `eqx_ffn.plot` the figures (imported on first use, as it loads matplotlib).
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import datasets as datasets
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
from ._io import ModelFileError as ModelFileError
from ._io import load as load
from ._io import read_header as read_header
from ._io import save as save
from ._losses import LOSSES as LOSSES
from ._predict import predict as predict
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


def __getattr__(name: str) -> Any:
    if name == "plot":  # lazily: matplotlib adds ~0.3 s to the import
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'eqx_ffn' has no attribute {name!r}")
