"""What a fit does not pay for: unused penalty terms, a copy of large data through the host, a
raveled parameter vector for large networks; and that none of it changes what a fit computes."""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN, fit, fit_ensemble, ravel
from eqx_ffn.training import _data, _prepare
from eqx_ffn.training import _program_cache as _engine
from eqx_ffn.training._fit import split_model
from eqx_ffn.training._options import FitOptions


def _options(**kw) -> FitOptions:
    base = dict(
        steps=5, progress=False, key=jr.key(0), optimizer="adam", learning_rate=1e-2, l1=0.0, l2=0.0
    )
    base.update(kw)
    return FitOptions.of(base)


@pytest.mark.parametrize(
    ("l1", "l2", "terms"),
    [(0.0, 0.0, (False, False)), (0.0, 1e-3, (False, True)), (1e-3, 0.0, (True, False))],
)
def test_penalty_terms_follow_the_coefficients(l1, l2, terms):
    assert _options(l1=l1, l2=l2).penalty_terms == terms
    assert _options(l1=l1, l2=l2).penalised == any(terms)


def test_small_networks_share_one_program_for_every_penalty(lecture1):
    x, y, _ = lecture1
    model = FFN(1, 1, (16,), key=jr.key(1))
    fit(model, x, y, steps=3, l2=1e-3, progress=False)  # compiled (or cached) here
    before = _engine.compile_count
    fit(model, x, y, steps=3, l2=2e-2, progress=False)
    fit(model, x, y, steps=7, l2=0.0, progress=False)
    fit(model, x, y, steps=7, l1=1e-3, progress=False)
    assert _engine.compile_count == before  # l1 and l2 are run-time inputs, 0 included


def test_large_networks_leave_unused_penalty_terms_out():
    big = FFN(300, 1, (256,), key=jr.key(0))  # 77,313 weights
    small = FFN(300, 1, (8,), key=jr.key(0))
    x, y = np.zeros((8, 300), np.float32), np.zeros((8, 1), np.float32)
    cases = [
        (big, dict(l2=0.0), (False, False)),
        (big, dict(l2=1e-3), (False, True)),
        (big, dict(l1=1e-3), (True, False)),
        (small, dict(l2=0.0), (True, True)),
    ]
    for model, kw, terms in cases:
        prep = _prepare.Prepared(model, x, y, _options(**kw))
        assert prep.config(split_model(model)[2]).penalty_terms == terms


def test_member_without_penalty_equals_its_own_fit(lecture1):
    # the penalty's l2 is a per-member input: member 0's is 0, member 1's is not
    x, y, _ = lecture1
    keys = jr.split(jr.key(3), 2)
    _, hs = fit_ensemble(
        lambda k: FFN(1, 1, (16,), key=k), x, y, keys=keys, l2=jnp.array([0.0, 0.1]),
        steps=300, progress=False,
    )  # fmt: skip
    model_key, fit_key = jr.split(keys[0])
    _, h0 = fit(FFN(1, 1, (16,), key=model_key), x, y, steps=300, key=fit_key, progress=False)
    np.testing.assert_allclose(hs[0].loss, h0.loss, rtol=2e-5)
    np.testing.assert_allclose(hs[0].data_loss, h0.loss, rtol=2e-5)
    assert hs[1].loss[-1] > hs[1].data_loss[-1]  # member 1 pays its penalty


def test_large_networks_train_on_their_own_arrays(monkeypatch, lecture1):
    # an elementwise optimizer updates one raveled vector for small networks and the layers'
    # arrays above FLAT_MAX_WEIGHTS: the same arithmetic, element by element
    x, y, _ = lecture1
    model = FFN(1, 1, (16,), key=jr.key(2))
    flat, h_flat = fit(model, x, y, steps=200, progress=False)
    monkeypatch.setattr(_prepare, "FLAT_MAX_WEIGHTS", 10)
    tree, h_tree = fit(model, x, y, steps=200, progress=False)
    np.testing.assert_allclose(h_tree.loss, h_flat.loss, rtol=1e-5)
    np.testing.assert_allclose(ravel(tree)[0], ravel(flat)[0], rtol=1e-5, atol=1e-7)


# --- large data on a CPU: one copy, into memory the device shares ----------------------------


def test_aligned_rows_are_shared_with_the_cpu_device():
    a = np.arange(3000 * 7, dtype=np.float64).reshape(3000, 7)
    out = _data.aligned_rows(a, 4096, np.float32)
    assert out.shape == (4096, 7) and out.dtype == np.float32
    assert out.ctypes.data % _data.ALIGNMENT == 0
    np.testing.assert_array_equal(out[:3000], a.astype(np.float32))
    assert not out[3000:].any()
    if jax.devices()[0].platform == "cpu":
        on_device = jax.device_put(out)
        assert on_device.unsafe_buffer_pointer() == out.ctypes.data  # no copy


