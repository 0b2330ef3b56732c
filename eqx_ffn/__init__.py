"""eqx_ffn: feedforward neural networks on JAX and Equinox."""

from importlib.metadata import PackageNotFoundError, version

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._ffn import FFN as FFN
from ._ffn import Dense as Dense
from ._init import INITS as INITS
from ._ravel import ravel as ravel
from ._standardize import Standardized as Standardized
from ._standardize import Standardizer as Standardizer
from ._summary import summary as summary

try:
    __version__ = version("eqx_ffn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
