"""Bad input to the file and model layer: untrusted model files, `save`, the compilation cache
and the scalers. Each case checks the exception's type and the words of its message (what was
given, what was expected); a fuzz test checks that `load` only ever returns a model or raises
`ModelFileError`, within a time and memory bound."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from eqx_ffn import FFN, Dense, Standardized, Standardizer
from eqx_ffn.io._model_file import MAGIC, ModelFileError, load, read_header, save

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX files, modes and owners")

# -- building crafted files ---------------------------------------------------------------------


def make_ffn(in_size=3, out_size=2, hidden=(4,), *, use_bias=True, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    sizes = (in_size, *hidden, out_size)
    layers = [
        Dense(
            rng.normal(size=(n_out, n_in)).astype(dtype),
            rng.normal(size=n_out).astype(dtype) if use_bias else None,
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    return FFN.from_layers(layers)


def make_standardized():
    rng = np.random.default_rng(1)
    return Standardized(
        make_ffn(),
        Standardizer.fit(rng.normal(size=(10, 3))),
        Standardizer.fit(rng.normal(size=(10, 2))),
    )


def frame(header: bytes, payload: bytes = b"") -> bytes:
    """A well-framed file with a valid checksum around any header and payload bytes."""
    body = MAGIC + struct.pack("<Q", len(header)) + header + struct.pack("<Q", len(payload))
    body += payload
    return body + hashlib.sha256(body).digest()


def parts(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack_from("<Q", data, 8)[0]
    header = json.loads(data[16 : 16 + n])
    return header, data[16 + n + 8 : -32]


def rewrite(data: bytes, change) -> bytes:
    """`data` with its header changed by `change(header)` (which may return a new header), its
    lengths and checksum valid."""
    header, payload = parts(data)
    new = change(header)
    header = header if new is None else new
    return frame(json.dumps(header).encode(), payload)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid files: an FFN and a Standardized model (with metadata)."""
    folder = tmp_path_factory.mktemp("good")
    ffn = save(folder / "ffn.eqx", make_ffn()).read_bytes()
    meta = {"x_cols": ["a", "b", "c"], "y_cols": ["p", "q"], "note": "ok"}
    std = save(folder / "std.eqx", make_standardized(), metadata=meta).read_bytes()
    return {"ffn": ffn, "std": std}


def assert_refused(path, match, *, functions=(load, read_header)):
    for function in functions:
        with pytest.raises(ModelFileError, match=match) as info:
            function(path)
        assert str(path) in str(info.value)


# -- not a regular file --------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this platform")
def test_dev_zero_is_refused_at_once():
    t0 = time.perf_counter()
    assert_refused("/dev/zero", "it is a character device, not a regular file; expected a model")
    assert time.perf_counter() - t0 < 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.eqx"
    os.mkfifo(fifo)  # no writer: opening it for reading would block forever
    t0 = time.perf_counter()
    assert_refused(fifo, r"it is a named pipe \(FIFO\), not a regular file")
    assert time.perf_counter() - t0 < 1


@posix_only
def test_folder_socket_and_link_to_device_are_refused(tmp_path):
    assert_refused(tmp_path, "it is a folder, not a regular file; expected a model file")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.eqx"))
        assert_refused(tmp_path / "s.eqx", "it is a socket, not a regular file")
    finally:
        sock.close()
    (tmp_path / "link.eqx").symlink_to("/dev/zero")
    assert_refused(tmp_path / "link.eqx", "it is a character device, not a regular file")


def test_missing_file_is_file_not_found(tmp_path):
    for function in (load, read_header):
        with pytest.raises(FileNotFoundError):
            function(tmp_path / "missing.eqx")


# -- framing: magic, lengths, truncation, checksum ---------------------------------------------


def section_boundaries(data: bytes) -> dict[str, int]:
    n = struct.unpack_from("<Q", data, 8)[0]
    p = struct.unpack_from("<Q", data, 16 + n)[0]
    return {
        "empty": 0,
        "inside the magic": 4,
        "after the magic": 8,
        "inside the header length": 12,
        "after the header length": 16,
        "inside the header": 16 + n // 2,
        "after the header": 16 + n,
        "inside the payload length": 16 + n + 4,
        "after the payload length": 16 + n + 8,
        "inside the payload": 16 + n + 8 + p // 2,
        "after the payload": 16 + n + 8 + p,
        "inside the checksum": len(data) - 16,
        "one byte short": len(data) - 1,
    }


