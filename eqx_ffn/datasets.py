"""The lecture's data sets (REFERENCE.md), and reading/writing the user's own tables."""

from .io._datasets import Dataset as Dataset
from .io._datasets import lecture_params as lecture_params
from .io._datasets import sine_1d as sine_1d
from .io._datasets import sine_1d_large as sine_1d_large
from .io._datasets import sine_1d_target as sine_1d_target
from .io._datasets import sine_cosine_2d as sine_cosine_2d
from .io._datasets import sine_cosine_2d_target as sine_cosine_2d_target
from .io._datasets import train_test_split as train_test_split
from .io._tables import MISSING as MISSING
from .io._tables import Table as Table
from .io._tables import load_table as load_table
from .io._tables import read_table as read_table
from .io._tables import write_csv as write_csv
