"""The networks: `FFN` and `Dense` (`_ffn`), their initialisations (`_init`) and activations
(`_activations`), input/output standardisation (`_standardize`), and what reads a network:
`ravel` (`_ravel`), `jacobian`/`linearize` (`_jacobian`), `summary` (`_summary`).

The public names are re-exported by `eqx_ffn`; import them from there.
"""
