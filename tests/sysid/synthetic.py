"""Small synthetic records for the sysid tests (fast to compile and run)."""

from __future__ import annotations

import numpy as np

import eqx_ffn.sysid as sysid

TRUNCATED = dict(
    criterion="truncated",
    window=20,
    batch_size=16,
    encoder={"n_init": 8, "hidden_sizes": (8,)},
    learning_rate=1e-2,
)
"""Small truncated-simulation settings (windows of 20, an encoder over 8 samples) the tests share."""


def tank_like(T: int = 120, seed: int = 0, x0: float = 0.0) -> sysid.Experiment:
    """A first-order nonlinear system driven by a random staircase input."""
    rng = np.random.default_rng(seed)
    u = np.repeat(rng.uniform(0, 2, T // 10 + 1), 10)[:T]
    x, y = x0, np.zeros(T)
    for k in range(T):
        y[k] = x
        x = x + 0.2 * (np.tanh(u[k]) - 0.5 * x)
    return sysid.Experiment(u, y, 1.0, f"synthetic {seed}")


def two_by_two(T: int = 150, seed: int = 0) -> sysid.Experiment:
    """A coupled two-input, two-output nonlinear system (two tanks, each pump feeding both)."""
    rng = np.random.default_rng(seed)
    u = np.repeat(rng.uniform(0, 2, (T // 10 + 1, 2)), 10, axis=0)[:T]
    x, y = np.zeros(2), np.zeros((T, 2))
    for k in range(T):
        y[k] = [x[0], x[0] * 0.5 + x[1]]
        x = x + 0.2 * np.array(
            [np.tanh(u[k, 0]) - 0.5 * x[0], 0.3 * x[0] + 0.5 * u[k, 1] - 0.4 * x[1]]
        )
    return sysid.Experiment(u, y, 1.0, f"two by two {seed}")
