from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn import FFN, Dense, Standardized, Standardizer
from eqx_ffn.io._lecture_data import lecture_params
from eqx_ffn.io._model_file import MAGIC, ModelFileError, load, read_header, save

X = jr.normal(jr.key(5), (16, 3))


@eqx.filter_jit
def predict(model, x):
    return jax.vmap(model)(x)


def assert_same_model(a, b):
    """Same structure, same static fields and functions, every array equal bit for bit."""
    assert type(a) is type(b)
    arrays_a, rest_a = eqx.partition(a, eqx.is_array)
    arrays_b, rest_b = eqx.partition(b, eqx.is_array)
    assert jax.tree.structure(arrays_a) == jax.tree.structure(arrays_b)
    assert eqx.tree_equal(rest_a, rest_b)  # no arrays here: a cheap Python comparison
    for la, lb in zip(jax.tree.leaves(arrays_a), jax.tree.leaves(arrays_b), strict=True):
        assert la.dtype == lb.dtype and la.shape == lb.shape
        assert np.asarray(la).tobytes() == np.asarray(lb).tobytes()


def make_ffn(in_size, out_size, hidden, *, use_bias=True, seed=0, **kwargs):
    """An FFN with random float32 parameters drawn by NumPy (no JAX compilation needed)."""
    rng = np.random.default_rng(seed)
    sizes = (in_size, *hidden, out_size)
    layers = [
        Dense(
            rng.normal(size=(n_out, n_in)).astype(np.float32),
            rng.normal(size=n_out).astype(np.float32) if use_bias else None,
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    return FFN.from_layers(layers, **kwargs)


def no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "in_size, out_size, hidden, use_bias, activation, final",
    [
        (1, 1, (16,), True, "tanh", None),
        (3, 2, (8, 4), True, "relu", "sigmoid"),
        (3, 1, (), False, "gelu", None),
        (3, 4, (5, 5, 5), False, "silu", "softplus"),
    ],
)
def test_ffn_round_trip(tmp_path, in_size, out_size, hidden, use_bias, activation, final):
    model = make_ffn(
        in_size, out_size, hidden, use_bias=use_bias, activation=activation, final_activation=final
    )
    path = save(tmp_path / "m.eqx", model)
    assert path == tmp_path / "m.eqx" and no_temp_files(tmp_path)
    loaded = load(path)
    assert_same_model(model, loaded)
    assert loaded.activation_name == activation
    assert loaded.final_activation_name == (final or "identity")
    x = X[:, :in_size]
    assert np.asarray(predict(loaded, x)).tobytes() == np.asarray(predict(model, x)).tobytes()
    header = read_header(path)
    assert header["kind"] == "FFN" and header["format_version"] == 1
    assert header["library_version"] == eqx_ffn.__version__
    assert header["ffn"]["hidden_sizes"] == list(hidden)
    assert header["ffn"]["use_bias"] == [use_bias] * (len(hidden) + 1)
    assert header["ffn"]["dtype"] == "float32"


def test_lecture_model_and_mixed_biases(tmp_path):
    lecture = FFN.from_params(lecture_params())
    assert_same_model(lecture, load(save(tmp_path / "lecture.eqx", lecture)))
    mixed = FFN.from_layers(
        [Dense(jnp.ones((4, 2)), None), Dense(jnp.full((1, 4), 0.5), jnp.array([0.25]))],
        activation="elu",
    )
    loaded = load(save(tmp_path / "mixed.eqx", mixed))
    assert_same_model(mixed, loaded)
    assert read_header(tmp_path / "mixed.eqx")["ffn"]["use_bias"] == [False, True]


@pytest.mark.parametrize("scalers", ["both", "x_only", "y_only", "none"])
def test_standardized_round_trip(tmp_path, scalers):
    net = make_ffn(3, 2, (6,))
    y = predict(net, X) * 10 + 3
    x_scaler = None if scalers in ("y_only", "none") else Standardizer.fit(X)
    y_scaler = None if scalers in ("x_only", "none") else Standardizer.fit(y)
    model = Standardized(net, x_scaler, y_scaler)
    loaded = load(save(tmp_path / "s.eqx", model))
    assert isinstance(loaded, Standardized)
    assert_same_model(model, loaded)
    assert np.asarray(predict(loaded, X)).tobytes() == np.asarray(predict(model, X)).tobytes()
    header = read_header(tmp_path / "s.eqx")
    assert header["kind"] == "Standardized"
    assert header["x_scaler"] == (None if x_scaler is None else {"size": 3, "dtype": "float32"})
    assert header["y_scaler"] == (None if y_scaler is None else {"size": 2, "dtype": "float32"})


def test_unsaveable_models(tmp_path):
    def my_act(x):
        return x * 2

    with pytest.raises(ValueError, match="activation is a user-defined callable"):
        save(tmp_path / "a.eqx", make_ffn(2, 1, (3,), activation=my_act))
    with pytest.raises(ValueError, match="final_activation is a user-defined callable"):
        save(tmp_path / "b.eqx", make_ffn(2, 1, (3,), final_activation=my_act))
    with pytest.raises(TypeError, match="save expects an eqx_ffn.FFN or eqx_ffn.Standardized"):
        save(tmp_path / "c.eqx", eqx.nn.Identity())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_custom_activation_round_trip_with_named_function(tmp_path):
    # A registered function passed as a callable keeps its name, so it can be saved.
    model = make_ffn(2, 1, (3,), activation=jnp.tanh)
    assert_same_model(model, load(save(tmp_path / "m.eqx", model)))


@pytest.fixture
def saved(tmp_path):
    model = make_ffn(3, 2, (8, 4), seed=1)
    path = save(tmp_path / "model.eqx", model)
    return path, model, path.read_bytes()


def test_truncated_file(saved):
    path, _, data = saved
    for n in (0, 4, len(MAGIC) + 3, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:n])
        with pytest.raises(ModelFileError, match=f"Cannot load {path}.*truncated") as info:
            load(path)
        assert isinstance(info.value, ValueError)
    path.write_bytes(data + b"\0")
    with pytest.raises(ModelFileError, match="1 unexpected bytes at its end"):
        load(path)


