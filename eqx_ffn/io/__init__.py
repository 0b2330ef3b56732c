"""Files and tables: the model file (`save`, `load`, `read_header`), CSV and npz tables, and the
lecture's data sets. `eqx_ffn.datasets` is the public face of the tables and data sets; the model
file's functions are re-exported by `eqx_ffn`.
"""
