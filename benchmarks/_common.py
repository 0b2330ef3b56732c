"""Shared pieces: timing, the package's internals, the lecture's data, fresh processes, the
machine and versions."""

from __future__ import annotations

import compileall
import functools
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# The package's private internals the benchmarks read: ONE import, to change when they move.
from eqx_ffn.training import _program_cache as engine


class Mode:
    """Repeats and sizes for `--quick` (a smoke run: every case and check, the fewest repeats and
    smallest sizes that keep each check's meaning; compiling dominates it) or the full run."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.name = "quick" if quick else "full"
        self.repeats = 2 if quick else 7  # timed repeats of a cheap measurement (a minimum: >= 2)
        self.slow_repeats = 1 if quick else 3  # ... of an expensive one (Python loops, processes)
        self.min_time = 0.05 if quick else 0.5  # cheap measurements repeat until this many seconds


# -- timing ------------------------------------------------------------------------------------


def block(tree: Any) -> Any:
    """Wait for every JAX array in `tree`."""
    return jax.block_until_ready(tree)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """`(seconds, result)` of one call; JAX results are waited for."""
    t0 = time.perf_counter()
    out = block(fn())
    return time.perf_counter() - t0, out


class Timing(NamedTuple):
    median: float
    min: float
    result: Any


def median_time(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, min_time: float = 0.0
) -> Timing:
    """At least `repeats` timed calls (more, up to 200, until `min_time` seconds) after `warmup`
    untimed ones: their median, their minimum and the last result."""
    out = None
    for _ in range(warmup):
        out = block(fn())
    times: list[float] = []
    while len(times) < max(1, repeats) or (sum(times) < min_time and len(times) < 200):
        t, out = timed(fn)
        times.append(t)
    return Timing(statistics.median(times), min(times), out)


class Paired(NamedTuple):
    min_ratio: float  # the ratio of the minimums: the figure a target is judged on
    ratio: float  # the median of the per-pair ratios
    a_min: float
    b_min: float
    pairs: int


def paired(
    fa: Callable[[], Any], fb: Callable[[], Any], pairs: int, min_time: float = 0.0
) -> Paired:
    """Time `fa` and `fb` alternately (A B A B ...) after one warm-up call of each: both see the
    same machine load, and the minimum is each one's least disturbed time (noise only adds)."""
    block(fa())
    block(fb())
    ta: list[float] = []
    tb: list[float] = []
    while len(ta) < max(1, pairs) or (sum(ta) + sum(tb) < min_time and len(ta) < 200):
        ta.append(timed(fa)[0])
        tb.append(timed(fb)[0])
    per_pair = float(np.median([a / b for a, b in zip(ta, tb, strict=True)]))
    return Paired(min(ta) / min(tb), per_pair, min(ta), min(tb), len(ta))


def compile_count() -> int:
    """Training programs eqx_ffn compiled so far in this process."""
    return engine.compile_count


def bucket(n: int) -> int:
    """The padded size eqx_ffn gives `n` rows (sizes in one bucket share a program)."""
    return engine.bucket(n)


class XlaCompiles:
    """Every XLA compile of this process (training programs, initialisers, eager ops), from JAX's
    monitoring events: `snapshot()` now, `since(snapshot)` the count and seconds after it."""

    EVENT = "/jax/core/compile/backend_compile_duration"
    count, seconds, registered = 0, 0.0, False

    @classmethod
    def _listen(cls, event: str, duration: float, **_: Any) -> None:
        if event == cls.EVENT:
            cls.count += 1
            cls.seconds += duration

    @classmethod
    def snapshot(cls) -> tuple[int, float]:
        if not cls.registered:
            jax.monitoring.register_event_duration_secs_listener(cls._listen)
            cls.registered = True
        return cls.count, cls.seconds

    @classmethod
    def since(cls, snap: tuple[int, float]) -> tuple[int, float]:
        return cls.count - snap[0], cls.seconds - snap[1]