def test_staging_buffer_is_reused_only_when_nothing_holds_it():
    a = np.ones((2048, 100), np.float32)  # 800 KB
    first = _data.aligned_rows(a, 2048, np.float32)
    held = jax.device_put(first)
    address = first.ctypes.data
    del first
    second = _data.aligned_rows(2 * a, 2048, np.float32)
    assert second.ctypes.data != address  # `held` still reads the first buffer
    np.testing.assert_array_equal(np.asarray(held), a)  # ... and it is intact
    del held, second
    gc.collect()
    third = _data.aligned_rows(3 * a, 2048, np.float32)
    assert third.ctypes.data == address  # free again: reused
    np.testing.assert_array_equal(third, 3 * a)
    del third
    small = _data.aligned_rows(np.ones((10, 3), np.float32), 16, np.float32)  # labels, say
    assert small.ctypes.data != address
    del small
    again = _data.aligned_rows(a, 2048, np.float32)
    assert again.ctypes.data == address  # a small request did not evict the large buffer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_data_are_copied_and_checked_by_blocks(monkeypatch, dtype):
    # blocks of 2 rows on the pool's threads (each summed after its copy): the same verdict
    # as NumPy's `isfinite` wherever the bad value sits, and the exact copy
    monkeypatch.setattr(_data, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_data, "BLOCK_BYTES", 2 * 5 * 8)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((41, 5))
    assert len(_data._blocks(a)) == 21
    out, finite = _data.aligned_rows_checked(a, 64, dtype)
    assert finite and _data.all_finite(a)
    np.testing.assert_array_equal(out[:41], a.astype(dtype))
    assert not out[41:].any()
    for row, value in [(0, np.nan), (20, np.inf), (40, -np.inf), (39, 1e300)]:
        bad = a.copy()
        bad[row, 2] = value
        with np.errstate(over="ignore"):
            expected = bool(np.isfinite(bad.astype(dtype)).all())  # 1e300 overflows float32
        assert _data.aligned_rows_checked(bad, 64, dtype)[1] is expected
        assert _data.all_finite(bad) is bool(np.isfinite(bad).all())
    # finite values whose block sum overflows: the exact check says finite
    huge = np.full((41, 5), 3e38, np.float32)
    assert _data.aligned_rows_checked(huge, 64, np.float32)[1] is True
    assert _data.all_finite(huge) is True


def test_short_fits_of_large_steps_take_few_host_indices():
    # the host-drawn indices of one call cover a few seconds of estimated steps (not 16 MB
    # for a wide network's 1024-sample batches), whatever the size, and at least one chunk
    from eqx_ffn.solvers._resolve import resolve_solver
    from eqx_ffn.training._schedule import HOST_INDICES_MAX, schedule

    adam, _ = resolve_solver("adam", 1e-3)
    wide = schedule(adam, rows=1024, weights=1_863_690, k=1, platform="cpu",
                    host_indices=1024, has_val=False)  # fmt: skip
    assert wide.ring and wide.chunk == 2 and wide.chunk * wide.max_chunks <= 16  # a ring pair
    small = schedule(adam, rows=32, weights=49, k=1, platform="cpu", host_indices=32,
                     has_val=False)  # fmt: skip
    steps = small.chunk * small.max_chunks
    assert steps * 32 <= HOST_INDICES_MAX and steps >= 4096
    device = schedule(adam, rows=1024, weights=1_863_690, k=1, platform="cpu",
                      host_indices=0, has_val=False)  # fmt: skip
    assert device.max_chunks > wide.max_chunks  # indices drawn in the program: no input


def test_a_short_call_draws_only_its_own_host_indices():
    # NumPy draws a block's stream in order: a call of a few steps draws only their rows, the
    # same indices the whole block gives them (so calls may be cut anywhere)
    from types import SimpleNamespace

    from eqx_ffn.training._sampling import REPLACEMENT_BLOCK, host_indices, replacement_block

    kd = np.asarray(jax.random.key_data(jr.key(5)))
    full = replacement_block(kd, 3, 1000, 7)
    assert full.shape == (REPLACEMENT_BLOCK, 7)
    for rows in (1, 8, REPLACEMENT_BLOCK - 1):
        np.testing.assert_array_equal(replacement_block(kd, 3, 1000, 7, rows), full[:rows])
    cfg = SimpleNamespace(batch_size=7, ensemble=False, steps_per_call=600, sampling="replacement")
    whole = host_indices(cfg, kd, 1000, 0, 600)  # type: ignore[arg-type]
    assert whole.min() >= 0 and whole.max() < 1000 and len(np.unique(whole)) > 900
    for start, count in ((0, 8), (250, 10), (300, 256), (511, 2), (0, 1)):
        part = host_indices(cfg, kd, 1000, start, count)  # type: ignore[arg-type]
        np.testing.assert_array_equal(part[:count], whole[start : start + count])
        assert not part[count:].any()


def _big(n=20000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))  # float64: cast in the staging copy
    y = np.tanh(x[:, :1])
    return x, y


def test_large_data_errors_name_the_value():
    x, y = _big()
    model = FFN(8, 1, (4,), key=jr.key(0))
    bad = x.copy()
    bad[12345, 3] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 12345, column 3\)"):
        fit(model, bad, y, steps=1, progress=False)
    big = x.copy()
    big[777, 1] = 1e300
    with pytest.raises(ValueError, match=r"x has values too large for float32 \(first at row 777"):
        fit(model, big, y, steps=1, progress=False)


def test_large_data_are_the_callers_values_at_the_call():
    # the fit trains on its own copy: changing the caller's array afterwards changes neither
    # the lazily computed final loss nor a second fit's start
    x, y = _big()
    model = FFN(8, 1, (4,), key=jr.key(0))
    kw = dict(steps=50, batch_size=64, progress=False, key=jr.key(1))
    trained, h1 = fit(model, x, y, **kw)
    expected = np.mean((np.asarray(jax.vmap(trained)(jnp.asarray(x, jnp.float32))) - y) ** 2)
    x[:] = 1e3  # the caller reuses its buffer
    np.testing.assert_allclose(h1.final_loss, expected, rtol=1e-4)
    x2, _ = _big()
    _, h2 = fit(model, x2, y, **kw)
    np.testing.assert_array_equal(h2.loss, h1.loss)
