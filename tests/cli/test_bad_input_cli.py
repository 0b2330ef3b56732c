"""Bad input to the command line and the table readers: exit status 2 and one line naming the
option (or file, line and column) and what was expected; never a traceback. Plus a fuzz test.

Every case runs in-process (`main([...])` with capsys) and fails before anything is compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eqx_ffn
from eqx_ffn.cli._main import main
from eqx_ffn.io._read_table import read_table

ROWS = 40


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """A folder of good and bad files; every case refers to them by name."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(ROWS, 3))
    good = ["u1,u2,noise,y"] + [f"{a:.4f},{b:.4f},{c:.4f},{a * b:.4f}" for a, b, c in u]
    (d / "good.csv").write_text("\n".join(good) + "\n")

    def variant(name: str, line: int, text: str) -> None:
        lines = list(good)
        lines[line] = text
        (d / name).write_text("\n".join(lines) + "\n")

    variant("missing.csv", 5, "0.1,,0.3,0.4")
    variant("na.csv", 7, "0.1,0.2,0.3,NA")
    variant("text.csv", 9, "0.1,abc,0.3,0.4")
    variant("inf.csv", 3, "inf,0.2,0.3,0.4")
    variant("huge.csv", 3, "1e39,0.2,0.3,0.4")
    variant("short.csv", 4, "0.1,0.2,0.3")
    variant("long.csv", 4, "0.1,0.2,0.3,0.4,0.5")
    variant("dup.csv", 0, "u1,u2,u1,y")
    variant("unnamed.csv", 0, ",u2,noise,y")
    variant("field.csv", 6, "0.1," + "7" * 200_000 + ",0.3,0.4")
    (d / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (d / "latin1.csv").write_bytes("u1,y\n1,caf\xe9\n".encode("latin-1"))
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("u1,u2,y\n")
    (d / "allmissing.csv").write_text("u1,y\n1,\n2,\n")
    (d / "one_class.csv").write_text("u1,k\n" + "".join(f"{i},cat\n" for i in range(20)))
    (d / "many_classes.csv").write_text(
        "u1,k\n" + "".join(f"{i},{v}\n" for i, v in enumerate(rng.normal(size=1500)))
    )
    # issue 25: a continuous target and id columns (numbers, text) refused for classification
    (d / "continuous.csv").write_text(
        "u1,k\n" + "".join(f"{i},{v:.6f}\n" for i, v in enumerate(rng.normal(size=200)))
    )
    (d / "ids.csv").write_text("u1,id\n" + "".join(f"{i % 7},{i}\n" for i in range(1000)))
    (d / "names.csv").write_text("u1,who\n" + "".join(f"{i % 7},p{i}\n" for i in range(300)))
    (d / "labels.csv").write_text(
        "u1,u2,kind\n" + "".join(f"{i},{i % 3},{'ab'[i % 2]}\n" for i in range(20))
    )
    (d / "a_file").write_text("not a folder")

    np.savez(d / "object.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4))
    np.savez(d / "cube.npz", x=np.ones((4, 2, 2)), y=np.zeros(4))
    (d / "notzip.npz").write_text("hello")
    np.savez(d / "bomb.npz", x=np.zeros(4), y=np.zeros(4))
    data = bytearray((d / "bomb.npz").read_bytes())
    pos = data.index(b"PK\x01\x02")  # x.npy's central directory entry: declare 4 GB
    struct.pack_into("<I", data, pos + 24, 4_000_000_000)
    (d / "bomb.npz").write_bytes(bytes(data))

    model = eqx_ffn.FFN(2, 1, (4,), key=jr.key(0))
    eqx_ffn.save(d / "model.eqx", model, metadata={"x_cols": ["u1", "u2"], "y_cols": ["y"]})
    eqx_ffn.save(d / "bare.eqx", model)
    broken = eqx.tree_at(lambda m: m.layers[0].weight, model, jnp.full((4, 2), jnp.nan))
    eqx_ffn.save(d / "nan.eqx", broken, metadata={"x_cols": ["u1", "u2"], "y_cols": ["y"]})
    raw = (d / "model.eqx").read_bytes()
    (d / "truncated.eqx").write_bytes(raw[:-40])
    (d / "image.eqx").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (d / "table.eqx").write_text("u1,u2,y\n1,2,3\n")
    edits = {
        "meta_list.eqx": lambda h: h.update(metadata=["u1", "u2"]),
        "meta_xstr.eqx": lambda h: h["metadata"].update(x_cols="u1"),
        "meta_newline.eqx": lambda h: h["metadata"].update(x_cols=["u1", "u2\ninjected,row"]),
        "meta_count.eqx": lambda h: h["metadata"].update(x_cols=["u1", "u2", "noise"]),
        "meta_task.eqx": lambda h: h["metadata"].update(task="cluster"),
        "meta_classes.eqx": lambda h: h["metadata"].update(task="classify", classes=["a", "b"]),
        "meta_bool.eqx": lambda h: h["metadata"].update(task="classify", classes=[True]),
        "kind.eqx": lambda h: h.update(kind="Ensemble"),
    }
    for name, edit in edits.items():
        _rewrite(d / "model.eqx", d / name, edit)
    return d


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy a model file with its JSON header edited (and its checksum made right again)."""
    data = src.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 8)
    header = json.loads(data[16 : 16 + n])
    edit(header)
    head = json.dumps(header, sort_keys=True).encode()
    body = data[:8] + struct.pack("<Q", len(head)) + head + data[16 + n : -32]
    dst.write_bytes(body + hashlib.sha256(body).digest())


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err.strip().splitlines()


def _fit(*options: str) -> list[str]:
    return ["fit", "{d}/good.csv", "--out", "{d}/out", "--no-cache", *options]


def _predict(model: str, data: str = "{d}/good.csv", *options: str) -> list[str]:
    return ["predict", f"{{d}}/{model}", data, "--no-cache", *options]


# (argv with {d} for the folder, words the one-line message must hold)
CASES = [
    # -- options: values out of range or of the wrong kind
    (_fit("--seed", str(2**70)), ["argument --seed", "from 0 to 4,294,967,295"]),
    (_fit("--seed", "-1"), ["argument --seed", "from 0 to"]),
    (_fit("--seed", "1.5"), ["argument --seed", "expected an integer"]),
    (_fit("--lr", "inf"), ["argument --lr", "expected a finite number"]),
    (_fit("--lr", "nan"), ["argument --lr", "expected a finite number"]),
    (_fit("--lr", "0"), ["argument --lr", "expected a number > 0"]),
    (_fit("--lr", "-0.01"), ["argument --lr", "expected a number > 0"]),
    (_fit("--lr", "fast"), ["argument --lr", "expected a number"]),
    (_fit("--steps", "0"), ["argument --steps", "from 1 to"]),
    (_fit("--steps", str(2**31)), ["argument --steps", "from 1 to 2,147,483,647"]),
    (_fit("--steps", "1e3"), ["argument --steps", "expected an integer"]),
    (_fit("--batch-size", "0"), ["argument --batch-size", "from 1 to"]),
    (_fit("--batch-size", "5000"), ["--batch-size 5000", "larger than the 27 training rows"]),
    (_fit("--hidden", "0"), ["argument --hidden", "widths must be from 1"]),
    (_fit("--hidden", "a,b"), ["argument --hidden", "expected widths like 16 or 16,8"]),
    (_fit("--hidden", "16,,8"), ["argument --hidden", "expected widths"]),
    (_fit("--hidden", "1000000,1000000"), ["--hidden 1000000,1000000", "parameters"]),
    (_fit("--test-fraction", "0"), ["argument --test-fraction", "between 0 and 1"]),
    (_fit("--test-fraction", "1"), ["argument --test-fraction", "between 0 and 1"]),
    (_fit("--test-fraction", "nan"), ["argument --test-fraction", "finite number"]),
    (_fit("--validation-fraction", "1"), ["argument --validation-fraction", "up to but not"]),
    (_fit("--validation-fraction", "-0.1"), ["argument --validation-fraction", "from 0"]),
    (_fit("--l2", "-1"), ["argument --l2", "expected a number >= 0"]),
    (_fit("--l2", "inf"), ["argument --l2", "finite number"]),
    (_fit("--patience", "0"), ["argument --patience", "from 1 to"]),
    (_fit("--eval-every", "-5"), ["argument --eval-every", "from 1 to"]),
    (_fit("--optimizer", "newton"), ["argument --optimizer", "invalid choice: 'newton'", "adam"]),
    (_fit("--activation", "swish"), ["argument --activation", "invalid choice", "tanh"]),
    (_fit("--init", "zeros"), ["argument --init", "invalid choice", "glorot_normal"]),
    (_fit("--task", "cluster"), ["argument --task", "invalid choice", "classify"]),
    (_fit("--delimiter", "::"), ["argument --delimiter", "one character"]),
    (_fit("--delimiter", '"'), ["delimiter '\"' cannot separate cells"]),
    (_fit("--optimizer", "lbfgs", "--batch-size", "8"), ["--optimizer lbfgs", "full batch"]),
    (_fit("--frobnicate"), ["unrecognized arguments: --frobnicate"]),
    (["fit", "{d}/good.csv", "--no-cache"], ["the following arguments are required: --out"]),
    (["train", "{d}/good.csv"], ["argument COMMAND", "invalid choice: 'train'"]),
    ([], ["choose a command: demo, fit or predict"]),
    # -- columns
    (_fit("--x-cols", ""), ["argument --x-cols", "empty column name"]),
    (_fit("--x-cols", "u1,zz"), ["x_cols names column 'zz'", "Available columns: 'u1'"]),
    (_fit("--x-cols", "u1,u1"), ["x_cols names column 'u1' twice"]),
    (_fit("--x-cols", "y", "--y-cols", "y"), ["column 'y' is named by both x_cols and y_cols"]),
    (_fit("--x-cols", "u1,u2", "--y-cols", "u2,y"), ["'u2' is named by both"]),
    (_fit("--y-cols", "9"), ["y_cols asks for column index 9", "4 columns"]),
    (_fit("--y-cols", "u1,u2,noise,y"), ["no columns are left for x"]),
    (_fit("--task", "classify", "--y-cols", "noise,y"), ["--task classify", "one label column"]),
    # -- output folder and cache
    (_fit("--out", ""), ["--out needs a folder name"]),
    (["fit", "{d}/good.csv", "--out", "{d}/a_file", "--no-cache"], ["exists and is not a folder"]),
    (["fit", "{d}/good.csv", "--out", "{d}/a_file/sub", "--no-cache"], ["is not a folder"]),
    (
        ["fit", "{d}/good.csv", "--out", "{d}/o", "--cache-dir", "{d}/a_file/cache"],
        ["cannot use the compilation cache folder", "--no-cache"],
    ),
    # -- the data file
    (["fit", "{d}/nothere.csv", "--out", "{d}/o", "--no-cache"], ["no such file", "nothere.csv"]),
    (["fit", "{d}", "--out", "{d}/o", "--no-cache"], ["is a directory, not a data file"]),
    (["fit", os.devnull, "--out", "{d}/o", "--no-cache"], ["not a regular file"]),
    (
        ["fit", "{d}/missing.csv", "--out", "{d}/o", "--no-cache"],
        ["line 6, column 'u2' is empty (a missing value)", "--drop-missing"],
    ),
    (
        ["fit", "{d}/na.csv", "--out", "{d}/o", "--no-cache"],
        ["line 8, column 'y' is 'NA' (a missing value)"],
    ),
    (
        ["fit", "{d}/text.csv", "--out", "{d}/o", "--no-cache"],
        ["line 10, column 'u2' (index 1): 'abc' is not a number"],
    ),
    (["fit", "{d}/inf.csv", "--out", "{d}/o", "--no-cache"], ["line 4, column 'u1'", "infinite"]),
    (
        ["fit", "{d}/huge.csv", "--out", "{d}/o", "--no-cache"],
        ["line 4, column 'u1' is '1e39'", "float32 range"],
    ),
    (
        ["fit", "{d}/short.csv", "--out", "{d}/o", "--no-cache"],
        ["line 5 has 3 cells but the header (line 1) has 4 columns"],
    ),
    (["fit", "{d}/long.csv", "--out", "{d}/o", "--no-cache"], ["line 5 has 5 cells"]),
    (
        ["fit", "{d}/dup.csv", "--out", "{d}/o", "--no-cache"],
        ["names column 'u1' twice (columns 1 and 3)", "unique"],
    ),
    (["fit", "{d}/unnamed.csv", "--out", "{d}/o", "--no-cache"], ["column 1 of the header"]),
    (
        ["fit", "{d}/field.csv", "--out", "{d}/o", "--no-cache"],
        ["line 7 holds a cell of more than 131,072 characters"],
    ),
    (["fit", "{d}/binary.csv", "--out", "{d}/o", "--no-cache"], ["binary data", "not a text"]),
    (["fit", "{d}/latin1.csv", "--out", "{d}/o", "--no-cache"], ["line 2 is not UTF-8 text"]),
    (["fit", "{d}/empty.csv", "--out", "{d}/o", "--no-cache"], ["the file is empty"]),
    (["fit", "{d}/header.csv", "--out", "{d}/o", "--no-cache"], ["but no data rows"]),
    (
        ["fit", "{d}/allmissing.csv", "--out", "{d}/o", "--no-cache", "--drop-missing"],
        ["every one of the 2 data rows has a missing value"],
    ),
    (
        ["fit", "{d}/one_class.csv", "--out", "{d}/o", "--no-cache"],
        ["y column 'k' holds a single class ('cat')", "at least two"],
    ),
    (
        ["fit", "{d}/many_classes.csv", "--out", "{d}/o", "--no-cache", "--task", "classify"],
        ["holds 1,500 distinct labels, more than 1000 classes"],
    ),
    (
        ["fit", "{d}/continuous.csv", "--out", "{d}/o", "--no-cache", "--task", "classify"],
        [
            "y column 'k' looks continuous",
            "200 of its 200 values are not whole numbers",
            "200 distinct values",
            "pass --task regress",
        ],
    ),
    (
        ["fit", "{d}/ids.csv", "--out", "{d}/o", "--no-cache", "--task", "classify"],
        [
            "y column 'id' looks like an id column",
            "1,000 distinct labels in 1,000 rows, 1,000 of them on a single row",
            "pass --task regress",
        ],
    ),
    (
        ["fit", "{d}/names.csv", "--out", "{d}/o", "--no-cache"],
        ["y column 'who' looks like an id column", "300 distinct labels", "--y-cols"],
    ),
    (_fit("--tol", "-1"), ["argument --tol", "expected a number >= 0"]),
    (
        ["fit", "{d}/labels.csv", "--out", "{d}/o", "--no-cache", "--task", "regress"],
        ["line 2, column 'kind' (index 2): 'a' is not a number"],
    ),
    (
        _fit("--test-fraction", "0.5", "--validation-fraction", "0.99"),
        ["the table has 40 rows", "--test-fraction 0.5", "0 training"],
    ),
    (["fit", "{d}/object.npz", "--out", "{d}/o", "--no-cache"], ["array 'x' holds Python objects"]),
    (["fit", "{d}/cube.npz", "--out", "{d}/o", "--no-cache"], ["must have shape (N,) or (N, k)"]),
    (["fit", "{d}/notzip.npz", "--out", "{d}/o", "--no-cache"], ["not a readable .npz archive"]),
    (
        ["fit", "{d}/bomb.npz", "--out", "{d}/o", "--no-cache"],
        ["declare 4,000,000", "refused before decompressing"],
    ),
    # -- predict: the model file
    (_predict("nothere.eqx"), ["no such model file"]),
    (["predict", "{d}", "{d}/good.csv", "--no-cache"], ["is a directory, not a file"]),
    (["predict", "/dev/zero", "{d}/good.csv", "--no-cache"], ["not a regular file"]),
    (_predict("truncated.eqx"), ["truncated.eqx", "truncated"]),
    (_predict("image.eqx"), ["not an eqx_ffn model file", "PNG"]),
    (_predict("table.eqx"), ["not an eqx_ffn model file"]),
    (_predict("kind.eqx"), ["kind.eqx", "kind"]),
    (_predict("meta_list.eqx"), ["meta_list.eqx", "metadata"]),
    (_predict("meta_xstr.eqx"), ["meta_xstr.eqx", "metadata", "x_cols"]),
    (_predict("meta_newline.eqx"), ["meta_newline.eqx", "metadata"]),
    (_predict("meta_count.eqx"), ["meta_count.eqx", "metadata", "x_cols"]),
    (_predict("meta_task.eqx"), ["meta_task.eqx", "metadata", "task"]),
    (_predict("meta_classes.eqx"), ["meta_classes.eqx", "metadata", "classes"]),
    (_predict("meta_bool.eqx"), ["meta_bool.eqx", "metadata", "classes"]),
    (_predict("nan.eqx", "{d}/good.csv", "--out", "{d}/o"), ["nan.eqx", "NaN or inf"]),
    # -- predict: options and data
    (_predict("model.eqx", "{d}/good.csv", "--proba"), ["--proba needs a classifier"]),
    (
        _predict("model.eqx", "{d}/good.csv", "--x-cols", "u1"),
        ["--x-cols names 1 columns but the model takes 2 inputs", "fitted on u1, u2"],
    ),
    (_predict("bare.eqx"), ["does not record its input columns", "--x-cols"]),
    (_predict("model.eqx", "{d}/good.csv", "--out", "{d}"), ["--out", "is a folder"]),
    (_predict("model.eqx", "{d}/header.csv"), ["no data rows"]),
    (_predict("model.eqx", "{d}/dup.csv"), ["names column 'u1' twice"]),
    (_predict("model.eqx", "{d}/missing.csv"), ["line 6, column 'u2' is empty"]),
    (_predict("model.eqx", "{d}/text.csv"), ["line 10, column 'u2'", "'abc' is not a number"]),
    (
        _predict("model.eqx", "{d}/one_class.csv"),
        ["x_cols names column 'u2', which is not in the header", "Available columns: 'u1', 'k'"],
    ),
    (_predict("model.eqx", "{d}/nothere.csv"), ["no such file"]),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(d, capsys, argv, words):
    code, lines = _run(capsys, [a.replace("{d}", str(d)) for a in argv])
    assert code == 2, lines
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (d / "out").exists() and not (d / "o").exists()
    assert not [p for p in d.iterdir() if p.name.startswith((".out.", ".o."))]


def test_there_are_at_least_50_cases():
    assert len(CASES) >= 50


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads all")
def test_unreadable_files(d, capsys, tmp_path):
    locked = tmp_path / "locked.csv"
    locked.write_text((d / "good.csv").read_text())
    locked.chmod(0)
    code, lines = _run(capsys, ["fit", str(locked), "--out", str(tmp_path / "o"), "--no-cache"])
    assert code == 2 and "cannot read" in lines[0] and "ermission" in lines[0]


# -- fuzz: random and mutated tables -----------------------------------------------------------

BASE = "a,b,y\n" + "".join(f"{i / 7:.3f},{(i * 3) % 5},{np.sin(i):.3f}\n" for i in range(30))
TOKENS = [
    "",
    "nan",
    "NA",
    "inf",
    "-inf",
    "1e39",
    "1e400",
    "abc",
    '"',
    ",",
    "\n",
    "#",
    "\x00",
    "\xff",
    "é",
    " ",
    "1,5",
    "0x10",
    "1_0",
    "True",
    "x" * 300,
    "9" * 5000,
    "\r",
    ";",
    "\t",
]


@st.composite
def mutated_tables(draw) -> bytes:
    """The base table with a few cells replaced by odd tokens, then maybe a few bytes changed."""
    rows = [line.split(",") for line in BASE.splitlines()]
    for _ in range(draw(st.integers(0, 3))):
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 2))
        rows[r][c] = draw(st.sampled_from(TOKENS) | st.text(max_size=6))
    text = "\n".join(",".join(row) for row in rows) + "\n"
    for _ in range(draw(st.integers(0, 2))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        else:
            text = text[:pos]
    data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = data.replace(b"\xc3\xa9", b"\xe9")  # a Latin-1 byte: not UTF-8
    return data


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=mutated_tables() | st.binary(max_size=300),
    labels=st.booleans(),
    drop=st.booleans(),
)
def test_read_table_returns_a_table_or_raises_value_error(tmp_path, data, labels, drop):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        table = read_table(path, labels=labels, drop_missing=drop, dtype=np.float32)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)[:200].split(": ", 1)[0]
    else:
        assert table.x.dtype == np.float64 and np.isfinite(table.x).all()
        assert table.x.shape[0] == table.y.shape[0] >= 1
        if not table.text_labels:
            assert np.isfinite(table.y).all() and np.abs(table.y).max() <= 3.5e38
    assert time.perf_counter() - start < 10


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_tables())
def test_fit_on_mutated_tables_exits_0_or_2(tmp_path_factory, capsys, data):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "t.csv"
    path.write_bytes(data)
    start = time.perf_counter()
    code = main(["fit", str(path), "--steps", "3", "--out", str(folder / "o"), "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert code in (0, 2), err
    if code == 2:
        assert "error:" in err[-1] and not (folder / "o").exists()
    else:
        assert (folder / "o" / "model.eqx").exists()
    assert time.perf_counter() - start < 120