@pytest.mark.parametrize(
    "where",
    [
        "empty",
        "inside the magic",
        "after the magic",
        "inside the header length",
        "after the header length",
        "inside the header",
        "after the header",
        "inside the payload length",
        "after the payload length",
        "inside the payload",
        "after the payload",
        "inside the checksum",
        "one byte short",
    ],
)
def test_truncated_at_every_section_boundary(tmp_path, good, where):
    data = good["std"]
    n = section_boundaries(data)[where]
    path = tmp_path / "cut.eqx"
    path.write_bytes(data[:n])
    extra = "; it is empty" if n == 0 else ""
    assert_refused(path, rf"the file is truncated \({n} bytes{extra}")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00" * 100, r"not an eqx_ffn model file: it is a file starting with bytes b'\\x00"),
        (b"\x89EQXFFM\n" + b"\0" * 64, "not an eqx_ffn model file"),
        (b"x,y\n1,2\n", "not an eqx_ffn model file: it is text starting 'x,y"),
        (b"PK\x03\x04" + b"\0" * 40, "it is a zip archive"),
        (b"\x93NUMPY\x01\x00" + b"\0" * 40, "it is a NumPy .npy file"),
    ],
    ids=["zeros", "wrong-magic", "csv", "zip", "npy"],
)
def test_foreign_content(tmp_path, content, message):
    path = tmp_path / "f.eqx"
    path.write_bytes(content)
    assert_refused(path, message)


@pytest.mark.parametrize("n_header", [(4 << 20) + 1, 2**63, 2**64 - 1])
def test_huge_declared_header_length_is_refused_before_reading(tmp_path, n_header):
    path = tmp_path / "h.eqx"
    path.write_bytes(MAGIC + struct.pack("<Q", n_header) + b"{}" * 10)
    assert_refused(
        path, f"its header length field says {n_header} bytes, more than the 4194304 a model"
    )


def test_header_longer_than_the_file(tmp_path):
    path = tmp_path / "h.eqx"
    path.write_bytes(MAGIC + struct.pack("<Q", 4 << 20) + b"{}")
    assert_refused(path, rf"truncated \(18 bytes; its header alone needs {(4 << 20) + 16}\)")


def test_huge_declared_payload_length(tmp_path, good):
    header, _ = parts(good["ffn"])
    raw = json.dumps(header).encode()
    data = MAGIC + struct.pack("<Q", len(raw)) + raw + struct.pack("<Q", 2**64 - 1) + b"\0" * 32
    path = tmp_path / "p.eqx"
    path.write_bytes(data)
    assert_refused(path, rf"truncated \({len(data)} bytes; expected {len(data) + 2**64 - 1}\)")


def test_trailing_bytes_and_checksum(tmp_path, good):
    path = tmp_path / "c.eqx"
    path.write_bytes(good["ffn"] + b"\0\0")
    assert_refused(path, "the file has 2 unexpected bytes at its end")
    corrupted = bytearray(good["ffn"])
    corrupted[-100] ^= 0x40
    path.write_bytes(bytes(corrupted))
    assert_refused(path, "the checksum does not match: the file is corrupted")


# -- the header's JSON ---------------------------------------------------------------------------

BASE_HEADER = {
    "format": "eqx_ffn.model",
    "format_version": 1,
    "library_version": "0.1.0",
    "jax_version": "0.4.30",
    "equinox_version": "0.11.4",
}


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xff\xfe{}", r"the header is not valid JSON \(not UTF-8 text"),
        (b"{'a': 1}", r"the header is not valid JSON \(Expecting property name"),
        (b"[1, 2]", r"the header is not valid JSON \(it is \[1, 2\], not a JSON object\)"),
        (b"[" * 200_000 + b"]" * 200_000, r"not valid JSON \(nested deeper than 32 levels\)"),
        (b'{"a":' + b"[" * 32 + b"]" * 32 + b"}", r"not valid JSON \(nested deeper than 32"),
        (b'{"format_version": NaN}', r"not valid JSON \(NaN is not a JSON number\)"),
        (b'{"kind": "FFN", "kind": "FFN"}', r"not valid JSON \(the key 'kind' appears twice"),
        (b'{"n": ' + b"9" * 5000 + b"}", r"not valid JSON \(Exceeds the limit"),
    ],
    ids=["not-utf8", "not-json", "array", "200k-deep", "33-deep", "nan", "duplicate-key", "bigint"],
)
def test_bad_header_json(tmp_path, raw, message):
    path = tmp_path / "j.eqx"
    path.write_bytes(frame(raw))
    t0 = time.perf_counter()
    assert_refused(path, message)
    assert time.perf_counter() - t0 < 2


