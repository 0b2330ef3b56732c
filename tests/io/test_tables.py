"""Reading and writing tables: eqx_ffn/io/_read_table.py and the CSV (pandas or NumPy) and .npz
readers behind it."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eqx_ffn
from eqx_ffn.io import _csv
from eqx_ffn.io._read_table import load_table, read_table
from eqx_ffn.io._table import MISSING
from eqx_ffn.io._write_csv import write_csv


@pytest.fixture(params=["pandas", "numpy"])
def parser(request, monkeypatch):
    """Run a test with pandas' parser, and again with NumPy's (pandas hidden)."""
    if request.param == "numpy":
        monkeypatch.setattr(_csv, "_pandas", lambda: None)
    return request.param


def _write(tmp_path, text: str | bytes, name: str = "t.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- what a good table gives -------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "plant.csv"
    path.write_text("# a comment\nu1, u2 ,y\n0.5,1,2.25\n\n-1e-3,2,3\n4,5,6\n")
    return path


def test_load_csv_by_name_index_and_default(table, parser):
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


def test_datasets_reexports_the_table_functions():
    assert eqx_ffn.datasets.load_table is load_table
    assert eqx_ffn.datasets.write_csv is write_csv
    assert eqx_ffn.datasets.read_table is read_table


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


@pytest.mark.parametrize(
    "text, delimiter, want",
    [
        ("a;b;c\n1.5;2;3\n4;5;6\n", None, ";"),
        ("a\tb\tc\n1.5\t2\t3\n4\t5\t6\n", None, "\t"),
        ("a|b|c\n1.5|2|3\n4|5|6\n", None, "|"),
        ("a;b;c\n1.5;2;3\n4;5;6\n", ";", ";"),
        ("a b c\n1.5 2 3\n4 5 6\n", " ", " "),
    ],
)
def test_delimiters_are_guessed_from_the_header_or_given(tmp_path, parser, text, delimiter, want):
    t = read_table(_write(tmp_path, text), delimiter=delimiter)
    assert t.delimiter == want and t.x_names == ("a", "b")
    np.testing.assert_array_equal(t.x, [[1.5, 2], [4, 5]])
    np.testing.assert_array_equal(t.y, [[3], [6]])


def test_quotes_bom_crlf_spaces_and_comments(tmp_path, parser):
    text = '\ufeff# made by hand\r\n"a","b, c",y\r\n 1 ,"2", 3\r\n\r\n# skipped\r\n4,5,6\r\n'
    t = read_table(_write(tmp_path, text.encode("utf-8")))
    assert t.x_names == ("a", "b, c") and t.y_names == ("y",)
    np.testing.assert_array_equal(t.x, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(t.y, [[3], [6]])


def test_unused_text_columns_are_fine(tmp_path, parser):
    t = read_table(_write(tmp_path, "id,a,y\nfirst,1,2\nsecond,3,4\n"), ["a"], "y")
    np.testing.assert_array_equal(t.x, [[1], [3]])


def test_labels_are_text_or_numbers(tmp_path, parser):
    text = "a,b,kind\n1,2,cat\n3,4, dog \n5,6,NA\n"
    t = read_table(_write(tmp_path, text), labels=True)
    assert t.text_labels and t.y.tolist() == [["cat"], ["dog"], ["NA"]]  # 'NA' is a label here
    num = read_table(
        _write(tmp_path, "a,b,k\n1,2,1\n3,4,NA\n5,6,2\n"), labels=True, drop_missing=True
    )
    assert not num.text_labels and num.y.tolist() == [[1.0], [2.0]] and num.n_dropped == 1
    long = read_table(_write(tmp_path, "a,k\n1,2\n2,0." + "9" * 300 + "\n"), labels=True)
    assert not long.text_labels and long.y.tolist() == [[2.0], [1.0]]  # a long number, no label
    with pytest.raises(ValueError, match=r"line 3, column 'k' is empty \(a missing label\)"):
        read_table(_write(tmp_path, "a,k\n1,x\n2,\n"), labels=True)
    with pytest.raises(ValueError, match=r"line 2, column 'k' \(index 1\): 'x' is not a number"):
        read_table(_write(tmp_path, "a,k\n1,x\n2,y\n"))  # labels not allowed


def test_drop_missing_drops_and_counts(tmp_path, parser):
    text = "a,b,y\n1,2,3\n4,,6\n7,NA,9\n10,11,12\n13,14,nan\n"
    path = _write(tmp_path, text)
    t = read_table(path, drop_missing=True)
    assert t.n_dropped == 3 and t.x.tolist() == [[1, 2], [10, 11]] and t.y.tolist() == [[3], [12]]
    assert read_table(path, ["a"], "b", drop_missing=True).n_dropped == 2  # y's nan not used
    ds = load_table(path, drop_missing=True)
    assert "3 rows with missing values dropped" in ds.description
    for marker in ("", "NA", "nan", "?", "NULL"):
        assert marker in MISSING


def test_the_fast_missing_value_path_agrees_with_the_reference(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 4)).round(3).astype(str)
    values[rng.random(values.shape) < 0.02] = ""
    text = "a,b,c,y\n" + "\n".join(",".join(r) for r in values) + "\n"
    path = _write(tmp_path, text)
    fast = read_table(path, drop_missing=True)
    monkeypatch.setattr(_csv, "_structure", lambda *a: None)  # forces the csv-module reader
    slow = read_table(path, drop_missing=True)
    assert fast.n_dropped == slow.n_dropped > 0
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.y, slow.y)


# -- every problem named by line and column -----------------------------------------------------


BAD_CSV = [
    ("a,b\n1,2\n3,oops\n", {}, r"line 3, column 'b' \(index 1\): 'oops' is not a number"),
    ("a,b\n1,2\n3,\n", {}, r"line 3, column 'b' is empty \(a missing value\).*drop_missing=True"),
    ("a,b\n1,2\n\n# c\n3,NA\n", {}, r"line 5, column 'b' is 'NA' \(a missing value\)"),
    ("a,b\n1,2\n3,inf\n", {}, r"line 3, column 'b' is 'inf': infinite values are not allowed"),
    ("a,b\n-Infinity,2\n", {}, r"line 2, column 'a' is '-Infinity': infinite"),
    ("a,b\n1,1e39\n", {"dtype": np.float32}, r"line 2, column 'b' is '1e39', beyond the float32"),
    ("a,b\n1,2\n3\n", {}, r"line 3 has 1 cells but the header \(line 1\) has 2 columns"),
    ("a,b\n1,2\n3,4,5\n", {}, r"line 3 has 3 cells but the header \(line 1\) has 2 columns"),
    ("a,b,a\n1,2,3\n", {}, r"names column 'a' twice \(columns 1 and 3\)"),
    (",a,b\n0,1,2\n", {}, r"column 1 of the header \(line 1\) has no name"),
    ("a,b\n", {}, r"has a header \(a, b\) but no data rows"),
    ("", {}, "the file is empty"),
    ("\n\n  \n", {}, "the file is empty"),
    ("# only\n# comments\n", {}, "no header row"),
    ("a,b\n1,1,5\n", {}, r"line 2 has 3 cells"),
    ("a;b\n1,5;2\n", {}, r"'1,5' is not a number. \(a decimal comma\?"),
    ("a,b\nTrue,1\n", {}, r"'True' is not a number"),
    ("a,b\n1_000,1\n", {}, r"'1_000' is not a number"),
    ("a,b\n1,2\n", {"x_cols": ["b"], "y_cols": "b"}, "named by both x_cols and y_cols"),
    ("a,b\n1,2\n", {"x_cols": ["a", "a"]}, "x_cols names column 'a' twice"),
    ("a,b\n1,2\n", {"x_cols": ["zz"]}, r"column 'zz'.*Available columns: 'a', 'b'"),
    ("a,b\n1,2\n", {"x_cols": [5]}, r"column index 5, but the file has 2 columns"),
    ("a,b\n1,2\n", {"y_cols": ["a", "b"]}, "no columns are left for x"),
    ("a,b\n,\n,\n", {"drop_missing": True}, "every one of the 2 data rows has a missing value"),
    ("a,b\n1,2\n# x\n3,4#\n", {}, r"line 4, column 'b' \(index 1\): '4#' is not a number"),
    ("a,b\n1,2\n", {"delimiter": "."}, "cannot separate cells"),
    ("a,b\n1,2\n", {"delimiter": ",,"}, "one character"),
]


@pytest.mark.parametrize("text, kwargs, message", BAD_CSV)
def test_bad_csv_names_the_problem(tmp_path, parser, text, kwargs, message):
    kwargs = dict(kwargs)
    x_cols, y_cols = kwargs.pop("x_cols", None), kwargs.pop("y_cols", None)
    with pytest.raises(ValueError, match=message):
        read_table(_write(tmp_path, text), x_cols, y_cols, **kwargs)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff", r"binary data \(a NUL byte on line 3\)"),
        (b"a,b\n1,\xff\n", r"line 2 is not UTF-8 text"),
        (b"a,\xff\n1,2\n", r"line 1 is not UTF-8 text"),
        (
            b"a,b\n1," + b"9" * 200_000 + b"\n",
            "line 2 holds a cell of more than 131,072 characters",
        ),
        (b'a,b\n1,"' + b"x" * 200_000 + b'"\n', "more than 131,072 characters"),
        (b'"a\nb",c\n1,2\n', r"the header \(line 1\) cannot be read"),
        (b"a,b\x01c\n1,2\n", "holds a line break or another control character"),
        (b"a," + b"n" * 300 + b"\n1,2\n", "names are limited to 256"),
    ],
)
def test_bad_bytes_names_the_problem(tmp_path, parser, data, message):
    with pytest.raises(ValueError, match=message):
        read_table(_write(tmp_path, data))


def test_labels_that_are_not_labels(tmp_path):
    with pytest.raises(ValueError, match="holds a label of 300 characters"):
        read_table(_write(tmp_path, "a,k\n1," + "x" * 300 + "\n2,y\n"), labels=True)
    with pytest.raises(ValueError, match="more than 131,072 characters"):
        read_table(_write(tmp_path, "a,k\n1," + "x" * 200_000 + "\n2,y\n"), labels=True)


def test_files_that_are_not_regular_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_table(tmp_path)
    with pytest.raises(ValueError, match="not a regular file"):
        read_table(os.devnull)
    if hasattr(os, "mkfifo"):  # a pipe would block a reader forever
        fifo = tmp_path / "pipe.csv"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="not a regular file"):
            read_table(fifo)
    big = _write(tmp_path, "a,b\n" + "1,2\n" * 100)
    with pytest.raises(
        ValueError, match=r"more than max_bytes=100; read_table and load_table take a larger"
    ):
        read_table(big, max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        read_table(big, max_bytes=0)
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        load_table(big, dtype=np.int32)


# -- npz ---------------------------------------------------------------------------------------


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
    x[2, 1] = np.nan
    np.savez(path, x=x, y=y)
    dropped = read_table(path, drop_missing=True)
    assert dropped.n_dropped == 1 and dropped.x.shape == (5, 2)
    np.savez(path, x=x[:, :1], y=np.array(["a", "b", "a", "b", "a", "b"]))
    labels = read_table(path, labels=True)
    assert labels.text_labels and labels.y[:2, 0].tolist() == ["a", "b"]


def _zip_declaring(path, size: int) -> None:
    """A small .npz whose zip directory declares `size` uncompressed bytes for 'x.npy'."""
    np.savez(path, x=np.zeros(4), y=np.zeros(4))
    data = bytearray(path.read_bytes())
    pos = data.index(b"PK\x01\x02")  # the central directory entry of the first member, x.npy
    assert data[pos + 46 : pos + 51] == b"x.npy"
    struct.pack_into("<I", data, pos + 24, size)
    path.write_bytes(bytes(data))


def test_npz_sizes_are_checked_before_decompressing(tmp_path):
    bomb = tmp_path / "bomb.npz"
    _zip_declaring(bomb, 4_000_000_000)  # 4 GB declared in a few hundred bytes
    with pytest.raises(ValueError, match=r"uncompressed, more than .*refused before decompressing"):
        read_table(bomb)
    zeros = tmp_path / "zeros.npz"
    np.savez_compressed(zeros, x=np.zeros((200_000, 2)), y=np.zeros(200_000))
    assert zeros.stat().st_size < 20_000  # 4.8 MB of zeros in a few kB: a small bomb
    with pytest.raises(
        ValueError, match=r"declare 4,800,256 bytes uncompressed, more than max_byt"
    ):
        read_table(zeros, max_bytes=1_000_000)
    assert read_table(zeros).x.shape == (200_000, 2)
    # a .npy header that claims 8 TB in a 200-byte entry: refused before anything is allocated
    liar = tmp_path / "liar.npz"
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(liar, "w") as z:
        z.writestr("x.npy", head.getvalue() + b"\0" * 64)
        z.writestr("y.npy", head.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"declares shape \(1000000000000,\).*damaged"):
        read_table(liar)


@pytest.mark.parametrize(
    "arrays, kwargs, message",
    [
        ({"x": np.array([{"a": 1}] * 3, dtype=object), "y": np.zeros(3)}, {}, "Python objects"),
        ({"x": np.ones((3, 2), complex), "y": np.zeros(3)}, {}, "must hold real numbers"),
        ({"x": np.ones((3, 2, 2)), "y": np.zeros(3)}, {}, r"shape \(N,\) or \(N, k\)"),
        ({"x": np.ones((3, 2)), "y": np.zeros(4)}, {}, "x has 3 rows but y has 4"),
        ({"x": np.ones((3, 2)), "y": np.zeros(3)}, {"x_cols": "z"}, "Available arrays: 'x', 'y'"),
        ({"x": np.ones((3, 2)), "y": np.zeros(3)}, {"x_cols": 0}, "by name"),
        ({"x": np.ones((3, 2)), "y": np.zeros(3)}, {"y_cols": "x"}, "both x_cols and y_cols"),
        (
            {"x": np.full((3, 2), np.nan), "y": np.zeros(3)},
            {},
            r"row 0 \(0-based\), column 'x\[0\]'",
        ),
        ({"x": np.full((3, 2), np.inf), "y": np.zeros(3)}, {}, "infinite values are not allowed"),
        (
            {"x": np.full((3, 2), 1e39), "y": np.zeros(3)},
            {"dtype": np.float32},
            "beyond the float32 range",
        ),
        ({"x": np.ones((3, 2)), "y": np.array(["a", "b", "c"])}, {}, "must hold real numbers"),
    ],
)
def test_bad_npz_names_the_problem(tmp_path, arrays, kwargs, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    kwargs = dict(kwargs)
    x_cols, y_cols = kwargs.pop("x_cols", None), kwargs.pop("y_cols", None)
    with pytest.raises(ValueError, match=message):
        read_table(path, x_cols, y_cols, **kwargs)


def test_npz_that_is_not_an_archive(tmp_path):
    path = _write(tmp_path, "not a zip", "d.npz")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        read_table(path)
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        read_table(path)


# -- writing -----------------------------------------------------------------------------------


def test_write_csv_round_trips_exactly(tmp_path, parser):
    values = np.asarray(jr.normal(jr.key(0), (25, 3)))
    path = write_csv(tmp_path / "sub" / "pred.csv", values, ["a", "b", "y_hat"])
    assert path.read_text().splitlines()[0] == "a,b,y_hat"
    back = load_table(path, ["a", "b"], "y_hat")
    np.testing.assert_array_equal(back.x, values[:, :2])
    np.testing.assert_array_equal(back.y[:, 0], values[:, 2])
    with pytest.raises(ValueError, match="header has 2 names but columns has 3"):
        write_csv(tmp_path / "x.csv", values, ["a", "b"])


def test_write_csv_quotes_what_could_add_a_row(tmp_path):
    labels = np.array(["cat", "a,b", 'say "hi"', "two\nlines"])
    path = write_csv(tmp_path / "p.csv", [labels, np.arange(4.0)], ["kind\nx", "p"])
    rows = list(csv.reader(path.open(newline="")))
    assert len(rows) == 5 and rows[0] == ["kind\nx", "p"]
    assert [r[0] for r in rows[1:]] == labels.tolist()
    with pytest.raises(ValueError, match="one-dimensional columns of the same length"):
        write_csv(tmp_path / "q.csv", [labels, np.arange(3.0)], ["a", "b"])


# -- the fast readers agree with the reference reader ------------------------------------------

CELLS = ["1", "2.5", "-3e2", "", "NA", "nan", "?", "cat", " 4 ", "inf", "1e39", "7.0", '"8"']


@st.composite
def _grids(draw) -> bytes:
    ncol, nrow = draw(st.integers(2, 4)), draw(st.integers(1, 6))
    rows = [",".join(draw(st.sampled_from(CELLS)) for _ in range(ncol)) for _ in range(nrow)]
    if draw(st.booleans()):
        rows[draw(st.integers(0, nrow - 1))] += draw(st.sampled_from([",", ",9", "#c"]))
    if draw(st.booleans()):
        rows.insert(draw(st.integers(0, nrow)), draw(st.sampled_from(["", "  ", "# c", ",,"])))
    head = ",".join(f"c{j}" for j in range(ncol))
    return (head + "\n" + "\n".join(rows) + "\n").encode()


def _outcome(path, labels, drop):
    try:
        t = read_table(path, labels=labels, drop_missing=drop, dtype=np.float32)
    except ValueError as e:
        return str(e)
    return (t.x.tolist(), t.y.tolist(), t.x_names, t.y_names, t.n_dropped)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=_grids(), labels=st.booleans(), drop=st.booleans())
def test_fast_readers_agree_with_the_reference(tmp_path_factory, data, labels, drop):
    path = tmp_path_factory.mktemp("agree") / "t.csv"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as mp:

        def slow(*args, **kwargs):
            raise _csv._Slow

        mp.setattr(_csv, "_fast_pandas", slow)
        mp.setattr(_csv, "_fast_numpy", slow)
        reference = _outcome(path, labels, drop)
    assert _outcome(path, labels, drop) == reference  # pandas
    with pytest.MonkeyPatch.context() as mp:  # pandas, the body in parts on threads
        mp.setattr(_csv, "PARALLEL_PARSE_MIN_BYTES", 1)
        mp.setattr(_csv, "cores", lambda: 3)
        assert _outcome(path, labels, drop) == reference
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_csv, "_pandas", lambda: None)
        assert _outcome(path, labels, drop) == reference  # NumPy


def test_a_large_body_is_parsed_in_parts_and_joined_in_order(tmp_path, monkeypatch):
    """Bodies of `PARALLEL_PARSE_MIN_BYTES` and more are cut at line ends and parsed on a thread
    each: the table equals the one-stream parse, comments, blank lines, missing values, label
    text and the line a problem is on included."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(400, 3)).round(4).astype(str)
    values[rng.random(values.shape) < 0.03] = "NA"
    labels = rng.choice(["cat", "dog"], 400)
    rows = [",".join([*r, lab]) for r, lab in zip(values, labels, strict=True)]
    rows[150:150] = ["# a comment", "", "# another"]
    path = _write(tmp_path, "a,b,c,y\n" + "\n".join(rows) + "\n")
    one = read_table(path, drop_missing=True, labels=True)
    read = []
    real = _csv._read_part
    monkeypatch.setattr(_csv, "_read_part", lambda *a: read.append(a[2:4]) or real(*a))
    monkeypatch.setattr(_csv, "PARALLEL_PARSE_MIN_BYTES", 1000)
    monkeypatch.setattr(_csv, "cores", lambda: 4)
    parts = read_table(path, drop_missing=True, labels=True)
    assert len(read) == 4 and [a for a, _ in read[1:]] == [b for _, b in read[:-1]]
    assert parts.n_dropped == one.n_dropped > 0
    np.testing.assert_array_equal(parts.x, one.x)
    np.testing.assert_array_equal(parts.y, one.y)
    # a problem in the last part is named by its line in the file
    bad = _write(tmp_path, "a,b,c,y\n" + "\n".join(rows[:-1]) + "\n1,2,oops,cat\n", "bad.csv")
    with pytest.raises(ValueError, match=rf"line {len(rows) + 1}, column 'c'.*'oops'"):
        read_table(bad, labels=True, drop_missing=True)
    # a part whose first record is far wider than the header: one stream (pandas would size
    # its columns on that record), and the reference reader names the line
    wide = [*rows[:300], "1," * 5000 + "2", *rows[300:]]
    path = _write(tmp_path, "a,b,c,y\n" + "\n".join(wide) + "\n", "wide.csv")
    cut = path.read_bytes().index(b"\n1,1,1,") + 1  # the wide record starts the second part
    monkeypatch.setattr(_csv, "_parts", lambda raw, start, k: [(start, cut), (cut, len(raw))])
    read.clear()
    with pytest.raises(ValueError, match="line 302 has 5001 cells"):
        read_table(path, labels=True, drop_missing=True)
    assert len(read) == 1  # one stream: the parts were not parsed


