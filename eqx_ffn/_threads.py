"""The process's threads for host-side data work (CSV parts, block copies and checks): NumPy's
and pandas' C loops release the GIL, so one thread per core runs them in parallel. No JAX here:
reading a table must not load it."""

from __future__ import annotations

import concurrent.futures
import os
import threading

MAX_THREADS = 8

_POOL: list[concurrent.futures.ThreadPoolExecutor] = []
_LOCK = threading.Lock()


def cores() -> int:
    """The cores this process may run on (at most `MAX_THREADS`)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(n or 1, MAX_THREADS)


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """One thread pool for the process, a thread per core (made on first use). Its tasks must
    not wait on other tasks of the pool."""
    with _LOCK:
        if not _POOL:
            threads = concurrent.futures.ThreadPoolExecutor(cores(), thread_name_prefix="eqx_ffn")
            _POOL.append(threads)
        return _POOL[0]
