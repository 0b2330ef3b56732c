"""Training: the public `fit` / `fit_ensemble` / `make_step`, and the engine behind them.

The path the data take through `fit`: validate the arguments into one options object
(`_options.FitOptions`) → check, place and pad the data and size the schedule
(`_prepare.Prepared`, with `_data`, `_placement`, `_schedule`) → build the initial state
(`_state`) → compile the program for this structure, or reuse it (`_program_cache`, keyed by
`_config.Config` and `_cache_key`) → run the program's chunks of steps from the host driver
(`_driver`, the program itself in `_program`, batch indices in `_sampling`) → a `History`
(`_history`). `_objective` and `_losses` define what is minimised; `_predict` and `_ensemble`
hold prediction and K-model training.

The public names are re-exported by `eqx_ffn`; import them from there.
"""
