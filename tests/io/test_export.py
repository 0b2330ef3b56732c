"""`eqx_ffn.export`: a StableHLO program that a process without eqx_ffn reads and runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn

pytest.importorskip("flatbuffers")

READER = textwrap.dedent(
    """
    import sys
    sys.modules["eqx_ffn"] = None  # this process cannot import eqx_ffn, even by accident
    import numpy as np
    from jax import export
    path, x_path, out_path = sys.argv[1:]
    with open(path, "rb") as f:
        program = export.deserialize(f.read())
    x = np.load(x_path)
    np.save(out_path, np.asarray(program.call(x)))
    np.save(out_path + ".small.npy", np.asarray(program.call(x[:3])))  # another batch size
    assert "eqx_ffn" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
    """
)


def _read_elsewhere(tmp_path, path, x):
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(path), str(tmp_path / "x.npy"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out), np.load(str(out) + ".small.npy")


def test_plain_and_standardized_models_round_trip(tmp_path):
    x = np.random.default_rng(0).uniform(-3, 3, (17, 2)).astype(np.float32)
    y = np.sin(x[:, :1]) * 40 + 7
    net = eqx_ffn.FFN(2, 1, (8,), key=jr.key(0))
    scaled = eqx_ffn.Standardized.around(net, x, y)
    for name, model in (("plain", net), ("standardized", scaled)):
        path = eqx_ffn.export(model, tmp_path / f"{name}.stablehlo")
        got, small = _read_elsewhere(tmp_path, path, x)
        want = np.asarray(eqx_ffn.predict(model, x))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(small, want[:3], rtol=1e-5, atol=1e-5)
    # the scalers are inside: the standardised model predicts in the data's units
    assert abs(float(np.mean(got)) - float(np.mean(np.asarray(eqx_ffn.predict(net, x))))) > 1


def test_bad_input(tmp_path):
    net = eqx_ffn.FFN(2, 1, (4,), key=jr.key(0))
    with pytest.raises(TypeError, match="export: model must be an eqx_ffn network"):
        eqx_ffn.export(object(), tmp_path / "m")
    with pytest.raises(TypeError, match="export: path must be a file path"):
        eqx_ffn.export(net, "")
    with pytest.raises(TypeError, match="export: dtype must be a floating dtype"):
        eqx_ffn.export(net, tmp_path / "m", dtype=jnp.int32)
    with pytest.raises(TypeError, match="platforms must be a sequence of names"):
        eqx_ffn.export(net, tmp_path / "m", platforms="cpu")
    models, _ = eqx_ffn.fit_ensemble(
        lambda k: eqx_ffn.FFN(2, 1, (4,), key=k),
        np.ones((8, 2), np.float32),
        np.ones((8, 1), np.float32),
        keys=jr.split(jr.key(0), 2),
        steps=1,
        progress=False,
    )
    with pytest.raises(ValueError, match="stacked ensemble.*ensemble_member"):
        eqx_ffn.export(models, tmp_path / "m")
    assert not list(tmp_path.iterdir())  # nothing written by a refused call
