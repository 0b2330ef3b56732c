"""The lecture's data sets (REFERENCE.md), and reading/writing the user's own tables."""

from ._datasets import Dataset as Dataset
from ._datasets import lecture_params as lecture_params
from ._datasets import load_table as load_table
from ._datasets import sine_1d as sine_1d
from ._datasets import sine_1d_large as sine_1d_large
from ._datasets import sine_1d_target as sine_1d_target
from ._datasets import sine_cosine_2d as sine_cosine_2d
from ._datasets import sine_cosine_2d_target as sine_cosine_2d_target
from ._datasets import train_test_split as train_test_split
from ._datasets import write_csv as write_csv