def timed_refusal(path, match):
    """CPU seconds of this process to refuse `path` (CPU time, not wall time: a machine shared
    with other work must not fail the bound; the work itself is what is bounded)."""
    t0 = time.process_time()
    with pytest.raises(ModelFileError, match=match):
        load(path)
    return time.process_time() - t0


def test_160000_tiny_layers_are_refused_fast(tmp_path):
    layer = {"in_size": 1, "out_size": 1, "bias": False, "dtype": "float32", "bias_dtype": None}
    ffn = {
        "in_size": 1,
        "out_size": 1,
        "activation": "tanh",
        "final_activation": "identity",
        "dtype": "float32",
    }
    path = tmp_path / "many.eqx"
    for n_layers, message in [
        (160_000, "its header length field says .* more than the 4194304"),  # 14 MB of header
        (45_000, "ffn.layers holds 45000 layers; expected a list of 1 to 1000 layers"),  # 3.6 MB
        (1001, "ffn.layers holds 1001 layers; expected a list of 1 to 1000 layers"),
    ]:
        ffn |= {
            "hidden_sizes": [1] * (n_layers - 1),
            "use_bias": [False] * n_layers,
            "layers": [layer] * n_layers,
        }
        header = {**BASE_HEADER, "kind": "FFN", "ffn": ffn}
        raw = json.dumps(header, separators=(",", ":")).encode()
        path.write_bytes(frame(raw))
        assert timed_refusal(path, message) < 1.0, n_layers


def _set(path: str, value):
    """A header change: set the field at a dotted path (list items by number) to `value`."""

    def change(header):
        *parents, last = path.split(".")
        node = header
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop(path: str):
    def change(header):
        *parents, last = path.split(".")
        node = header
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _zero_input_layer(header):
    header["ffn"]["in_size"] = 0
    header["ffn"]["layers"][0]["in_size"] = 0


