"""The `eqx-ffn` command line: `demo`, `fit`, `predict`, `export`.

Importing it loads no JAX: `eqx-ffn --help` answers at once.
"""

from ._main import main as main
