"""eqx_ffn: feedforward neural networks on JAX and Equinox.

The public API is re-exported here; `eqx_ffn.datasets` holds the lecture's data sets and table
I/O, `eqx_ffn.plot` the figures. Names are imported on first use (PEP 562), so `import eqx_ffn`
alone does not load JAX: the `eqx-ffn --help` command answers at once. Type checkers see the
ordinary imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public API, as type checkers and readers see it
    from . import datasets as datasets
    from . import plot as plot
    from . import sysid as sysid
    from .io._export import export as export
    from .io._model_file import ModelFileError as ModelFileError
    from .io._model_file import load as load
    from .io._model_file import read_header as read_header
    from .io._model_file import save as save
    from .model._activations import ACTIVATIONS as ACTIVATIONS
    from .model._ffn import FFN as FFN
    from .model._ffn import Dense as Dense
    from .model._init import INITS as INITS
    from .model._jacobian import jacobian as jacobian
    from .model._jacobian import linearize as linearize
    from .model._ravel import ravel as ravel
    from .model._standardize import Standardized as Standardized
    from .model._standardize import Standardizer as Standardizer
    from .model._summary import summary as summary
    from .solvers._least_squares import GaussNewton as GaussNewton
    from .solvers._least_squares import LevenbergMarquardt as LevenbergMarquardt
    from .solvers._optax import OptaxSolver as OptaxSolver
    from .solvers._resolve import OPTIMIZERS as OPTIMIZERS
    from .solvers._solver import Solver as Solver
    from .training._callbacks import FitInfo as FitInfo
    from .training._checkpoint import CheckpointError as CheckpointError
    from .training._compilation_cache import CompilationCacheWarning as CompilationCacheWarning
    from .training._compilation_cache import enable_compilation_cache as enable_compilation_cache
    from .training._ensemble import ensemble_member as ensemble_member
    from .training._ensemble import ensemble_predict as ensemble_predict
    from .training._ensemble import fit_ensemble as fit_ensemble
    from .training._fit import fit as fit
    from .training._fit import make_step as make_step
    from .training._history import DivergenceWarning as DivergenceWarning
    from .training._history import History as History
    from .training._history import NonFiniteLossWarning as NonFiniteLossWarning
    from .training._losses import LOSSES as LOSSES
    from .training._objective import Objective as Objective
    from .training._predict import predict as predict
    from .training._predict import predict_proba as predict_proba
    from .training._tensorboard import TensorBoardLogger as TensorBoardLogger

# public name -> the private module that defines it (submodules map to themselves)
_EXPORTS: dict[str, str] = {
    "datasets": ".datasets",
    "plot": ".plot",
    "sysid": ".sysid",
    "ACTIVATIONS": ".model._activations",
    "CheckpointError": ".training._checkpoint",
    "CompilationCacheWarning": ".training._compilation_cache",
    "FitInfo": ".training._callbacks",
    "enable_compilation_cache": ".training._compilation_cache",
    "export": ".io._export",
    "ensemble_member": ".training._ensemble",
    "ensemble_predict": ".training._ensemble",
    "fit_ensemble": ".training._ensemble",
    "FFN": ".model._ffn",
    "Dense": ".model._ffn",
    "NonFiniteLossWarning": ".training._history",
    "DivergenceWarning": ".training._history",
    "fit": ".training._fit",
    "make_step": ".training._fit",
    "History": ".training._history",
    "INITS": ".model._init",
    "ModelFileError": ".io._model_file",
    "jacobian": ".model._jacobian",
    "linearize": ".model._jacobian",
    "GaussNewton": ".solvers._least_squares",
    "LevenbergMarquardt": ".solvers._least_squares",
    "load": ".io._model_file",
    "read_header": ".io._model_file",
    "save": ".io._model_file",
    "LOSSES": ".training._losses",
    "Objective": ".training._objective",
    "predict": ".training._predict",
    "predict_proba": ".training._predict",
    "ravel": ".model._ravel",
    "OPTIMIZERS": ".solvers._resolve",
    "OptaxSolver": ".solvers._optax",
    "Solver": ".solvers._solver",
    "Standardized": ".model._standardize",
    "Standardizer": ".model._standardize",
    "summary": ".model._summary",
    "TensorBoardLogger": ".training._tensorboard",
}

# written out (not computed) so that type checkers see the public names
__all__ = [
    "ACTIVATIONS",
    "FFN",
    "INITS",
    "LOSSES",
    "OPTIMIZERS",
    "CheckpointError",
    "CompilationCacheWarning",
    "Dense",
    "DivergenceWarning",
    "FitInfo",
    "GaussNewton",
    "History",
    "LevenbergMarquardt",
    "ModelFileError",
    "NonFiniteLossWarning",
    "Objective",
    "OptaxSolver",
    "Solver",
    "Standardized",
    "Standardizer",
    "TensorBoardLogger",
    "datasets",
    "enable_compilation_cache",
    "ensemble_member",
    "ensemble_predict",
    "export",
    "fit",
    "fit_ensemble",
    "jacobian",
    "linearize",
    "load",
    "make_step",
    "plot",
    "predict",
    "predict_proba",
    "ravel",
    "read_header",
    "save",
    "summary",
    "sysid",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        if name == "__version__":
            from ._version import version

            return version()
        raise AttributeError(f"module 'eqx_ffn' has no attribute {name!r}")
    module = importlib.import_module(module_name, __name__)
    value = module if module_name.lstrip(".") == name else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})
