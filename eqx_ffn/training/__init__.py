"""Training: the public `fit` / `fit_ensemble` / `make_step`, and the engine behind them.

The path the data take through `fit`: validate the arguments into one options object → place and
pad the data on the device → compile the program for this structure, or reuse it → run the
program's chunks of steps from the host driver → a `History`.

The public names are re-exported by `eqx_ffn`; import them from there.
"""