# -- bounded memory and time, whatever the file -------------------------------------------------

_BOUNDED_READ = r"""
import json, resource, sys, time
import pandas  # imported before the baseline: read_table imports it on first use
from eqx_ffn.io import _csv
from eqx_ffn.io._read_table import read_table

# Address space capped 1.5 GB above what the imports took: a reader that splits a line into
# millions of columns fails fast here instead of taking the machine's memory.
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 29), resource.getrlimit(resource.RLIMIT_AS)[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = []
for path, numpy_only in json.loads(sys.argv[1]):
    if numpy_only:
        _csv._pandas = lambda: None
    start = time.perf_counter()
    try:
        message = f"read {read_table(path).x.shape}"
    except BaseException as e:
        message = f"{type(e).__name__}: {e}"
    out.append([message, time.perf_counter() - start])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"cases": out, "peak": peak}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and RLIMIT_AS")
def test_a_line_of_millions_of_cells_is_refused_in_bounded_memory_and_time(tmp_path):
    # Issue 25: a 4 MB CSV whose second line has 2,000,000 cells took 39 s and 1.74 GB to be
    # refused (pandas sized its columns on that line). The cell count is now checked against the
    # header before a line is split: the peak is measured in a fresh process.
    wide = ",".join(["1"] * 2_000_000)
    plain = _write(tmp_path, "a,b,c,d\n" + wide + "\n" + "1,2,3,4\n" * 10, "plain.csv")
    # A first record that spans lines inside quotes, each line short: millions of cells too.
    spread = '",1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"\n' * 100_000
    quoted = _write(tmp_path, 'a,b,c,d\n1,"x\n' + spread + '",2,3\n1,2,3,4\n', "quoted.csv")
    later = _write(tmp_path, "a,b,c,d\n" + "1,2,3,4\n" * 1000 + wide + "\n", "later.csv")
    # A good table, but 130,000 columns wide (a 1 MB header): pandas took 48 s and 2 GB for it.
    n = 130_000
    header = ",".join(f"c{j}" for j in range(n))
    broad = _write(tmp_path, header + "\n" + (",".join(["1"] * n) + "\n") * 2, "broad.csv")
    files = (plain, quoted, later, broad)
    cases = [(str(p), numpy_only) for p in files for numpy_only in (0, 1)]
    result = subprocess.run(
        [sys.executable, "-c", _BOUNDED_READ, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    messages = [message for message, _ in report["cases"]]
    want = [
        r"line 2 has 2000000 cells but the header \(line 1\) has 4 columns",
        r"the record on line 2 holds 4,[0-9]{3} or more delimiters ',' \(quoted cells included\)",
        r"line 1002 has 2000000 cells but the header \(line 1\) has 4 columns",
    ]
    for i, message in enumerate(messages[:-2]):
        assert message.startswith("ValueError: ") and re.search(want[i // 2], message), message
    assert messages[-2:] == ["read (2, 129999)", "read (2, 129999)"]
    # Measured: about 30 MB above the imports and 0.05-1 s a file on a 2-core Xeon; the
    # bounds leave room for a slow or busy machine, far below the 1.74 GB and 39 s of before.
    assert report["peak"] < 200e6, report
    assert max(seconds for _, seconds in report["cases"]) < 10, report


def _npy_entry(shape, descr="<f8") -> bytes:
    """The bytes of an .npy file declaring `shape` (and holding no data: shapes with a 0)."""
    stream = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue()


def test_npz_shapes_are_bounded_before_reading(tmp_path):
    # A few bytes may declare 2e9 rows of no columns (or of empty labels): reading them would
    # allocate gigabytes of row masks. The shape is checked against the byte bound first.
    path = tmp_path / "rows.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", _npy_entry((2_000_000_000, 0)))
        z.writestr("y.npy", _npy_entry((2_000_000_000,), "<U0"))
        z.writestr("cube.npy", _npy_entry((2, 2, 0)))
    with pytest.raises(ValueError, match=r"make a table of 16,000,000,000 bytes once read, more"):
        read_table(path, y_cols=[])
    with pytest.raises(ValueError, match=r"make a table of 16,000,000,000 bytes once read"):
        read_table(path, x_cols=[], labels=True)
    with pytest.raises(
        ValueError, match=r"'cube' must have shape \(N,\) or \(N, k\); got \(2, 2, 0\)"
    ):
        read_table(path, x_cols="cube", y_cols=[])


def test_npz_directory_is_bounded(tmp_path, monkeypatch):
    from eqx_ffn.io import _npz

    path = tmp_path / "many.npz"
    np.savez(path, x=np.zeros(3), y=np.zeros(3), z=np.zeros(3))
    monkeypatch.setattr(_npz, "_MAX_ENTRIES", 2)
    with pytest.raises(ValueError, match=r"declares 3 entries, more than the 2 an .npz table"):
        read_table(path)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"delimiter": ";"}, "no columns are left for x"),
        ({"delimiter": ";", "y_cols": []}, "'1,2,3' is not a number"),
        ({"delimiter": "\t", "x_cols": "a"}, "x_cols names column 'a', which is not in the header"),
    ],
)
def test_a_wrong_delimiter_is_pointed_at(tmp_path, parser, kwargs, words):
    path = _write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    hint = (
        f"The header (line 1) is one column when split at delimiter={kwargs['delimiter']!r}, but "
        "it holds 2 ',': the file seems to use ','. Pass delimiter=',' (on the command line "
        "--delimiter ',')"
    )
    with pytest.raises(ValueError) as info:
        read_table(path, **kwargs)
    assert words in str(info.value) and hint in str(info.value)
    # A one-column file read with its own delimiter, or one guessed, gets no hint.
    one = _write(tmp_path, "a\n1\n2\n", "one.csv")
    assert read_table(one, x_cols=[], delimiter=";").y.tolist() == [[1.0], [2.0]]


def test_bad_arguments_are_named(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n")
    for bad in (123, b"t.csv", None):
        with pytest.raises(TypeError, match=r"path must be a file path \(a str or os.PathLike\)"):
            read_table(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"path is empty; pass the path of a CSV file"):
        read_table("")
    # A flag is True or False: "yes" or 1 are refused, not taken for their truth.
    with pytest.raises(TypeError, match=r"drop_missing must be True or False; got 'yes'"):
        read_table(path, drop_missing="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"drop_missing must be True or False; got 1\."):
        load_table(path, drop_missing=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"labels must be True or False; got 'x'"):
        read_table(path, labels="x")  # type: ignore[arg-type]
    assert read_table(path, drop_missing=np.True_).n_rows == 1
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match=r"Cannot write .*out: it is a folder; pass a file"):
        write_csv(tmp_path / "out", np.zeros((2, 1)), ["a"])
    with pytest.raises(NotADirectoryError, match=r"t.csv is a file, not a folder"):
        write_csv(path / "deeper.csv", np.zeros((2, 1)), ["a"])


def test_reading_a_table_does_not_import_jax(tmp_path):
    """`eqx_ffn.datasets.read_table` needs NumPy (and pandas) only: a script that reads a table
    does not pay for importing JAX; the lecture's data sets load it on first use."""
    path = _write(tmp_path, "a,b\n1,2\n3,4\n")
    code = (
        "import sys\n"
        "from eqx_ffn.datasets import read_table, write_csv, Table, MISSING\n"
        f"t = read_table({str(path)!r})\n"
        "assert t.x.tolist() == [[1.0], [3.0]] and t.y.tolist() == [[2.0], [4.0]], (t.x, t.y)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'equinox'))\n"
        "assert not heavy, heavy\n"
        "from eqx_ffn import datasets\n"
        "assert datasets.sine_1d(n=5).x.shape == (5, 1)\n"
        "assert 'jax' in sys.modules and 'sine_1d' in dir(datasets)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
