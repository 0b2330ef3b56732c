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
    from ._activations import ACTIVATIONS as ACTIVATIONS
    from ._compilation_cache import CompilationCacheWarning as CompilationCacheWarning
    from ._compilation_cache import enable_compilation_cache as enable_compilation_cache
    from ._ensemble import ensemble_member as ensemble_member
    from ._ensemble import ensemble_predict as ensemble_predict
    from ._ensemble import fit_ensemble as fit_ensemble
    from ._ffn import FFN as FFN
    from ._ffn import Dense as Dense
    from ._fit import DivergenceWarning as DivergenceWarning
    from ._fit import NonFiniteLossWarning as NonFiniteLossWarning
    from ._fit import fit as fit
    from ._fit import make_step as make_step
    from ._history import History as History
    from ._init import INITS as INITS
    from ._io import ModelFileError as ModelFileError
    from ._io import load as load
    from ._io import read_header as read_header
    from ._io import save as save
    from ._jacobian import jacobian as jacobian
    from ._jacobian import linearize as linearize
    from ._least_squares import GaussNewton as GaussNewton
    from ._least_squares import LevenbergMarquardt as LevenbergMarquardt
    from ._losses import LOSSES as LOSSES
    from ._objective import Objective as Objective
    from ._predict import predict as predict
    from ._predict import predict_proba as predict_proba
    from ._ravel import ravel as ravel
    from ._solvers import OPTIMIZERS as OPTIMIZERS
    from ._solvers import OptaxSolver as OptaxSolver
    from ._solvers import Solver as Solver
    from ._standardize import Standardized as Standardized
    from ._standardize import Standardizer as Standardizer
    from ._summary import summary as summary

# public name -> the private module that defines it (submodules map to themselves)
_EXPORTS: dict[str, str] = {
    "datasets": ".datasets",
    "plot": ".plot",
    "ACTIVATIONS": "._activations",
    "CompilationCacheWarning": "._compilation_cache",
    "enable_compilation_cache": "._compilation_cache",
    "ensemble_member": "._ensemble",
    "ensemble_predict": "._ensemble",
    "fit_ensemble": "._ensemble",
    "FFN": "._ffn",
    "Dense": "._ffn",
    "NonFiniteLossWarning": "._fit",
    "DivergenceWarning": "._fit",
    "fit": "._fit",
    "make_step": "._fit",
    "History": "._history",
    "INITS": "._init",
    "ModelFileError": "._io",
    "jacobian": "._jacobian",
    "linearize": "._jacobian",
    "GaussNewton": "._least_squares",
    "LevenbergMarquardt": "._least_squares",
    "load": "._io",
    "read_header": "._io",
    "save": "._io",
    "LOSSES": "._losses",
    "Objective": "._objective",
    "predict": "._predict",
    "predict_proba": "._predict",
    "ravel": "._ravel",
    "OPTIMIZERS": "._solvers",
    "OptaxSolver": "._solvers",
    "Solver": "._solvers",
    "Standardized": "._standardize",
    "Standardizer": "._standardize",
    "summary": "._summary",
}

# written out (not computed) so that type checkers see the public names
__all__ = [
    "ACTIVATIONS",
    "FFN",
    "INITS",
    "LOSSES",
    "OPTIMIZERS",
    "CompilationCacheWarning",
    "Dense",
    "DivergenceWarning",
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
    "datasets",
    "enable_compilation_cache",
    "ensemble_member",
    "ensemble_predict",
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
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        if name == "__version__":
            return _version()
        raise AttributeError(f"module 'eqx_ffn' has no attribute {name!r}")
    module = importlib.import_module(module_name, __name__)
    value = module if module_name.lstrip(".") == name else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eqx_ffn")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
