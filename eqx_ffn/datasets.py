"""The lecture's data sets (REFERENCE.md), and reading/writing the user's own tables."""

from ._datasets import Dataset as Dataset
from ._datasets import lecture_params as lecture_params
from ._datasets import sine_1d as sine_1d
from ._datasets import sine_1d_large as sine_1d_large
from ._datasets import sine_1d_target as sine_1d_target
from ._datasets import sine_cosine_2d as sine_cosine_2d
from ._datasets import sine_cosine_2d_target as sine_cosine_2d_target
from ._datasets import train_test_split as train_test_split
from ._tables import MISSING as MISSING
from ._tables import Table as Table
from ._tables import load_table as load_table
from ._tables import read_table as read_table
from ._tables import write_csv as write_csv