# (file, change, message): each a crafted header with a valid checksum.
HEADER_CASES = {
    "zero-input-layer": ("ffn", _zero_input_layer, r"ffn.layers\[0\].in_size is 0; expected an "),
    "negative-width": (
        "ffn",
        _set("ffn.layers.0.out_size", -4),
        r"ffn.layers\[0\].out_size is -4; expected an integer from 1 to 2147483647",
    ),
    "bool-size": ("ffn", _set("ffn.layers.1.out_size", True), r"out_size is True; expected an int"),
    "float-size": ("ffn", _set("ffn.layers.1.in_size", 4.0), r"in_size is 4.0; expected an int"),
    "size-2**31": (
        "ffn",
        _set("ffn.layers.0.in_size", 2**31),
        "is 2147483648; expected an integer",
    ),
    "int-dtype": (
        "ffn",
        _set("ffn.layers.0.dtype", "int32"),
        r"ffn.layers\[0\].dtype is 'int32'; expected one of bfloat16, float16, float32, float64",
    ),
    "subarray-dtype": ("ffn", _set("ffn.layers.0.dtype", "(1000000000,)f4"), "expected one of bf"),
    "void-dtype": ("ffn", _set("ffn.layers.1.bias_dtype", "V8"), r"bias_dtype is 'V8'; expected"),
    "dtype-not-string": ("ffn", _set("ffn.dtype", 32), r"ffn.dtype is 32 but its layers give"),
    "bias-dtype-without-bias": (
        "ffn",
        _set("ffn.layers.1.bias", False),
        r"ffn.layers\[1\].bias_dtype is 'float32'; expected null for a layer without bias",
    ),
    "unknown-activation": (
        "ffn",
        _set("ffn.activation", "os.system"),
        r"ffn.activation is 'os.system'; expected one of tanh, relu",
    ),
    "missing-key": ("ffn", _drop("ffn.layers"), "ffn lacks 'layers'"),
    "unexpected-key": (
        "ffn",
        _set("ffn.layers.0.pickle", "cos\nsystem"),
        r"ffn.layers\[0\] has an unexpected key 'pickle'; expected only in_size",
    ),
    "layers-not-a-list": ("ffn", _set("ffn.layers", {"0": 1}), r"ffn.layers holds \{'0': 1\}"),
    "no-layers": ("ffn", _set("ffn.layers", []), "ffn.layers holds 0 layers; expected a list of 1"),
    "sizes-do-not-chain": (
        "ffn",
        _set("ffn.layers.1.in_size", 5),
        r"ffn.layers\[1\].in_size is 5 but layer 0 gives 4 outputs; the sizes must chain",
    ),
    "summary-disagrees": (
        "ffn",
        _set("ffn.hidden_sizes", [True]),
        r"ffn.hidden_sizes is \[True\] but its layers give \[4\]",
    ),
    "format-version-bool": ("ffn", _set("format_version", True), "unknown format 'eqx_ffn.model' "),
    "version-with-newline": (
        "ffn",
        _set("library_version", "1.0\nINJECTED"),
        r"library_version is '1.0\\nINJECTED', which holds the character U\+000A",
    ),
    "kind-unknown": ("ffn", _set("kind", "Pickle"), "unknown model kind 'Pickle'; expected 'FFN'"),
    "scaler-on-ffn": ("ffn", _set("x_scaler", None), "has 'x_scaler', which only a Standardized"),
    "scaler-missing": ("std", _drop("y_scaler"), "the header lacks 'y_scaler' .a scaler, or null"),
    "scaler-size": ("std", _set("x_scaler.size", 2), "x_scaler.size is 2 but the network has 3 in"),
    "scaler-dtype": ("std", _set("y_scaler.dtype", "object"), "y_scaler.dtype is 'object'; exp"),
    "header-not-object": ("ffn", lambda h: [h], r"it is a list of 1 item, not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_crafted_header(tmp_path, good, case):
    which, change, message = HEADER_CASES[case]
    path = tmp_path / "crafted.eqx"
    path.write_bytes(rewrite(good[which], change))
    assert_refused(path, message)


def test_parameters_beyond_the_file_are_not_allocated(tmp_path, good):
    def huge(h):  # 2 x 10^9 values (8 GB) described by a 3 kB file
        h["ffn"]["in_size"] = 100_000
        h["ffn"]["layers"][0]["in_size"] = 100_000
        h["ffn"]["layers"][0]["out_size"] = 20_000
        h["ffn"]["layers"][1]["in_size"] = 20_000
        h["ffn"]["hidden_sizes"] = [20_000]

    path = tmp_path / "huge.eqx"
    path.write_bytes(rewrite(good["ffn"], huge))
    with pytest.raises(
        ModelFileError,
        match=r"the header describes 2000060002 parameters \(8000240008 bytes\) but the file "
        r"holds only \d+ bytes of parameters",
    ):
        load(path)


def npy_leaf(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)
    return buffer.getvalue()


def ffn_payload(model: FFN, replace: dict[int, bytes]) -> bytes:
    leaves = [leaf for layer in model.layers for leaf in (layer.weight, layer.bias)]
    return b"".join(replace.get(i, npy_leaf(np.asarray(a))) for i, a in enumerate(leaves))


@pytest.mark.parametrize(
    "leaf, message",
    [
        (
            npy_leaf(np.zeros((4, 3), np.float64)),
            r"ffn.layers\[0\].weight is stored with shape \(4, 3\) and dtype float64; the header "
            r"says \(4, 3\) and float32",
        ),
        (
            npy_leaf(np.zeros((3, 4), np.float32)),
            r"ffn.layers\[0\].weight is stored with shape \(3, 4\)",
        ),
        (
            b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (4, 3)}\n" + b"\0" * 48,
            r"ffn.layers\[0\].weight: no valid array record at byte 0",
        ),
        (
            b"\x93NUMPY\x01\x00\xff\xff" + b" " * 200,
            r"ffn.layers\[0\].weight: no valid array record at byte 0 \('EOF: reading array",
        ),
        (
            b"\x93NUMPY\x02\x00" + struct.pack("<I", 5000) + b" " * 5000,
            r"ffn.layers\[0\].weight: no valid array record at byte 0 \('Header info length "
            r"\(5000\) is large",
        ),
        (
            b"\x80\x04\x95pickle" + b"\0" * 50,
            r"ffn.layers\[0\].weight: no valid array record at byte 0 \(\"the magic string is not",
        ),
        (
            npy_leaf(np.full((4, 3), None, dtype=object)),  # a pickle after a valid .npy header
            r"ffn.layers\[0\].weight is stored with shape \(4, 3\) and dtype object; the header "
            r"says \(4, 3\) and float32",
        ),
    ],
    ids=[
        "float64-leaf",
        "transposed-leaf",
        "npy-header-without-fortran-order",
        "npy-length-beyond-file",
        "npy-long-header",
        "pickle",
        "object-array-pickle",
    ],
)
def test_crafted_parameters(tmp_path, good, leaf, message):
    header, _ = parts(good["ffn"])
    model = load_bytes(tmp_path, good["ffn"])
    path = tmp_path / "leaf.eqx"
    path.write_bytes(frame(json.dumps(header).encode(), ffn_payload(model, {0: leaf})))
    with pytest.raises(
        ModelFileError, match=rf"the parameters do not match the header \({message}"
    ):
        load(path)


def load_bytes(tmp_path, data: bytes):
    path = tmp_path / "ok.eqx"
    path.write_bytes(data)
    return load(path)


@pytest.mark.parametrize(
    "which, value, message",
    [
        ("mean", np.nan, r"x_scaler.mean must be finite in every column; got x_scaler.mean\[1\] ="),
        ("scale", 0.0, r"x_scaler.scale must be finite and > 0 in every column; got x_scaler"),
        ("scale", -1.0, r"x_scaler.scale must be .* got x_scaler.scale\[1\] = -1.0. \(A zero"),
        ("scale", np.inf, r"x_scaler.scale must be .* got x_scaler.scale\[1\] = inf"),
    ],
)
def test_stored_scaler_values(tmp_path, good, which, value, message):
    """A file whose scaler divides by zero (or by NaN) must not load as a model that gives inf."""
    model = load_bytes(tmp_path, good["std"])
    array = np.array(getattr(model.x_scaler, which))
    array[1] = value
    bad = eqx.tree_at(lambda m: getattr(m.x_scaler, which), model, jnp.asarray(array))
    header, _ = parts(good["std"])
    import io

    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, bad)
    path = tmp_path / "s.eqx"
    path.write_bytes(frame(json.dumps(header).encode(), buffer.getvalue()))
    with pytest.raises(ModelFileError, match=rf"Cannot load {path}: {message}"):
        load(path)


