"""Shared pieces: timing, the lecture's data, the machine and versions, small number helpers."""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

# -- settings per mode -------------------------------------------------------------------------


class Mode:
    """Repeats and sizes for `--quick` (under a minute on 2 CPU cores) or the full run."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.name = "quick" if quick else "full"
        self.repeats = 3 if quick else 7  # timed repeats of a cheap measurement (median taken)
        self.slow_repeats = 1 if quick else 3  # ... of an expensive one (Python loops, processes)
        self.min_time = 0.2 if quick else 0.5  # cheap measurements repeat until this many seconds


# -- timing ------------------------------------------------------------------------------------


def block(tree: Any) -> Any:
    """Wait for every JAX array in `tree` (and a CUDA torch tensor's stream, if any)."""
    return jax.block_until_ready(tree)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """`(seconds, result)` of one call; JAX results are waited for."""
    t0 = time.perf_counter()
    out = fn()
    block(out)
    return time.perf_counter() - t0, out


def median_time(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, min_time: float = 0.0
) -> dict[str, Any]:
    """Median of at least `repeats` timed calls (more, up to 200, until `min_time` seconds).

    `warmup` untimed calls first. Returns `{"median": s, "min": s, "times": [...], "result":
    last result}`.
    """
    out = None
    for _ in range(warmup):
        out = fn()
        block(out)
    times: list[float] = []
    while len(times) < max(1, repeats) or (sum(times) < min_time and len(times) < 200):
        t, out = timed(fn)
        times.append(t)
    return {
        "median": statistics.median(times),
        "min": min(times),
        "times": times,
        "result": out,
    }


def compile_count() -> int | None:
    """Training programs eqx_ffn compiled so far (`eqx_ffn.training._engine.compile_count`), if exposed."""
    engine = optional("eqx_ffn.training._engine")
    value = getattr(engine, "compile_count", None)
    return value if isinstance(value, int) else None


class XlaCompiles:
    """Counts every XLA compile of this process (training programs, initialisers, eager ops), from
    JAX's monitoring events: `snapshot()` now, `since(snapshot)` the count and seconds after it.

    `fit`'s own counter (`compile_count`) sees only training programs; this one also sees what a
    user waits for besides them (the initial-state program, `predict`, eager operations).
    """

    EVENT = "/jax/core/compile/backend_compile_duration"
    _count = 0
    _seconds = 0.0
    _registered: bool | None = None

    @classmethod
    def _listen(cls, event: str, duration: float, **_: Any) -> None:
        if event == cls.EVENT:
            cls._count += 1
            cls._seconds += duration

    @classmethod
    def available(cls) -> bool:
        if cls._registered is None:
            register = getattr(
                getattr(jax, "monitoring", None), "register_event_duration_secs_listener", None
            )
            cls._registered = register is not None
            if register is not None:
                register(cls._listen)
        return bool(cls._registered)

    @classmethod
    def snapshot(cls) -> tuple[int, float] | None:
        return (cls._count, cls._seconds) if cls.available() else None

    @classmethod
    def since(cls, snap: tuple[int, float] | None) -> tuple[int | None, float | None]:
        if snap is None:
            return None, None
        return cls._count - snap[0], cls._seconds - snap[1]


def paired(
    fa: Callable[[], Any], fb: Callable[[], Any], pairs: int, min_time: float = 0.0
) -> dict[str, Any]:
    """Time `fa` and `fb` alternately (A B A B ...), after one warm-up call of each.

    The same rule as the lecture case's checks: `min_ratio` (the ratio of the minimums: noise
    only ever adds time) is the figure a target is judged on; `ratio` is the median of the
    per-pair ratios; `a_s`, `b_s` the medians, `a_min_s`, `b_min_s` the minimums.
    """
    block(fa())
    block(fb())
    ta: list[float] = []
    tb: list[float] = []
    while len(ta) < max(1, pairs) or (sum(ta) + sum(tb) < min_time and len(ta) < 200):
        ta.append(timed(fa)[0])
        tb.append(timed(fb)[0])
    return {
        "min_ratio": min(ta) / min(tb),
        "ratio": float(np.median([a / b for a, b in zip(ta, tb, strict=True)])),
        "a_s": statistics.median(ta),
        "b_s": statistics.median(tb),
        "a_min_s": min(ta),
        "b_min_s": min(tb),
        "pairs": len(ta),
    }


def check(
    name: str,
    value: float | None,
    target: str,
    passed: bool | None,
    issue: int,
    how: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One target's verdict, as the CLI prints it (`passed=None`: not judged, e.g. a CPU smoke
    run of an accelerator target; `how` says why)."""
    return {
        "name": name,
        "value": value,
        "target": target,
        "pass": passed,
        "issue": issue,
        "how": how,
        **extra,
    }


def delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def first_reach(loss: Any, threshold: float) -> int | None:
    """Index of the first loss `<= threshold` (= steps done to get there), else None."""
    loss = np.asarray(loss, dtype=float).ravel()
    hits = np.flatnonzero(loss <= threshold)
    return int(hits[0]) if hits.size else None


def time_to(loss: Any, run_time: float, threshold: float) -> float | None:
    """Run time to reach `threshold`: `run_time * first index / steps`, None if never reached."""
    loss = np.asarray(loss, dtype=float).ravel()
    i = first_reach(loss, threshold)
    if i is None or loss.size == 0:
        return None
    return run_time * i / loss.size


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not np.isfinite(a) or not np.isfinite(b):
        return None
    return float(a) / float(b)


# -- the lecture's data (REFERENCE.md section 1) -----------------------------------------------


def _own_lecture_data() -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    k_in, k_w1, k_b1, k_w2, k_b2 = jr.split(jr.key(42), 5)
    x = -1 + 2 * jr.uniform(k_in, (200, 1))
    y = 2 * jnp.sin(3 * x) - 3 * jnp.cos(7 * x)
    params = {
        "W1": jr.normal(k_w1, (16, 1)),
        "b1": jr.normal(k_b1, (16,)),
        "W2": jr.normal(k_w2, (1, 16)),
        "b2": jr.normal(k_b2, (1,)),
    }
    return x, y, params


def lecture_data() -> tuple[jax.Array, jax.Array, dict[str, jax.Array], str]:
    """`(x (200, 1), y (200, 1), params dict, source)`: the lecture's 1-D problem and init.

    Uses `eqx_ffn.io._datasets.sine_1d` / `lecture_params` when that module exists and agrees with
    REFERENCE.md; else a local copy of the recipe. `source` says which.
    """
    x, y, params = _own_lecture_data()
    try:
        ds = importlib.import_module("eqx_ffn.io._datasets")
        dx, dy = ds.sine_1d()  # a Dataset unpacks like (x, y)
        dp = ds.lecture_params()
        same = np.allclose(dx, x) and np.allclose(dy, y)
        same = same and all(np.allclose(dp[k], params[k]) for k in params)
        if same:
            return (
                jnp.asarray(dx),
                jnp.asarray(dy),
                {k: jnp.asarray(dp[k]) for k in params},
                ("eqx_ffn.io._datasets"),
            )
        source = "benchmarks (eqx_ffn.io._datasets disagreed with REFERENCE.md)"
    except Exception:  # the module is optional: another engineer adds it
        source = "benchmarks"
    return x, y, params, source


def mse_of(params: dict[str, Any], x: Any, y: Any) -> float:
    """The lecture's full-batch MSE of a parameter dict, in float64 NumPy."""
    x = np.asarray(x, np.float64)
    h = np.tanh(x @ np.asarray(params["W1"], np.float64).T + np.asarray(params["b1"], np.float64))
    pred = h @ np.asarray(params["W2"], np.float64).T + np.asarray(params["b2"], np.float64)
    return float(np.mean((np.asarray(y, np.float64) - pred) ** 2))


# -- fresh processes --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def python_process(args: list[str], timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one fresh `python ARGS` process run from the repository root, and the
    last JSON line it printed (`{}` if none). The child imports the same eqx_ffn as this process
    (`PYTHONPATH` starts with the repository root) and uses no persistent compilation cache
    unless its arguments name one (`EQX_FFN_CACHE_DIR` removed)."""
    env = dict(os.environ)
    env.pop("EQX_FFN_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return wall, (json.loads(lines[-1]) if lines else {})


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


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sysid_version() -> str | None:
    """jax-sysid's version without importing it (importing is harmless, its fit is not)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jax-sysid")
    except PackageNotFoundError:
        return None


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
            "sklearn": _version("sklearn"),
            "torch": _version("torch"),
            "flax": _version("flax"),
            "jax_sysid": _sysid_version(),
            "eqx_ffn": _version("eqx_ffn"),
        },
    }


def optional(module: str) -> Any | None:
    """Import an optional peer library, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(module)
    except Exception:
        return None


def torch_device(torch: Any) -> Any:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
