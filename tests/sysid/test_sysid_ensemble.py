"""sysid.fit_ensemble: K models in one program, member i equal to its own fit."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest
from synthetic import tank_like

import eqx_ffn.sysid as sysid


@pytest.fixture(scope="module")
def record():
    return tank_like(120, 0, x0=0.5)


@pytest.mark.parametrize("optimizer, steps", [("lm", 8), ("adam", 30)])
def test_member_equals_its_own_fit(optimizer, steps, record):
    models = [sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(i)) for i in range(3)]
    lr = None if optimizer == "lm" else 1e-2
    fitted, x0s, histories = sysid.fit_ensemble(
        models, record, optimizer=optimizer, learning_rate=lr, steps=steps, l2=1e-4
    )
    assert len(fitted) == len(x0s) == len(histories) == 3
    for i, m in enumerate(models):
        alone, x0, h = sysid.fit(
            m, record, optimizer=optimizer, learning_rate=lr, steps=steps, l2=1e-4
        )
        # a batched (vmapped) matrix product may round differently from the single one (float32
        # ulps), and Levenberg-Marquardt's linear solves amplify that to ~1e-4 in 8 iterations
        np.testing.assert_allclose(histories[i].loss, h.loss, rtol=1e-3)
        np.testing.assert_allclose(x0s[i], x0, rtol=2e-3, atol=1e-5)
        for a, b in zip(
            jax.tree.leaves(eqx.filter(fitted[i], eqx.is_array)),
            jax.tree.leaves(eqx.filter(alone, eqx.is_array)),
        ):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
        assert histories[i].steps == h.steps and histories[i].stop_reason == h.stop_reason


def test_ensemble_bad_input(record):
    m = sysid.NeuralStateSpace(1, 2, 1, (4,), key=jr.key(0))
    other = sysid.NeuralStateSpace(1, 2, 1, (5,), key=jr.key(1))
    with pytest.raises(ValueError, match=r"models\[1\] differs in structure"):
        sysid.fit_ensemble([m, other], record, steps=1)
    with pytest.raises(TypeError, match="models must be a non-empty list"):
        sysid.fit_ensemble(m, record, steps=1)
    with pytest.raises(ValueError, match="criterion='simulation'"):
        sysid.fit_ensemble([m], record, criterion="truncated", steps=1)