# -- metadata: refused by load and read_header, and never written by save ------------------------

METADATA_CASES = {
    "newline-in-column": (
        {"x_cols": ["a", "b\nc", "d"]},
        r"metadata\['x_cols'\]\[1\] is 'b\\nc', which holds the character U\+000A .a control, "
        r"format or line-break character.; expected printable text on one line",
    ),
    "escape-in-column": (
        {"y_cols": ["p", "\x1b[31mq"]},
        r"metadata\['y_cols'\]\[1\] is '\\x1b\[31mq', which holds the character U\+001B",
    ),
    "line-separator-in-column": (
        {"x_cols": ["a", "b", "c\u2028"]},
        r"metadata\['x_cols'\]\[2\] is 'c\\u2028', which holds the character U\+2028",
    ),
    "bidi-override-in-column": (
        {"x_cols": ["a", "\u202eb", "c"]},
        r"metadata\['x_cols'\]\[1\] is '\\u202eb', which holds the character U\+202E",
    ),
    "column-not-string": (
        {"x_cols": ["a", 2, "c"]},
        r"metadata\['x_cols'\]\[1\] is 2; expected a string of 1 to 1024 characters",
    ),
    "empty-column-name": (
        {"y_cols": ["", "q"]},
        r"metadata\['y_cols'\]\[0\] is ''; expected a string of 1 to 1024 characters",
    ),
    "long-column-name": (
        {"y_cols": ["p" * 1025, "q"]},
        r"metadata\['y_cols'\]\[0\] is 'ppp.*'...; expected a string of 1 to 1024 characters",
    ),
    "duplicate-columns": (
        {"x_cols": ["a", "b", "a"]},
        r"metadata\['x_cols'\] names 'a' twice; expected distinct column names",
    ),
    "wrong-column-count": (
        {"x_cols": ["a", "b"]},
        r"metadata\['x_cols'\] holds 2 names; expected 3, one per model input \(or none\)",
    ),
    "columns-not-a-list": (
        {"y_cols": "p,q"},
        r"metadata\['y_cols'\] is 'p,q'; expected a list of 2 column names",
    ),
    "control-in-key": (
        {"a\rb": 1},
        r"a metadata key is 'a\\rb', which holds the character U\+000D",
    ),
    "nul-in-free-text": (
        {"note": "a\x00b"},
        r"metadata\['note'\] is 'a\\x00b', which holds the character U\+0000; expected text "
        r"without control characters \(tab and newline allowed\)",
    ),
    "deep-metadata": (
        {"deep": json.loads("[" * 31 + "]" * 31)},
        r"(metadata\['deep'\](\[0\])+ is )?nested deeper than 32 levels",
    ),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_bad_metadata_in_a_file(tmp_path, good, case):
    metadata, message = METADATA_CASES[case]
    path = tmp_path / "meta.eqx"
    path.write_bytes(rewrite(good["std"], _set("metadata", metadata)))
    # (too deep a file is refused while parsing: "the header is not valid JSON (nested ...")
    assert_refused(path, rf"the header is (invalid|not valid JSON) \({message}")


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_save_refuses_what_load_refuses(tmp_path, case):
    metadata, message = METADATA_CASES[case]
    path = tmp_path / "m.eqx"
    with pytest.raises(ValueError, match=rf"Cannot save {path}: {message}"):
        save(path, make_standardized(), metadata=metadata)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_number_in_a_file(tmp_path, good):
    header, payload = parts(good["ffn"])
    raw = json.dumps(header)[:-1] + ', "metadata": {"lr": 1e400}}'
    path = tmp_path / "inf.eqx"
    path.write_bytes(frame(raw.encode(), payload))
    assert_refused(path, r"metadata\['lr'\] is inf; expected a finite number")


# -- save: models and metadata that load would refuse ------------------------------------------


def test_save_refuses_unloadable_models(tmp_path):
    path = tmp_path / "m.eqx"
    deep = FFN.from_layers([Dense(np.ones((1, 1), np.float32), None)] * 1001)
    with pytest.raises(ValueError, match=f"Cannot save {path}: ffn.layers holds 1001 layers; exp"):
        save(path, deep)
    with pytest.raises(TypeError, match="Dense weight must be a floating-point array"):
        Dense(np.ones((2, 3), np.int32), None)  # refused before it could reach save
    ints = eqx.tree_at(lambda m: m.layers[0].weight, make_ffn(), jnp.ones((4, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"ffn.layers\[0\].dtype is 'int32'; expected one of"):
        save(path, ints)
    model = make_standardized()
    zero = eqx.tree_at(lambda m: m.y_scaler.scale, model, jnp.zeros(2))
    with pytest.raises(ValueError, match=r"Cannot save this Standardized model: y_scaler.scale mu"):
        save(path, zero)
    mixed = eqx.tree_at(lambda m: m.x_scaler.scale, model, jnp.ones(3, jnp.float16))
    with pytest.raises(
        ValueError, match=r"its x_scaler holds mean \(3,\) float32 and scale \(3,\)"
    ):
        save(path, mixed)
    edited = eqx.tree_at(lambda m: m.layers[0].weight, make_ffn(), jnp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"layer 0 declares 3 inputs and 4 outputs but holds a w"):
        save(path, edited)
    with pytest.raises(ValueError, match=r"its header would take \d+ bytes, more than the 4194304"):
        save(path, make_ffn(), metadata={"blob": "x" * (4 << 20)})
    deep: list = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ValueError, match="metadata is nested deeper than 32 levels"):
        save(path, make_ffn(), metadata={"a": deep})
    assert list(tmp_path.iterdir()) == []


# -- Standardizer and Standardized ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, scale, exc, message",
    [
        ([0.0, 1.0], [1.0, 0.0], ValueError, r"Standardizer: scale must be finite and > 0 in "),
        ([0.0], [-2.0], ValueError, r"got scale\[0\] = -2.0. \(A zero scale divides by zero"),
        ([0.0], [np.inf], ValueError, r"scale must be finite and > 0 .* got scale\[0\] = inf"),
        ([0.0], [np.nan], ValueError, r"got scale\[0\] = nan"),
        ([0.0, np.nan], [1.0, 1.0], ValueError, r"mean must be finite in every column; got mean"),
        ([-np.inf], [1.0], ValueError, r"Standardizer: mean must be finite .* mean\[0\] = -inf"),
        (
            [1e39],
            [1.0],
            ValueError,
            r"mean and scale must fit in float32, the dtype they are held in; got mean\[0\] = "
            r"1e\+39, which becomes inf. Rescale the data, or enable float64 first",
        ),
        ([0.0], [1e-50], ValueError, r"got scale\[0\] = 1e-50, which becomes 0.0"),
        ([0.0, 0.0], [1.0], ValueError, r"same shape \(d,\) with d >= 1; got \(2,\) and \(1,\)"),
        ([[0.0]], [[1.0]], ValueError, r"same shape \(d,\) with d >= 1; got \(1, 1\)"),
        ([], [], ValueError, r"with d >= 1; got \(0,\) and \(0,\)"),
        ([1j], [1.0], TypeError, "Standardizer needs real mean and scale; got dtype complex64"),
    ],
)
def test_standardizer_arguments(mean, scale, exc, message):
    with pytest.raises(exc, match=message):
        Standardizer(np.asarray(mean), np.asarray(scale))


@pytest.mark.parametrize(
    "data, exc, message",
    [
        (
            np.array([[1e39], [0.0]]),
            ValueError,
            r"Standardizer.fit: column 0 holds 1e\+39, beyond the largest float32 \(3.403e\+38\), "
            r"the dtype the scaler works in; it would become inf. Rescale the data .*jax_enable_x64",
        ),
        (np.array([[0.0, np.nan]]), ValueError, r"NaN or inf \(first at row 0, column 1\)"),
        (np.array([["a"], ["b"]]), TypeError, r"expects real numbers; got an array of dtype <U1"),
        (np.zeros((0, 2)), ValueError, r"shape \(N, d\) with N, d >= 1; got \(0, 2\)"),
        (np.zeros((3, 0)), ValueError, r"with N, d >= 1; got \(3, 0\)"),
        (np.zeros((2, 2, 2)), ValueError, r"got \(2, 2, 2\)"),
    ],
    ids=["overflow", "nan", "strings", "no-rows", "no-columns", "3-d"],
)
def test_standardizer_fit_data(data, exc, message):
    with pytest.raises(exc, match=message):
        Standardizer.fit(data)


def test_standardized_refuses_bad_scalers():
    net = make_ffn()
    good_x = Standardizer.fit(np.arange(6.0).reshape(2, 3))
    broken = eqx.tree_at(lambda s: s.scale, good_x, jnp.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Standardized: x_scaler.scale must be finite and > 0 .*"):
        Standardized(net, broken)
    with pytest.raises(TypeError, match="y_scaler must be an eqx_ffn.Standardizer or None; got nd"):
        Standardized(net, good_x, np.ones(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Standardized.around: y: column 0 holds 1e\+39"):
        Standardized.around(net, np.ones((2, 3)), np.array([[1e39, 0.0], [0.0, 0.0]]))


# -- fuzzing: random and mutated files -------------------------------------------------------

FUZZ = textwrap.dedent(
    r"""
    import hashlib, json, re, resource, struct, sys, time
    from pathlib import Path
    import numpy as np
    import equinox as eqx
    from hypothesis import HealthCheck, given, settings, strategies as st
    from eqx_ffn import FFN, Dense, Standardized, Standardizer
    from eqx_ffn.io._model_file import MAGIC, ModelFileError, load, read_header, save

    folder = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    def dense(n_in, n_out, bias=True):
        b = rng.normal(size=n_out).astype(np.float32) if bias else None
        return Dense(rng.normal(size=(n_out, n_in)).astype(np.float32), b)
    net = FFN.from_layers([dense(3, 4), dense(4, 2, False)], activation="relu")
    std = Standardized(net, Standardizer.fit(rng.normal(size=(9, 3))), None)
    seeds = [
        save(folder / "a.eqx", net).read_bytes(),
        save(folder / "b.eqx", std, metadata={"x_cols": ["u", "v", "w"], "n": [1, {"k": 2}]})
        .read_bytes(),
    ]

    def reframe(body):  # fix the checksum (and nothing else)
        return body + hashlib.sha256(body).digest()

    def json_paths(node, prefix=()):
        yield prefix
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
            node, list) else ()
        for key, child in items:
            yield from json_paths(child, prefix + (key,))

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**70, 2**70)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
        max_leaves=12,
    )

    @st.composite
    def files(draw):
        how = draw(
            st.sampled_from(["random", "magic+random", "bytes", "bytes+checksum", "json", "intact"])
        )
        if how == "intact":  # the success path stays covered: these must load
            return draw(st.sampled_from(seeds))
        if how == "random":
            return draw(st.binary(max_size=3000))
        if how == "magic+random":
            return MAGIC + draw(st.binary(max_size=3000))
        data = bytearray(draw(st.sampled_from(seeds)))
        if how in ("bytes", "bytes+checksum"):
            for _ in range(draw(st.integers(1, 4))):
                op = draw(st.sampled_from(["flip", "insert", "delete", "set-length"]))
                pos = draw(st.integers(0, max(len(data) - 1, 0)))
                if op == "flip" and data:
                    data[pos] ^= draw(st.integers(1, 255))
                elif op == "insert":
                    data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
                elif op == "delete":
                    del data[pos : pos + draw(st.integers(1, 64))]
                elif len(data) >= 16:  # a length field: header's or payload's
                    n = struct.unpack_from("<Q", data, 8)[0]
                    at = draw(st.sampled_from([8, 16 + n] if 16 + n + 8 <= len(data) else [8]))
                    value = draw(st.integers(0, 2**64 - 1) | st.integers(0, 5000))
                    data[at : at + 8] = struct.pack("<Q", value)
            if how == "bytes+checksum" and len(data) > 32:
                data = bytearray(reframe(bytes(data[:-32])))
            return bytes(data)
        n = struct.unpack_from("<Q", data, 8)[0]
        header = json.loads(data[16 : 16 + n])
        payload = bytes(data[16 + n + 8 : -32])
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(list(json_paths(header))[1:]))
            node = header
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()) and isinstance(node, dict):
                del node[path[-1]]
            else:
                node[path[-1]] = draw(json_values)
            if path[0] not in header and path[0] != "ffn":
                break
        raw = json.dumps(header).encode()
        return reframe(MAGIC + struct.pack("<Q", len(raw)) + raw
                       + struct.pack("<Q", len(payload)) + payload)

    # Cap the address space at 1 GiB above what start-up took (Linux; elsewhere no cap).
    status = Path("/proc/self/status")
    if status.exists():
        vm = int(re.search(r"VmSize:\s+(\d+) kB", status.read_text()).group(1)) << 10
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
    outcomes = {}
    slowest = [0.0]

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(files())
    def fuzz(data):
        path = folder / "fuzz.eqx"
        path.write_bytes(data)
        for function in (load, read_header):
            t0 = time.perf_counter()
            try:
                out = function(path)
            except ModelFileError as e:
                out = "ModelFileError"
                assert str(path) in str(e)
            elapsed = time.perf_counter() - t0
            slowest[0] = max(slowest[0], elapsed)
            assert elapsed < 2.0, (function.__name__, elapsed)
            if function is load:
                assert out == "ModelFileError" or type(out) in (FFN, Standardized), out
            else:
                assert out == "ModelFileError" or isinstance(out, dict), out
            label = out if isinstance(out, str) else type(out).__name__
            outcomes[label] = outcomes.get(label, 0) + 1

    fuzz()
    print(json.dumps({"outcomes": outcomes, "slowest_s": slowest[0]}))
    """
)


@posix_only
def test_fuzz_load_only_returns_a_model_or_raises_model_file_error(tmp_path):
    """Random bytes and mutated model files (bytes flipped, inserted, deleted, length fields
    rewritten, header JSON values replaced; checksums fixed or not): `load` and `read_header`
    return a model (a header) or raise `ModelFileError`, each within 2 s, in a process whose
    address space is capped at 1 GiB above its size after start-up (so an allocation sized by a
    declared length, not by the file, fails the test with MemoryError)."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", FUZZ, str(tmp_path), "150"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Both outcomes occur (the intact files load; most mutated ones cannot).
    assert result["outcomes"].get("ModelFileError", 0) > 0, result
    assert result["outcomes"].get("FFN", 0) + result["outcomes"].get("Standardized", 0) > 0
    assert result["slowest_s"] < 2.0, result
