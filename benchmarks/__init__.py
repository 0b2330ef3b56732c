"""Benchmarks of eqx_ffn against lean hand-written JAX loops and peer libraries.

Run `python -m benchmarks [--quick] [--out benchmarks/results] [--cases ...]`. Every case is a
module with a `TITLE` and `run(mode) -> list[Table]` (`benchmarks._report`); `benchmarks._cli`
runs them, prints the tables, writes `results/<platform>.json` and renders `BENCHMARKS.md`. The
peers (PyTorch, Flax, scikit-learn, SciPy, the lecture's loop, the lean bare scan) are in
`benchmarks.peers`.

This module imports nothing heavy: `python -m benchmarks._worker` (the whole-process timings)
imports it too.
"""
