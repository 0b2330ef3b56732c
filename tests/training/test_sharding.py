"""Data-parallel fit and member-sharded ensembles on 4 (forced) CPU devices, in ONE subprocess
(XLA_FLAGS must be set before JAX is imported; one process for both parts saves a JAX start and
shares the one-device programs): each part reports "<part> ok" or its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import traceback
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from conftest import lecture_data_and_params
    import eqx_ffn

    assert len(jax.devices()) == 4, jax.devices()


    def fit_part():
        x, y, p = lecture_data_and_params()
        model = eqx_ffn.FFN.from_params(p)
        seen = []

        def mse(m, xb, yb):
            jax.debug.inspect_array_sharding(xb, callback=seen.append)
            return jnp.mean((yb - jax.vmap(m)(xb)) ** 2)

        mesh = Mesh(np.array(jax.devices()), ("data",))
        one_device = {}
        for bs in (None, 40):
            _, h1 = eqx_ffn.fit(model, x, y, steps=100, batch_size=bs, progress=False)
            one_device[bs] = h1
            seen.clear()
            out, h4 = eqx_ffn.fit(model, x, y, steps=100, batch_size=bs, loss=mse, mesh=mesh,
                                  progress=False)
            np.testing.assert_allclose(h4.loss, h1.loss, rtol=1e-5)
            # the batch really is split over the 4 devices, the parameters replicated
            assert seen and all(s.spec == PartitionSpec("data") for s in seen), seen
            assert len(seen[0].device_set) == 4
            w = out.layers[0].weight
            assert w.sharding.is_fully_replicated and len(w.sharding.device_set) == 4
            assert h4.stop_reason == "completed"
        # a named loss with a smaller last batch (200 = 4 * 48 + 8): zero-weight padding, sharded
        _, h1 = eqx_ffn.fit(model, x, y, steps=30, batch_size=48, progress=False)
        _, h4 = eqx_ffn.fit(model, x, y, steps=30, batch_size=48, mesh=mesh, progress=False)
        np.testing.assert_allclose(h4.loss, h1.loss, rtol=1e-5)
        # N=198 is no multiple of 4: zero-weight padding rows make the split even; and a list of
        # devices is a 1-D mesh too
        _, h1 = eqx_ffn.fit(model, x[:198], y[:198], steps=20, progress=False)
        _, h4 = eqx_ffn.fit(model, x[:198], y[:198], steps=20, mesh=jax.devices(), progress=False)
        np.testing.assert_allclose(h4.loss, h1.loss, rtol=1e-5)
        try:  # a callable loss cannot be padded: N must split evenly
            eqx_ffn.fit(model, x[:198], y[:198], steps=1, loss=mse, mesh=mesh)
        except ValueError as e:
            assert "N=198 must be a multiple of 4" in str(e), e
        else:
            raise AssertionError("uneven split accepted")
        # device= places the whole fit (data, state, program) on that device
        third = jax.devices()[2]
        out, h = eqx_ffn.fit(model, x, y, steps=20, device=third, progress=False)
        assert out.layers[0].weight.devices() == {third}, out.layers[0].weight.devices()
        np.testing.assert_allclose(h.loss, one_device[None].loss[:20], rtol=1e-6)
        out, h = eqx_ffn.fit(model, x, y, steps=20, device="cpu", progress=False)
        assert out.layers[0].weight.devices() == {jax.devices("cpu")[0]}

    def ensemble_part():
        x, y, _ = lecture_data_and_params()
        mesh = Mesh(np.array(jax.devices()), ("members",))
        make = lambda k: eqx_ffn.FFN(1, 1, (16,), key=k)
        keys = jr.split(jr.key(0), 8)
        for bs, steps in ((None, 100), (40, 60)):
            kw = dict(keys=keys, steps=steps, batch_size=bs, learning_rate=0.01, progress=False)
            m1, h1 = eqx_ffn.fit_ensemble(make, x, y, **kw)
            m4, h4 = eqx_ffn.fit_ensemble(make, x, y, mesh=mesh, **kw)
            if bs is None:
                full_batch = h1
            # each device holds 2 of the 8 members
            w = m4.layers[0].weight
            assert w.sharding.spec[0] == "members" and len(w.sharding.device_set) == 4, w.sharding
            assert len(w.addressable_shards) == 4 and w.addressable_shards[0].data.shape[0] == 2
            # float rounding only: another program layout, the same arithmetic
            for a, b in zip(h1, h4):
                np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5)
                np.testing.assert_allclose(b.final_loss, a.final_loss, rtol=1e-5)
                assert a.stop_reason == b.stop_reason
            arrays = lambda m: [a for a in jax.tree.leaves(m) if isinstance(a, jax.Array)]
            for a, b in zip(arrays(m1), arrays(m4), strict=True):
                np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
        # a list of devices is a 1-D mesh too (the full-batch programs again: no compile); K must
        # split evenly over the devices
        kw = dict(keys=keys, steps=100, learning_rate=0.01, progress=False)
        _, h4 = eqx_ffn.fit_ensemble(make, x, y, mesh=jax.devices(), **kw)
        for a, b in zip(full_batch, h4):
            np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5)
        try:
            eqx_ffn.fit_ensemble(make, x, y, keys=keys[:6], steps=1, mesh=mesh, progress=False)
        except ValueError as e:
            assert "K=6" in str(e) and "multiple of 4" in str(e), e
        else:
            raise AssertionError("6 members over 4 devices accepted")

    for name, part in (("fit", fit_part), ("ensemble", ensemble_part)):
        try:
            part()
            print(f"{name} ok", flush=True)
        except BaseException:
            print(f"{name} failed:\\n{traceback.format_exc()}", flush=True)
    """
)


@pytest.fixture(scope="module")
def four_devices() -> str:
    """The script's output (both parts), run once for the module's tests."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).parents[1],  # the folder of conftest.py
    )
    return out.stdout + "\n" + out.stderr[-4000:]


def _part(output: str, name: str) -> None:
    assert f"{name} ok" in output.splitlines(), output[-6000:]


def test_four_device_fit_equals_one_device(four_devices):
    _part(four_devices, "fit")


def test_four_device_ensemble_equals_one_device(four_devices):
    _part(four_devices, "ensemble")
