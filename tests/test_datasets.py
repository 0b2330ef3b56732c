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
from eqx_ffn._datasets import (
    Dataset,
    _sine_1d,
    lecture_params,
    load_table,
    sine_1d,
    sine_1d_large,
    sine_1d_target,
    sine_cosine_2d,
    sine_cosine_2d_target,
    train_test_split,
    write_csv,
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


# -- load_table / write_csv --------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "plant.csv"
    path.write_text("# a comment\nu1, u2 ,y\n0.5,1,2.25\n\n-1e-3,2,3\n4,5,6\n")
    return path


def test_load_csv_by_name_index_and_default(table):
    ds = load_table(table, ["u1", "u2"], "y")
    assert ds.x.dtype == jnp.float32 and ds.x.shape == (3, 2) and ds.y.shape == (3, 1)
    np.testing.assert_array_equal(ds.x, np.float32([[0.5, 1], [-1e-3, 2], [4, 5]]))
    np.testing.assert_array_equal(ds.y, [[2.25], [3], [6]])
    assert ds.x_names == ("u1", "u2") and ds.y_names == ("y",) and ds.name == "plant"
    default = load_table(table)  # y = last column, x = the others
    np.testing.assert_array_equal(default.x, ds.x)
    np.testing.assert_array_equal(default.y, ds.y)
    by_index = load_table(table, [1], [-1, 0], dtype=np.float64)
    assert by_index.x_names == ("u2",) and by_index.y_names == ("y", "u1")
    assert by_index.x.dtype == jnp.float32  # JAX rounds to its default float without x64
    np.testing.assert_array_equal(by_index.y[:, 1], np.float32([0.5, -1e-3, 4]))


def test_load_only_inputs_or_only_outputs(tmp_path, table):
    only_y = load_table(table, x_cols=[], y_cols="y")
    assert only_y.x.shape == (3, 0) and only_y.x_names == ()
    np.testing.assert_array_equal(only_y.y[:, 0], [2.25, 3, 6])
    only_x = load_table(table, ["u2", "u1"], [])
    assert only_x.x_names == ("u2", "u1") and only_x.y.shape == (3, 0)
    assert load_table(table, None, []).x.shape == (3, 3)  # every column is an input
    with pytest.raises(ValueError, match="x_cols and y_cols are both empty"):
        load_table(table, [], [])
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 2)), y=np.zeros(4))
    assert load_table(path, [], "y").x.shape == (4, 0)
    assert load_table(path, "x", []).y.shape == (4, 0)
    with pytest.raises(ValueError, match="x_cols and y_cols are both empty"):
        load_table(path, [], [])


def test_load_csv_errors_name_the_problem(tmp_path, table):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_table(tmp_path / "missing.csv", "a", "b")
    with pytest.raises(ValueError, match=r"column 'u3'.*Available columns: 'u1', 'u2', 'y'"):
        load_table(table, ["u1", "u3"], "y")
    with pytest.raises(ValueError, match=r"column index 3.*3 columns"):
        load_table(table, [3], "y")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"line 3, column 'b' \(index 1\): 'oops' is not a number"):
        load_table(bad, "a", "b")
    for cell in ("nan", "inf", "-Infinity"):
        bad.write_text(f"a,b\n1,2\n{cell},4\n")
        with pytest.raises(ValueError, match=r"line 3, column 'a'.*NaN and inf are not allowed"):
            load_table(bad, "a", "b")
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 cells but the header has 2"):
        load_table(bad, "a", "b")
    bad.write_text("a,b\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_table(bad, "a", "b")
    bad.write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        load_table(bad, "a", "b")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match="not a UTF-8 text table"):
        load_table(bad)
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        load_table(table, dtype=np.int32)


def test_load_npz(tmp_path):
    rng = np.random.default_rng(0)
    x, y, extra = rng.normal(size=(6, 2)), rng.normal(size=6), rng.normal(size=(6, 1))
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y, extra=extra)
    ds = load_table(path)
    assert ds.x.shape == (6, 2) and ds.y.shape == (6, 1)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    np.testing.assert_array_equal(ds.y[:, 0], y.astype(np.float32))
    both = load_table(path, ["x", "extra"], "y")
    assert both.x.shape == (6, 3) and both.x_names == ("x[0]", "x[1]", "extra")
    with pytest.raises(ValueError, match=r"array 'z'.*Available arrays: 'x', 'y', 'extra'"):
        load_table(path, "z", "y")
    np.savez(path, x=x, y=rng.normal(size=5))
    with pytest.raises(ValueError, match="x has 6 rows but y has 5"):
        load_table(path)
    x[2, 1] = np.nan
    np.savez(path, x=x, y=y)
    with pytest.raises(ValueError, match="row 2, column 'x\\[1\\]' is nan"):
        load_table(path)
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        load_table(path)


def test_write_csv_round_trips_exactly(tmp_path):
    values = np.asarray(jr.normal(jr.key(0), (25, 3)))
    path = write_csv(tmp_path / "sub" / "pred.csv", values, ["a", "b", "y_hat"])
    assert path.read_text().splitlines()[0] == "a,b,y_hat"
    back = load_table(path, ["a", "b"], "y_hat")
    np.testing.assert_array_equal(back.x, values[:, :2])
    np.testing.assert_array_equal(back.y[:, 0], values[:, 2])
    with pytest.raises(ValueError, match="header has 2 names but columns has 3"):
        write_csv(tmp_path / "x.csv", values, ["a", "b"])


def test_float64_under_x64(tmp_path):
    """Data follow JAX's default float; this needs a process of its own."""
    (tmp_path / "t.csv").write_text("a,b\n0.1,0.2\n")
    code = textwrap.dedent(
        f"""
        import jax.numpy as jnp
        from eqx_ffn._datasets import lecture_params, load_table, sine_1d, sine_cosine_2d
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
