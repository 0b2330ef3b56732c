"""The uniform schemes' first draws on the host (`model/_host_draw.py`): JAX's numbers bit for
bit, with no XLA compile."""

import contextlib
import logging
import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eqx_ffn import FFN
from eqx_ffn.model import _ffn
from eqx_ffn.model._host_draw import split, threefry2x32, uniform_pm1


@contextlib.contextmanager
def _logged(name: str):
    """The messages logged to `name` inside the block."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _data(key) -> tuple[int, int]:
    d = np.asarray(jax.random.key_data(key))
    return int(d[0]), int(d[1])


@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1])
def test_split_and_uniform_equal_jax(seed):
    key = jr.key(seed)
    assert split(_data(key), 5) == [_data(k) for k in jr.split(key, 5)]
    for n in (1, 2, 3, 1000):  # odd sizes too: JAX pads an odd count
        ref = np.asarray(jr.uniform(key, (n,), jnp.float32, -1))
        np.testing.assert_array_equal(uniform_pm1(_data(key), n, np.dtype(np.float32)), ref)


def test_the_hash_equals_jax_where_every_addition_wraps():
    # keys and counters near 2**32: every addition wraps
    from jax.extend.random import threefry_2x32

    k = (2**32 - 1, 2**31 + 5)
    x = np.array([0, 1, 2**32 - 1, 2**31, 12345], np.uint32)
    ref = threefry_2x32(jnp.array(k, jnp.uint32), jnp.concatenate([jnp.asarray(x), jnp.asarray(x)]))
    a, b = threefry2x32(*k, x, x)  # JAX hashes the halves of its flat count as the pairs
    np.testing.assert_array_equal(np.concatenate([a, b]), np.asarray(ref))
    assert a.dtype == b.dtype == np.uint32


@pytest.mark.parametrize(
    ("init", "sizes", "raw_key"),
    [
        ("glorot_uniform", (8, 64, 64, 1), False),
        ("kaiming_uniform", (3, 7, 5, 2), True),
        ("glorot_uniform", (5, 3), False),  # no hidden layer: the layer-by-layer program
    ],
)
def test_a_host_draw_equals_the_compiled_draw_and_compiles_nothing(
    init, sizes, raw_key, monkeypatch
):
    key = jr.PRNGKey(4) if raw_key else jr.key(4)
    jax.block_until_ready(key)
    monkeypatch.setattr(_ffn, "_host_draws", {})
    with jax.log_compiles(), _logged("jax") as records:
        host = FFN(sizes[0], sizes[-1], sizes[1:-1], init=init, key=key)
        jax.block_until_ready(host)
    assert [r for r in records if "Finished XLA compilation" in r] == []
    monkeypatch.setattr(_ffn, "HOST_DRAWS", 0)  # the compiled program
    compiled = FFN(sizes[0], sizes[-1], sizes[1:-1], init=init, key=key)
    for a, b in zip(host.layers, compiled.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert a.weight.dtype == b.weight.dtype == jnp.float32


def test_later_models_of_an_architecture_compile_the_draw(monkeypatch):
    monkeypatch.setattr(_ffn, "_host_draws", {})
    _ffn._init_compiled.cache_clear()
    keys = [jr.key(i) for i in range(_ffn.HOST_DRAWS + 2)]
    models = [FFN(2, 1, (9,), init="glorot_uniform", key=k) for k in keys]
    info = _ffn._init_compiled.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # the first HOST_DRAWS drew on the host
    first = FFN(2, 1, (9,), init="glorot_uniform", key=keys[0])  # compiled now: the same numbers
    np.testing.assert_array_equal(first.layers[0].weight, models[0].layers[0].weight)


def test_a_committed_key_keeps_its_device(monkeypatch):
    monkeypatch.setattr(_ffn, "_host_draws", {})
    key = jax.device_put(jr.key(1), jax.devices()[0])
    model = FFN(2, 1, (4,), init="glorot_uniform", key=key)
    assert model.layers[0].weight.devices() == key.devices()
    assert _ffn._host_draws == {}  # the compiled program, on the key's device


def test_float64_draws_equal_jax():
    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import jax.numpy as jnp, jax.random as jr, numpy as np\n"
        "from eqx_ffn import FFN\n"
        "from eqx_ffn.model import _ffn\n"
        "host = FFN(3, 2, (6, 5), init='glorot_uniform', dtype=jnp.float64, key=jr.key(2))\n"
        "_ffn.HOST_DRAWS = 0\n"
        "ref = FFN(3, 2, (6, 5), init='glorot_uniform', dtype=jnp.float64, key=jr.key(2))\n"
        "for a, b in zip(host.layers, ref.layers):\n"
        "    assert a.weight.dtype == jnp.float64\n"
        "    np.testing.assert_array_equal(a.weight, b.weight)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
