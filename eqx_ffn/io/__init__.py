"""Files and tables: the model file, CSV and npz tables, and the lecture's data sets.

- `_model_file`: `save`, `load`, `read_header`, `ModelFileError` (re-exported by `eqx_ffn`).
- `_header`: the model file's header: format constants, what `save` writes, what `load` checks.
- `_atomic`: writing a file atomically (temporary file, sync, rename; stale temporaries removed).
- `_export`: a trained model as a StableHLO program that runs without eqx_ffn.
- `_read_table`: `read_table`, `load_table`: the public table readers and their size bound.
- `_table`: `Table`, `MISSING`, column names and the choice of columns, shared by the readers.
- `_csv_header`, `_csv`, `_csv_reference`: a CSV file's header row; the fast readers (pandas,
  NumPy); the reference reader (`csv` module) that names the line and column of a problem.
- `_npz`: reading a table from an `.npz` archive.
- `_write_csv`: `write_csv`.
- `_lecture_data`: the lecture's data sets, `Dataset`, `train_test_split`.

`eqx_ffn.datasets` is the public face of the tables and data sets.
"""
