from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import lecture_data_and_params

import eqx_ffn
from eqx_ffn.io._lecture_data import (
    Dataset,
    _sine_1d,
    lecture_params,
    sine_1d,
    sine_1d_large,
    sine_1d_target,
    sine_cosine_2d,
    sine_cosine_2d_target,
    train_test_split,
)

# -- REFERENCE.md sections 1-3 -----------------------------------------------------------------


def test_sine_1d_is_the_lecture_data_bit_for_bit(lecture1):
    x_ref, y_ref, _ = lecture1
    ds = sine_1d()
    assert isinstance(ds, Dataset) and ds.name == "sine_1d"
    assert ds.x.shape == (200, 1) and ds.y.shape == (200, 1)
    assert ds.x.dtype == jnp.float32 and ds.y.dtype == jnp.float32
    np.testing.assert_array_equal(ds.x, x_ref)
    np.testing.assert_array_equal(ds.y, y_ref)
    assert ds.x_test is None and ds.y_test is None
    assert -1 <= float(ds.x.min()) and float(ds.x.max()) <= 1
    np.testing.assert_array_equal(ds.f(ds.x), ds.y)  # noise-free
    x, y = ds  # unpacks like (x, y)
    assert x is ds.x and y is ds.y
    assert ds[:2] == (ds.x, ds.y)
    assert (ds.n_x, ds.n_y, ds.n_samples) == (1, 1, 200)


def test_sine_1d_compiles_once_per_shape():
    sine_1d()
    before = _sine_1d._cache_size()
    sine_1d()
    sine_1d(key=jr.key(7))
    assert _sine_1d._cache_size() == before


def test_sine_1d_large_is_section_3():
    x_ref, y_ref, _ = lecture_data_and_params(5, (16,), n=20000)
    ds = sine_1d_large()
    assert ds.x.shape == (20000, 1)
    np.testing.assert_array_equal(ds.x, x_ref)
    np.testing.assert_array_equal(ds.y, y_ref)


def test_sine_1d_key_and_size():
    a = sine_1d(50, key=jr.key(0))
    b = sine_1d(50, key=jr.key(0))
    c = sine_1d(50, key=jr.key(1))
    assert a.x.shape == (50, 1)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    np.testing.assert_array_equal(sine_1d(key=jr.PRNGKey(42)).x, sine_1d().x)  # raw keys too
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        sine_1d(0)
    with pytest.raises(ValueError, match="n must be an integer"):
        sine_1d(2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be one jax.random key"):
        sine_1d(key=42)  # type: ignore[arg-type]


def test_lecture_params_are_the_lecture_params(lecture1, lecture2):
    for (_, _, ref), hidden in ((lecture1, (16,)), (lecture2, (16, 16))):
        params = lecture_params(hidden)
        assert set(params) == set(ref)
        for name in ref:
            assert params[name].dtype == jnp.float32
            np.testing.assert_array_equal(params[name], ref[name], err_msg=name)
    p = lecture_params()
    assert [p[k].shape for k in ("W1", "b1", "W2", "b2")] == [(16, 1), (16,), (1, 16), (1,)]
    assert lecture_params(16)["W1"].shape == (16, 1)


def test_reference_numbers_at_initialisation():
    x, y = sine_1d()
    one = eqx_ffn.FFN.from_params(lecture_params())
    np.testing.assert_allclose(one(x[10]), [1.5116649], rtol=1e-6)
    np.testing.assert_allclose(jnp.mean((jax.vmap(one)(x) - y) ** 2), 8.191615, rtol=1e-6)
    two = eqx_ffn.FFN.from_params(lecture_params((16, 16)))
    np.testing.assert_allclose(two(x[10]), [0.7192471], rtol=1e-6)
    np.testing.assert_allclose(jnp.mean((jax.vmap(two)(x) - y) ** 2), 12.46754, rtol=1e-6)


def test_lecture_params_mimo_and_errors():
    p = lecture_params((8, 4), n_x=3, n_y=2, key=jr.key(1))
    assert [p[f"W{i}"].shape for i in (1, 2, 3)] == [(8, 3), (4, 8), (2, 4)]
    assert eqx_ffn.FFN.from_params(p)(jnp.ones(3)).shape == (2,)
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\] must be an integer >= 1; got 0"):
        lecture_params((16, 0))
    with pytest.raises(TypeError, match="hidden_sizes must be a sequence"):
        lecture_params("16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_y must be an integer >= 1"):
        lecture_params(n_y=0)


# -- REFERENCE.md section 4 --------------------------------------------------------------------


def test_sine_cosine_2d_follows_its_documented_recipe():
    ds = sine_cosine_2d()
    assert ds.x.shape == (500, 2) and ds.y.shape == (500, 1)
    assert ds.x_test is not None and ds.y_test is not None
    assert ds.x_test.shape == (500, 2) and ds.y_test.shape == (500, 1)
    assert ds.x.dtype == jnp.float32
    # The docstring's recipe, eagerly: key(42) split in 4.
    k_x, k_n, k_xt, k_nt = jr.split(jr.key(42), 4)
    x = -2 + 4 * jr.uniform(k_x, (500, 2))
    x_test = -2 + 4 * jr.uniform(k_xt, (500, 2))
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.x_test, x_test)
    f = 2 * jnp.sin(x[:, :1]) - 3 * jnp.cos(x[:, 1:])
    np.testing.assert_allclose(ds.y, f + 0.1 * jr.normal(k_n, (500, 1)), rtol=1e-6, atol=1e-6)
    f_test = 2 * jnp.sin(x_test[:, :1]) - 3 * jnp.cos(x_test[:, 1:])
    y_test = f_test + 0.1 * jr.normal(k_nt, (500, 1))
    np.testing.assert_allclose(ds.y_test, y_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.f(x), f, rtol=1e-6, atol=1e-6)
    for xs, ys in ((ds.x, ds.y), (ds.x_test, ds.y_test)):
        assert -2 <= float(xs.min()) and float(xs.max()) <= 2
        noise = np.asarray(ys - sine_cosine_2d_target(xs))
        assert 0.09 < noise.std() < 0.11 and abs(noise.mean()) < 0.015
    assert not np.array_equal(ds.x, ds.x_test)