def test_flipped_bytes_are_detected(saved):
    path, _, data = saved
    n_header = struct.unpack_from("<Q", data, len(MAGIC))[0]
    # One byte in the header, several in the payload, one in the checksum.
    for pos in (len(MAGIC) + 8 + n_header // 2, len(data) - 200, len(data) - 40, len(data) - 1):
        corrupted = bytearray(data)
        corrupted[pos] ^= 0x01
        path.write_bytes(bytes(corrupted))
        with pytest.raises(ModelFileError, match="checksum does not match: the file is corrupted"):
            load(path)


def test_foreign_files(tmp_path):
    cases = {
        "image.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "it is a PNG image"),
        "notes.txt": (b"hello, this is text\n", "it is text starting 'hello"),
        "leaves.eqx": (b"\x93NUMPY\x01\x00" + b"\0" * 50, "it is a NumPy .npy file"),
    }
    for name, (content, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ModelFileError, match=f"{name}: not an eqx_ffn model file: {message}"):
            load(p)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.eqx")


def rewrite_header(data: bytes, change) -> bytes:
    """A well-formed file (valid checksum) with its header changed by `change(header)`."""
    import hashlib

    pos = len(MAGIC)
    n_header = struct.unpack_from("<Q", data, pos)[0]
    header = json.loads(data[pos + 8 : pos + 8 + n_header])
    change(header)
    new = json.dumps(header).encode()
    body = MAGIC + struct.pack("<Q", len(new)) + new + data[pos + 8 + n_header : -32]
    return body + hashlib.sha256(body).digest()


def test_future_format_and_bad_headers(saved):
    path, _, data = saved

    def future(h):
        h["format_version"] = 2
        h["library_version"] = "9.0.0"

    path.write_bytes(rewrite_header(data, future))
    with pytest.raises(ModelFileError, match="format version 2, written by eqx_ffn 9.0.0.*Upgrade"):
        load(path)
    # A future file whose layout after the header differs (so its checksum fails) still says so.
    path.write_bytes(rewrite_header(data, future)[:-40] + b"future stuff")
    with pytest.raises(ModelFileError, match="format version 2"):
        load(path)

    def bad_kind(h):
        h["kind"] = "MLP"

    path.write_bytes(rewrite_header(data, bad_kind))
    with pytest.raises(
        ModelFileError,
        match="the header is invalid \\(unknown model kind 'MLP'; expected 'FFN' or 'Standardized'",
    ):
        load(path)

    def wrong_sizes(h):
        h["ffn"]["layers"][0]["out_size"] = 9

    path.write_bytes(rewrite_header(data, wrong_sizes))
    with pytest.raises(ModelFileError, match=r"header is invalid \(ffn.hidden_sizes is \[8, 4\]"):
        load(path)

    def wrong_leaf_shapes(h):  # consistent header, but the payload holds other shapes
        h["ffn"]["layers"][0]["in_size"] = 2
        h["ffn"]["in_size"] = 2

    path.write_bytes(rewrite_header(data, wrong_leaf_shapes))
    with pytest.raises(ModelFileError, match="the parameters do not match the header"):
        load(path)

    def dropped_bias(h):  # the payload then holds more leaves than the header describes
        h["ffn"]["layers"][2]["bias"] = False
        h["ffn"]["layers"][2]["bias_dtype"] = None
        h["ffn"]["use_bias"][2] = False

    path.write_bytes(rewrite_header(data, dropped_bias))
    with pytest.raises(ModelFileError, match="bytes of parameters were left unread"):
        load(path)


def test_interrupted_write_keeps_the_old_file(saved, monkeypatch):
    path, model, data = saved
    other = make_ffn(3, 2, (8, 4), seed=2)

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save(path, other)
    assert path.read_bytes() == data
    assert no_temp_files(path.parent)
    assert_same_model(model, load(path))
    monkeypatch.undo()
    save(path, other)  # and a normal save replaces it
    assert_same_model(other, load(path))
    assert no_temp_files(path.parent)


@pytest.mark.parametrize(
    "code, words",
    [
        (
            errno.ENOSPC,
            r"the disk \(file system\) it is on is full .*Free some space there",
        ),
        (errno.EFBIG, r"larger than the file system .*`ulimit -f`\) allows .*Save to a file"),
        (errno.EDQUOT, r"your disk quota there is used up"),
    ],
)
def test_a_full_disk_names_the_file_and_the_fix(saved, monkeypatch, code, words):
    # Issue 25: a disk-full save said only "[Errno 27] File too large", without the file.
    from eqx_ffn.io import _atomic

    path, model, data = saved
    other = make_ffn(3, 2, (8, 4), seed=2)

    def full(f, payload):
        f.write(payload[: len(payload) // 2])  # part of it written, then no more room
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_atomic, "_write_bytes", full)
    with pytest.raises(OSError, match=words) as info:
        save(path, other)
    message = str(info.value)
    assert str(path) in message and "the file already there is unchanged" in message
    assert info.value.errno == code and message.startswith(f"[Errno {code}] Cannot write {path}")
    assert path.read_bytes() == data  # the previous file intact
    assert no_temp_files(path.parent)  # no partial file left
    assert_same_model(model, load(path))
    new = path.parent / "new.eqx"
    with pytest.raises(OSError, match="no file was created"):
        save(new, other)
    assert not new.exists() and no_temp_files(path.parent)


def test_interrupted_serialisation_writes_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", boom)
    with pytest.raises(RuntimeError, match="boom"):
        save(tmp_path / "m.eqx", make_ffn(1, 1, (16,)))
    assert list(tmp_path.iterdir()) == []


def test_save_creates_parent_folders(tmp_path):
    model = make_ffn(1, 1, (2,))
    assert_same_model(model, load(save(tmp_path / "a" / "b" / "m.eqx", model)))


def test_float64_round_trip_in_x64_process_and_a_killed_save(tmp_path):
    """Two things that each need a process of their own share one, to keep the suite fast:
    float64 needs jax_enable_x64, which must not leak into this process; and a save killed
    with SIGKILL (here while it syncs its temporary file) leaves that file behind, which the
    next save of the same path removes."""
    target = tmp_path / "killed.eqx"
    code = textwrap.dedent(
        f"""
        import os, time
        import equinox as eqx, jax, jax.numpy as jnp, numpy as np
        from eqx_ffn import FFN, Dense, Standardized, Standardizer
        from eqx_ffn.io._model_file import load, read_header, save
        # Built from NumPy arrays: no JAX computation, so nothing to compile in this process.
        rng = np.random.default_rng(0)
        sizes = (2, 5, 4, 3)
        net = FFN.from_layers(
            [Dense(rng.normal(size=(o, i)), rng.normal(size=o)) for i, o in zip(sizes, sizes[1:])]
        )
        assert net.dtype == jnp.float64
        model = Standardized(
            net, Standardizer.fit(rng.normal(size=(10, 2))), Standardizer.fit(rng.normal(size=(9, 3)))
        )
        save({str(tmp_path / "m64.eqx")!r}, model)
        loaded = load({str(tmp_path / "m64.eqx")!r})
        a, b = (jax.tree.leaves(eqx.filter(m, eqx.is_array)) for m in (model, loaded))
        assert len(a) == len(b) == 10
        for u, v in zip(a, b):
            assert u.dtype == v.dtype == np.float64 and np.asarray(u).tobytes() == np.asarray(v).tobytes()
        h = read_header({str(tmp_path / "m64.eqx")!r})
        assert h["ffn"]["dtype"] == "float64" and h["y_scaler"]["dtype"] == "float64", h

        def hang(fd):
            print("syncing", flush=True)
            time.sleep(120)

        os.fsync = hang
        save({str(target)!r}, net)
        """
    )
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        if line != b"syncing\n":
            proc.wait(timeout=60)
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else line)
        orphans = [p for p in tmp_path.iterdir() if p.name.startswith(".killed.eqx.")]
        assert len(orphans) == 1 and orphans[0].stat().st_size > 0
        proc.kill()  # SIGKILL: no handler, no finally clause runs
        assert proc.wait(timeout=60) == -9
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert not target.exists() and orphans[0].exists()
    model = make_ffn(1, 1, (2,))
    save(target, model)
    assert not orphans[0].exists() and no_temp_files(tmp_path)
    assert_same_model(model, load(target))
    # Without x64 this process cannot hold float64: a clear error, not a silent downcast.
    with pytest.raises(ModelFileError, match="saved in float64, but jax_enable_x64 is off"):
        load(tmp_path / "m64.eqx")
    assert read_header(tmp_path / "m64.eqx")["ffn"]["dtype"] == "float64"


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    from eqx_ffn.io._atomic import _HOST

    never = 2**22 + 1  # above Linux's largest pid_max: no such process can exist
    alive = os.getpid()
    hour_ago = time.time() - 3600
    files = {
        # name: (age, removed by the next save of m.eqx?)
        f".m.eqx.{_HOST}-{never}-0123456789ab.tmp": (None, True),  # its writer is gone
        f".m.eqx.{_HOST}-{alive}-0123456789ab.tmp": (None, False),  # a save in progress
        f".m.eqx.{_HOST}-{alive}-aaaaaaaaaaaa.tmp": (hour_ago, True),  # pid reused long after
        f".m.eqx.0badc0de-{never}-0123456789ab.tmp": (None, False),  # another host's: can't tell
        f".m.eqx.0badc0de-{never}-bbbbbbbbbbbb.tmp": (hour_ago, True),
        ".m.eqx.0123456789ab.tmp": (None, False),  # an earlier version's name
        ".m.eqx.ba9876543210.tmp": (hour_ago, True),
        f".other.eqx.{_HOST}-{never}-0123456789ab.tmp": (hour_ago, False),  # another target
        ".m.eqx.tmp": (hour_ago, False),  # not our pattern
        f"m.eqx.{_HOST}-{never}-0123456789ab.tmp": (hour_ago, False),
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"partial model")
        if age is not None:
            os.utime(tmp_path / name, (age, age))
    folder_like_temp = tmp_path / f".m.eqx.{_HOST}-{never}-cccccccccccc.tmp"
    folder_like_temp.mkdir()  # only regular files are removed
    save(tmp_path / "m.eqx", make_ffn(1, 1, (2,)))
    for name, (_, removed) in files.items():
        assert (tmp_path / name).exists() is not removed, name
    assert folder_like_temp.is_dir()


def test_small_float_dtypes_round_trip(tmp_path):
    for dtype in (jnp.bfloat16, jnp.float16):
        layers = [
            Dense(np.linspace(-1, 1, 6).reshape(3, 2).astype(dtype), np.ones(3, dtype)),
            Dense(np.full((1, 3), 0.5, dtype), None),
        ]
        model = FFN.from_layers(layers, activation="relu")
        loaded = load(save(tmp_path / "m.eqx", model))
        assert_same_model(model, loaded)
        assert read_header(tmp_path / "m.eqx")["ffn"]["dtype"] == jnp.dtype(dtype).name


def test_unusual_but_valid_column_names_round_trip(tmp_path):
    meta = {"x_cols": ["Δt [s]", 'a,"b"', "名前"], "y_cols": []}
    meta["note"] = "trained on\tthe\nsecond run"  # free text may hold tabs and newlines
    path = save(tmp_path / "m.eqx", make_ffn(3, 1, (2,)), metadata=meta)
    assert read_header(path)["metadata"] == meta


def test_metadata_is_stored_in_the_header(tmp_path):
    model = make_ffn(2, 1, (3,))
    meta = {"x_cols": ["u1", "u2"], "y_cols": ["y"], "note": None, "lr": 0.01}
    path = save(tmp_path / "m.eqx", model, metadata=meta)
    assert read_header(path)["metadata"] == meta
    assert_same_model(model, load(path))
    assert "metadata" not in read_header(save(tmp_path / "plain.eqx", model))
    with pytest.raises(TypeError, match="metadata must hold only JSON values"):
        save(tmp_path / "bad.eqx", model, metadata={"a": object()})
    with pytest.raises(TypeError, match="metadata must hold only JSON values"):
        save(tmp_path / "bad.eqx", model, metadata={"a": float("nan")})
    with pytest.raises(TypeError, match="metadata must be a dict with string keys"):
        save(tmp_path / "bad.eqx", model, metadata={1: "a"})  # type: ignore[dict-item]
    assert not (tmp_path / "bad.eqx").exists()


def test_concurrent_saves_never_leave_a_torn_file(tmp_path):
    # four processes save different models to one path while the parent loads it: every load
    # sees one whole model (the atomic rename), never a mixture or a truncated file
    path = tmp_path / "shared.eqx"
    save(path, FFN(1, 1, (4,), key=jr.key(0)))
    script = textwrap.dedent(
        """
        import sys, jax.random as jr
        from eqx_ffn import FFN, save
        seed, path = int(sys.argv[1]), sys.argv[2]
        model = FFN(1, 1, (4,), key=jr.key(seed))
        for _ in range(40):
            save(path, model)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(seed), str(path)])
        for seed in range(1, 5)
    ]
    wanted = {float(FFN(1, 1, (4,), key=jr.key(seed)).layers[0].weight[0, 0]) for seed in range(5)}
    seen = set()
    while any(p.poll() is None for p in procs):
        seen.add(float(load(path).layers[0].weight[0, 0]))
    assert all(p.wait() == 0 for p in procs)
    seen.add(float(load(path).layers[0].weight[0, 0]))
    assert seen <= wanted and len(seen) >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["shared.eqx"]  # no temporaries left


def test_a_path_that_cannot_hold_the_file_is_named(tmp_path):
    model = make_ffn(3, 2, (8, 4), seed=1)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(IsADirectoryError, match=r"Cannot write .*folder: it is a folder; pass a"):
        save(tmp_path / "folder", model)
    with pytest.raises(NotADirectoryError, match=r"Cannot write .*m.eqx: .*file is a file, not a"):
        save(tmp_path / "file" / "deeper" / "m.eqx", model)
    with pytest.raises(ValueError, match=r"path is empty; pass a file path such as 'model.eqx'"):
        save("", model)
    with pytest.raises(
        TypeError, match=r"path must be a file path \(a str or os.PathLike\); got 1"
    ):
        save(123, model)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize("read", [load, read_header])
def test_a_path_that_is_not_a_path_is_named_on_load(read):
    for bad in (123, b"m.eqx", None):
        with pytest.raises(TypeError, match=r"path must be a file path \(a str or os.PathLike\)"):
            read(bad)
    with pytest.raises(ValueError, match=r"path is empty; pass the path of a model file"):
        read("")
