"""Host data reach the device without compiling: `Standardized.around`, `FFN.from_params` and
`predict` on a new number of rows compile no XLA program of their own (JAX 0.10's
`jnp.asarray` of a NumPy array, and an eager slice, each compile one per shape: a fresh
process pays ~15-40 ms for each)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import run_python

import eqx_ffn
from eqx_ffn._validation import as_jax_array
from eqx_ffn.training._predict import first_rows

_EVENT = "/jax/core/compile/backend_compile_duration"
_compiled: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: (
        _compiled.append(str(kw.get("fun_name"))) if event == _EVENT else None
    )
)


def _compiles(fn):
    before = len(_compiled)
    out = jax.block_until_ready(fn())
    return out, _compiled[before:]


def test_standardized_around_compiles_nothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 13))  # float64 host data of a shape no other test uses
    y = rng.standard_normal((50, 3))
    net = eqx_ffn.FFN(13, 3, (5,), key=jr.key(0))
    model, compiled = _compiles(lambda: eqx_ffn.Standardized.around(net, x, y))
    assert compiled == []
    assert model.x_scaler.mean.dtype == jnp.float32  # as jnp.asarray would hold it
    np.testing.assert_allclose(np.asarray(model.x_scaler.mean), x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model.y_scaler.scale), y.std(axis=0), rtol=1e-6)


def test_from_params_compiles_nothing():
    params = {"W1": np.ones((7, 1)), "b1": np.zeros(7), "W2": np.full((1, 7), 0.5), "b2": [0.25]}
    model, compiled = _compiles(lambda: eqx_ffn.FFN.from_params(params))
    assert compiled == []
    assert model.layers[0].weight.dtype == jnp.float32
    assert float(model(jnp.array([0.0]))[0]) == pytest.approx(0.25)


def test_predict_on_new_row_counts_compiles_nothing_more():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 3)).astype(np.float32)
    model = eqx_ffn.FFN(3, 2, (6,), key=jr.key(1))
    full = np.asarray(eqx_ffn.predict(model, x))  # compiles the bucket of 128 rows
    for n in (99, 77, 65):  # same bucket, new row counts
        out, compiled = _compiles(lambda n=n: eqx_ffn.predict(model, x[:n]))
        assert compiled == []
        assert out.shape == (n, 2) and isinstance(out, jax.Array)
        np.testing.assert_array_equal(np.asarray(out), full[:n])  # row for row, bit for bit


def test_first_rows_cuts_along_the_axis():
    a = jnp.arange(2 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 3)
    np.testing.assert_array_equal(np.asarray(first_rows(a, 5, axis=1)), np.asarray(a)[:, :5])
    np.testing.assert_array_equal(np.asarray(first_rows(a, 1, axis=0)), np.asarray(a)[:1])
    assert first_rows(a, 8, axis=1) is a


def test_as_jax_array_matches_jnp_asarray():
    for value in ([1.5, 2.5], np.arange(4), np.ones((2, 2), np.float64), True, [[1, 2]]):
        got, want = as_jax_array(value), jnp.asarray(value)
        assert isinstance(got, jax.Array)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert as_jax_array(np.ones(3), jnp.float16).dtype == jnp.float16
    arr = jnp.ones(3)
    assert as_jax_array(arr) is arr


def test_fit_and_predict_never_format_the_model(monkeypatch):
    # `jax.vmap(module)` names the function by formatting the module (~3 ms a trace for a
    # Standardized network, more for larger ones); the library vmaps its bound `__call__`
    formatted = []

    def counting_repr(self):
        formatted.append(type(self).__name__)
        return "Standardized(...)"

    monkeypatch.setattr(eqx_ffn.Standardized, "__repr__", counting_repr)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = x[:, :1] ** 2
    model = eqx_ffn.Standardized.around(eqx_ffn.FFN(3, 1, (9,), key=jr.key(2)), x, y)
    model, _ = eqx_ffn.fit(model, x, y, steps=3, validation=(x[:8], y[:8]), progress=False)
    eqx_ffn.predict(model, x)
    assert formatted == []


def test_predict_on_a_cpu_jax_array_compiles_nothing_more():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((90, 3)), jnp.float32)
    model = eqx_ffn.FFN(3, 1, (4,), key=jr.key(3))
    full = np.asarray(eqx_ffn.predict(model, np.asarray(x)))  # compiles the bucket of 128 rows
    part = jax.block_until_ready(x[:70])
    out, compiled = _compiles(lambda: eqx_ffn.predict(model, part))  # no padding on the device
    assert compiled == []
    np.testing.assert_array_equal(np.asarray(out), full[:70])


def test_a_fresh_process_compiles_four_programs_for_its_first_result():
    # the README's claim: a standardised model, a fit with validation and a prediction on host
    # data compile the draw, the initial state, the training program and the prediction
    code = (
        "import json, jax, jax.random as jr, numpy as np\n"
        "import eqx_ffn\n"
        "keys = jr.key(0), jr.key(1)  # JAX's own programs for jax.random.key, before counting\n"
        "names = []\n"
        "jax.monitoring.register_event_duration_secs_listener(lambda e, d, **kw: names.append("
        "str(kw.get('fun_name'))) if e.endswith('backend_compile_duration') else None)\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((150, 5)); y = x[:, :1] ** 2 + 0.1 * x[:, 1:2]\n"
        "net = eqx_ffn.FFN(5, 1, (12,), activation='relu', key=keys[0])\n"
        "model = eqx_ffn.Standardized.around(net, x[:120], y[:120])\n"
        "model, h = eqx_ffn.fit(model, x[:120], y[:120], steps=40, batch_size=32, key=keys[1],\n"
        "    validation=(x[120:], y[120:]), eval_every=4, patience=3, progress=False)\n"
        "eqx_ffn.predict(model, x[120:])\n"
        "print(json.dumps(names))\n"
    )
    names = json.loads(run_python(code).strip().splitlines()[-1])
    assert sorted(names) == ["jit(draw)", "jit(init_states)", "jit(predict)", "jit(program)"]
