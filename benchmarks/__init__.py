"""Benchmarks of eqx_ffn against hand-written JAX loops and peer libraries.

Run `python -m benchmarks [--quick] [--out benchmarks/results] [--cases ...]`. Every case is a
function that returns a dict of figures; `benchmarks._cli` runs them, prints the tables, writes
`results/<platform>.json` and renders `benchmarks/BENCHMARKS.md`.

This module imports nothing heavy: `python -m benchmarks._worker` (the whole-process timings)
imports it too.
"""
