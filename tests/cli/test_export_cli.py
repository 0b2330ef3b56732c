"""`eqx-ffn export`: a saved model (plain or standardised) as a StableHLO program that gives
`eqx_ffn.predict`'s outputs; bad input exits 2 with one line; `--help` loads no JAX."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn.cli import main


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 2)).astype(np.float32)
    y = np.concatenate([x[:, :1] * x[:, 1:], np.sin(3 * x[:, :1])], axis=1) * 5 + 10
    return x, y.astype(np.float32)


@pytest.mark.parametrize("standardized", [False, True], ids=["plain", "standardized"])
def test_round_trip(tmp_path, data, standardized, capsys):
    x, y = data
    model = eqx_ffn.FFN(2, 2, (8,), key=jr.key(0))
    if standardized:
        model = eqx_ffn.Standardized.around(model, x, y)
    model, _ = eqx_ffn.fit(model, x, y, steps=20)
    eqx_ffn.save(tmp_path / "model.eqx", model)
    out = tmp_path / "model.stablehlo"

    assert main(["export", str(tmp_path / "model.eqx"), str(out)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.strip().splitlines()
    assert len(lines) == 1 and printed.err == ""
    assert str(out) in lines[0] and "(batch, 2)" in lines[0]
    assert "jax.export.deserialize" in lines[0]
    assert ("scalers inside" in lines[0]) == standardized

    program = jax.export.deserialize(bytearray(out.read_bytes()))
    for rows in (x, x[:5]):  # the batch size is symbolic
        # the same computation from the same parameters; XLA may fuse it differently
        np.testing.assert_allclose(
            np.asarray(program.call(rows)),
            np.asarray(eqx_ffn.predict(model, rows)),
            rtol=1e-6,
            atol=1e-5,
        )


def test_platforms_are_recorded(tmp_path):
    eqx_ffn.save(tmp_path / "m.eqx", eqx_ffn.FFN(2, 2, (4,), key=jr.key(1)))
    out = tmp_path / "m.stablehlo"
    assert main(["export", str(tmp_path / "m.eqx"), str(out), "--platforms", "cpu,cuda"]) == 0
    assert jax.export.deserialize(bytearray(out.read_bytes())).platforms == ("cpu", "cuda")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_model_file(tmp_path, capsys):
    (tmp_path / "bad.eqx").write_text("not a model\n")
    out = tmp_path / "out.stablehlo"
    assert main(["export", str(tmp_path / "missing.eqx"), str(out)]) == 2
    assert "no such model file" in _one_error_line(capsys)
    assert main(["export", str(tmp_path / "bad.eqx"), str(out)]) == 2
    assert "not an eqx_ffn model file" in _one_error_line(capsys)
    assert not out.exists()


def test_unwritable_output_and_missing_extra(tmp_path, capsys, monkeypatch):
    eqx_ffn.save(tmp_path / "m.eqx", eqx_ffn.FFN(1, 1, (4,), key=jr.key(2)))
    model = str(tmp_path / "m.eqx")
    assert main(["export", model, str(tmp_path / "no" / "m.stablehlo")]) == 2
    assert "folder" in _one_error_line(capsys)
    assert main(["export", model, str(tmp_path)]) == 2
    assert "is a folder" in _one_error_line(capsys)
    assert main(["export", model, "x", "--platforms", "gpu"]) == 2
    assert "argument --platforms" in _one_error_line(capsys)
    monkeypatch.setitem(sys.modules, "flatbuffers", None)  # `import flatbuffers` fails
    assert main(["export", model, str(tmp_path / "m.stablehlo")]) == 2
    assert 'pip install "eqx_ffn[export]"' in _one_error_line(capsys)
    assert not (tmp_path / "m.stablehlo").exists()


def test_help_does_not_import_jax():
    code = (
        "import sys, io, contextlib\n"
        "from eqx_ffn.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as text:\n"
        "    assert main(['export', '--help']) == 0\n"
        "assert 'jax.export.deserialize' in text.getvalue()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'numpy', 'equinox', 'optax', 'matplotlib'))\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