def test_sine_cosine_2d_options():
    clean = sine_cosine_2d(20, 0, noise=0.0, key=jr.key(3))
    assert clean.x.shape == (20, 2) and clean.x_test is None and clean.y_test is None
    np.testing.assert_allclose(clean.y, sine_cosine_2d_target(clean.x), rtol=1e-6, atol=1e-6)
    assert sine_cosine_2d_target(jnp.zeros(2)).shape == (1,)  # one sample works too
    np.testing.assert_allclose(sine_1d_target(jnp.zeros(1)), [-3.0])
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        sine_cosine_2d(noise=-0.1)
    with pytest.raises(ValueError, match="n_test must be an integer >= 0"):
        sine_cosine_2d(n_test=-1)


def test_dataset_checks_shapes():
    with pytest.raises(ValueError, match=r"got x \(3, 1\) and y \(4, 1\)"):
        Dataset(jnp.zeros((3, 1)), jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match="both x_test and y_test, or neither"):
        Dataset(jnp.zeros((3, 1)), jnp.zeros((3, 1)), x_test=jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"x_test of shape \(M, 1\)"):
        Dataset(jnp.zeros((3, 1)), jnp.zeros((3, 1)), jnp.zeros((2, 2)), jnp.zeros((2, 1)))


# -- train_test_split --------------------------------------------------------------------------


def test_train_test_split():
    x = jnp.arange(20.0).reshape(10, 2)
    y = jnp.arange(10.0)
    (x_tr, y_tr), (x_te, y_te) = train_test_split(x, y, test_fraction=0.3, key=jr.key(0))
    assert x_tr.shape == (7, 2) and y_tr.shape == (7,) and x_te.shape == (3, 2)
    np.testing.assert_array_equal(x_tr[:, 0], 2 * y_tr)  # rows stay paired
    np.testing.assert_array_equal(x_te[:, 0], 2 * y_te)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(10))
    again = train_test_split(x, y, test_fraction=0.3, key=jr.key(0))
    np.testing.assert_array_equal(again[1][1], y_te)
    other = train_test_split(x, y, test_fraction=0.3, key=jr.key(1))
    assert not np.array_equal(other[1][1], y_te)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5, True])
def test_train_test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="test_fraction must be a number strictly between 0 and 1"):
        train_test_split(
            jnp.zeros((10, 1)), jnp.zeros((10, 1)), test_fraction=fraction, key=jr.key(0)
        )


def test_train_test_split_needs_both_parts_and_matching_rows():
    with pytest.raises(ValueError, match="both parts need at least one row"):
        train_test_split(jnp.zeros((3, 1)), jnp.zeros((3, 1)), test_fraction=0.1, key=jr.key(0))
    with pytest.raises(ValueError, match="the same N"):
        train_test_split(jnp.zeros((3, 1)), jnp.zeros((4, 1)), key=jr.key(0))
    with pytest.raises(TypeError, match="needs key="):
        train_test_split(jnp.zeros((3, 1)), jnp.zeros((3, 1)), key=None)  # type: ignore[arg-type]


def test_float64_under_x64(tmp_path):
    """Data follow JAX's default float; this needs a process of its own."""
    (tmp_path / "t.csv").write_text("a,b\n0.1,0.2\n")
    code = textwrap.dedent(
        f"""
        import jax.numpy as jnp
        from eqx_ffn.io._lecture_data import lecture_params, sine_1d, sine_cosine_2d
        from eqx_ffn.datasets import load_table
        assert sine_1d().x.dtype == jnp.float64 and sine_1d().y.dtype == jnp.float64
        assert sine_cosine_2d(5, 5).y_test.dtype == jnp.float64
        assert lecture_params()["W1"].dtype == jnp.float64
        ds = load_table({str(tmp_path / "t.csv")!r})
        assert ds.x.dtype == jnp.float64 and float(ds.x[0, 0]) == 0.1
        """
    )
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_generators_programs_give_the_same_numbers_under_jit_and_vmap():
    # on a CPU the generators compile with FAST_COMPILE_OPTIONS (`fast_jit`); an outer jit,
    # which refuses compiler options on a nested one, traces them inline instead
    from eqx_ffn.io._lecture_data import _lecture_params

    keys = jr.split(jr.key(3), 2)
    alone = [_lecture_params(k, (1, 16, 1)) for k in keys]
    jitted = jax.jit(lambda k: _lecture_params(k, (1, 16, 1)))(keys[1])
    batched = jax.vmap(lambda k: _lecture_params(k, (1, 16, 1)))(keys)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(jitted[name], alone[1][name])
        for i in range(2):
            np.testing.assert_array_equal(batched[name][i], alone[i][name])
