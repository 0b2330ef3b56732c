"""The lecture's data sets (docs/REFERENCE.md), and reading/writing the user's own tables.

The table functions (`read_table`, `load_table`, `write_csv`, `Table`, `MISSING`) need only NumPy
(and pandas when installed): importing them does not load JAX, so a script that reads a table
pays for the table alone. The lecture's data sets are JAX programs; their names load JAX on
first use (PEP 562). Type checkers see the ordinary imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .io._read_table import load_table as load_table
from .io._read_table import read_table as read_table
from .io._table import MISSING as MISSING
from .io._table import Table as Table
from .io._write_csv import write_csv as write_csv

if TYPE_CHECKING:
    from .io._lecture_data import Dataset as Dataset
    from .io._lecture_data import lecture_params as lecture_params
    from .io._lecture_data import sine_1d as sine_1d
    from .io._lecture_data import sine_1d_large as sine_1d_large
    from .io._lecture_data import sine_1d_target as sine_1d_target
    from .io._lecture_data import sine_cosine_2d as sine_cosine_2d
    from .io._lecture_data import sine_cosine_2d_target as sine_cosine_2d_target
    from .io._lecture_data import train_test_split as train_test_split

__all__ = [
    "MISSING",
    "Dataset",
    "Table",
    "lecture_params",
    "load_table",
    "read_table",
    "sine_1d",
    "sine_1d_large",
    "sine_1d_target",
    "sine_cosine_2d",
    "sine_cosine_2d_target",
    "train_test_split",
    "write_csv",
]
_LECTURE = frozenset(__all__) - set(globals())  # the names not imported above: JAX programs


def __getattr__(name: str) -> Any:
    if name not in _LECTURE:
        raise AttributeError(f"module 'eqx_ffn.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(".io._lecture_data", __package__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LECTURE})
