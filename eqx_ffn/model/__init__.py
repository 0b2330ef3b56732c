"""The networks: `FFN` and `Dense` (`_ffn`), their initialisations (`_init`) and activations
(`_activations`), input/output standardisation (`_standardize`), and what reads a network:
`ravel` (`_ravel`), `jacobian`/`linearize` (`_jacobian`), `summary` (`_summary`); and how the
training programs run a network on a batch of rows (`_rows`).

The public names are re-exported by `eqx_ffn`; import them from there.
"""
