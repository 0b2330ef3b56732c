"""Shared fixtures: the lecture's data and parameters, built once per session.

The suite runs in parallel (pytest-xdist, `-n auto` in pyproject.toml), and every process of it
(workers and the subprocesses tests start) shares one private JAX compilation cache folder for
the session: a program compiled in one process is loaded, not compiled, by the others.
"""

from __future__ import annotations

import os
import sys
import tempfile


def _shared_compilation_cache() -> None:
    # Set before JAX is imported (here and in every process started from here, which inherits
    # the environment). mkdtemp makes the folder private to the user (0700), as the cache's
    # loaded programs must be.
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="eqx_ffn_tests_jax_")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


_shared_compilation_cache()

# On recent NVIDIA GPUs JAX's default float32 matmul is TF32 (about 3 significant digits): the
# suite compares fits with reference computations to float32 rounding, so it asks for full
# float32 everywhere (no effect on CPUs). Tests of the precision setting itself set their own.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import pytest  # noqa: E402


def import_tensorboardx_without_torch() -> None:
    """Import tensorboardX as PyTorch were not installed: where it is, tensorboardX imports it
    (seconds) only to recognise its tensors, which the logging tests never pass."""
    with pytest.MonkeyPatch.context() as mp:
        if "torch" not in sys.modules:
            mp.setitem(sys.modules, "torch", None)
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            pass


def run_python(code: str, timeout: float = 180) -> str:
    """Run `code` in a fresh Python process (this environment, so the shared compilation cache
    too); its standard output, after asserting that it exited 0 (else its stderr's tail)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def lecture_data_and_params(n_keys: int = 5, hidden=(16,), n: int = 200):
    """REFERENCE.md sections 1 and 2, written out as the lecture does (independent of the package)."""
    keys = jr.split(jr.key(42), n_keys)
    x = -1 + 2 * jr.uniform(keys[0], (n, 1))
    y = 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)
    sizes = (1, *hidden, 1)
    params = {}
    for i in range(len(sizes) - 1):
        params[f"W{i + 1}"] = jr.normal(keys[1 + 2 * i], (sizes[i + 1], sizes[i]))
        params[f"b{i + 1}"] = jr.normal(keys[2 + 2 * i], (sizes[i + 1],))
    return x, y, params


def lecture_nn(p, x):
    """The lecture's network, any depth, written as in the slides."""
    n = len([k for k in p if k.startswith("W")])
    for i in range(1, n):
        x = jnp.tanh(p[f"W{i}"] @ x + p[f"b{i}"])
    return p[f"W{n}"] @ x + p[f"b{n}"]


@pytest.fixture(scope="session")
def lecture1():
    return lecture_data_and_params(5, (16,))


@pytest.fixture(scope="session")
def lecture2():
    return lecture_data_and_params(7, (16, 16))


@pytest.fixture(scope="session")
def batched():
    return jax.vmap(lecture_nn, in_axes=(None, 0))


@pytest.fixture
def program_configs(monkeypatch):
    """The `Config` of every training program the test's fits look up, in order."""
    from eqx_ffn.training import _program_cache

    seen = []
    real = _program_cache.compiled_program

    def recording(cfg, *args):
        seen.append(cfg)
        return real(cfg, *args)

    monkeypatch.setattr(_program_cache, "compiled_program", recording)
    return seen
