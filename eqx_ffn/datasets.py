"""The lecture's data sets (docs/REFERENCE.md), and reading/writing the user's own tables."""

from .io._lecture_data import Dataset as Dataset
from .io._lecture_data import lecture_params as lecture_params
from .io._lecture_data import sine_1d as sine_1d
from .io._lecture_data import sine_1d_large as sine_1d_large
from .io._lecture_data import sine_1d_target as sine_1d_target
from .io._lecture_data import sine_cosine_2d as sine_cosine_2d
from .io._lecture_data import sine_cosine_2d_target as sine_cosine_2d_target
from .io._lecture_data import train_test_split as train_test_split
from .io._read_table import load_table as load_table
from .io._read_table import read_table as read_table
from .io._table import MISSING as MISSING
from .io._table import Table as Table
from .io._write_csv import write_csv as write_csv