def attempt(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """`(fn(), None)`, or `(None, "Error: message")`: one runner failing loses no other figures."""
    try:
        return fn(), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


def first_reach(loss: Any, threshold: float) -> int | None:
    """Index of the first loss `<= threshold` (= steps done to get there), else None."""
    hits = np.flatnonzero(np.asarray(loss, dtype=float).ravel() <= threshold)
    return int(hits[0]) if hits.size else None


def time_to(loss: Any, run_time: float, threshold: float) -> float | None:
    """Run time to reach `threshold`: `run_time * first index / steps`, None if never reached."""
    n = np.asarray(loss).size
    i = first_reach(loss, threshold)
    return None if i is None or n == 0 else run_time * i / n


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not np.isfinite(a) or not np.isfinite(b):
        return None
    return float(a) / float(b)


# -- the lecture's data (docs/REFERENCE.md section 1) ------------------------------------------


def lecture_data() -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """`(x (200, 1), y (200, 1), params)`: the lecture's 1-D problem and initial parameters."""
    from eqx_ffn.datasets import lecture_params, sine_1d

    x, y = sine_1d()
    return jnp.asarray(x), jnp.asarray(y), {k: jnp.asarray(v) for k, v in lecture_params().items()}


def mse_of(params: dict[str, Any], x: Any, y: Any) -> float:
    """The lecture network's full-batch MSE at a parameter dict, in float64 NumPy."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = np.tanh(np.asarray(x, np.float64) @ p["W1"].T + p["b1"])
    return float(np.mean((np.asarray(y, np.float64) - (h @ p["W2"].T + p["b2"])) ** 2))


# -- fresh processes --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _byte_compiled() -> None:
    """Compile eqx_ffn's and the benchmarks' modules to bytecode once, as `pip install` does for
    every package it installs (scikit-learn's, JAX's): a child then loads them as any installed
    package is loaded, also where `PYTHONDONTWRITEBYTECODE` keeps Python from caching them."""
    for folder in ("eqx_ffn", "benchmarks"):
        compileall.compile_dir(ROOT / folder, quiet=1)


def start_python(args: list[str], timeout: float = 600) -> Callable[[], tuple[float, Any]]:
    """Start a fresh `python ARGS` process from the repository root; the returned `wait()` gives
    its wall seconds and the last JSON line it printed (`{}` if none). The child imports the same
    eqx_ffn as this process (`PYTHONPATH` starts with the repository root; its modules compiled
    to bytecode, `_byte_compiled`) and uses no persistent compilation cache unless its arguments
    name one (`EQX_FFN_CACHE_DIR` removed)."""
    _byte_compiled()
    env = dict(os.environ)
    env.pop("EQX_FFN_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def wait() -> tuple[float, Any]:
        out, err = proc.communicate(timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            last = " | ".join(err.strip().splitlines()[-3:])
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {last}")
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        return wall, (json.loads(lines[-1]) if lines else {})

    return wait


def python_process(args: list[str]) -> tuple[float, Any]:
    """`start_python(args)()`: one fresh process, waited for."""
    return start_python(args)()


def median_runs(runs: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Median over processes of the wall time and of every number the worker reported; the
    fastest process too (`process_min_s`), and the worker's last text fields."""
    out: dict[str, Any] = {
        "process_s": statistics.median(w for w, _ in runs),
        "process_min_s": min(w for w, _ in runs),
        "runs": len(runs),
    }
    for key in runs[0][1]:
        values = [r[key] for _, r in runs if isinstance(r.get(key), (int, float))]
        if values and not isinstance(values[0], bool):
            out[key] = statistics.median(values)
        elif isinstance(runs[-1][1].get(key), str):
            out[key] = runs[-1][1][key]
    out["process_times_s"] = [w for w, _ in runs]
    return out


# -- the machine -------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    """An installed distribution's version, without importing it (torch takes seconds)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def environment() -> dict[str, Any]:
    """The device JAX picked, the host, and the versions of everything benchmarked."""
    devices = jax.devices()
    dev = devices[0]
    return {
        "platform": dev.platform,
        "device_kind": getattr(dev, "device_kind", "unknown"),
        "devices": [str(d) for d in devices],
        "device_count": len(devices),
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_count": cpu_count(),
        "os": platform.platform(),
        "versions": {
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "equinox": _version("equinox"),
            "optax": _version("optax"),
            "numpy": np.__version__,
            "sklearn": _version("scikit-learn"),
            "torch": _version("torch"),
            "flax": _version("flax"),
            "eqx_ffn": _version("eqx-ffn"),
        },
    }


def optional(module: str) -> Any | None:
    """Import an optional peer library, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(module)
    except Exception:
        return None
