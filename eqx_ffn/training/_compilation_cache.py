"""Turning on JAX's persistent compilation cache, so a second process skips compiling.

JAX runs the compiled programs it finds in that folder without any check of where they came
from, so the folder must be private to the user: whoever can write to it chooses the programs
this process runs. `enable_compilation_cache` therefore uses only a folder owned by the current
user that no one else may write to.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import jax

from .._validation import ArgumentTypeError

__all__ = ["CompilationCacheWarning", "default_cache_dir", "enable_compilation_cache"]


class CompilationCacheWarning(UserWarning):
    """The default compilation-cache folder is not safe to use (or cannot be made), so this
    process runs without the persistent cache; the message names the folder and the fix."""


def default_cache_dir() -> Path:
    """`$EQX_FFN_CACHE_DIR`, else `$XDG_CACHE_HOME/eqx_ffn/jax`, else `~/.cache/eqx_ffn/jax`."""
    env = os.environ.get("EQX_FFN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "eqx_ffn" / "jax"


def _current_uid() -> int | None:
    """The effective user id, or `None` where the platform has none (Windows)."""
    geteuid = getattr(os, "geteuid", None)
    return None if geteuid is None else geteuid()


def _make_folder(folder: Path) -> tuple[bool, str | None]:
    """Create `folder` (mode 0700) if it does not exist: `(created, problem)`."""
    try:
        folder.mkdir(mode=0o700)
        return True, None
    except FileExistsError:
        return False, None
    except FileNotFoundError:  # a parent is missing: create the parents, then the folder
        pass
    except NotADirectoryError:
        return False, "cannot be created: part of its path is a file, not a folder"
    except OSError as e:
        return False, f"cannot be created ({e.strerror or e})"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except FileExistsError:
        if not folder.parent.is_dir():
            return False, "cannot be created: part of its path is a file, not a folder"
        return False, None  # made by someone else in between: checked below like any other
    except NotADirectoryError:
        return False, "cannot be created: part of its path is a file, not a folder"
    except OSError as e:
        return False, f"cannot be created ({e.strerror or e})"
    return True, None


def _private_folder_problem(folder: Path) -> str | None:
    """Create `folder` (mode 0700) if needed; say why it must not hold a cache, or `None`.

    Only a folder created here is tightened (to 0700, whatever the umask); a folder that already
    exists is used only if it belongs to the current user and no one else may read or write it.
    """
    created, problem = _make_folder(folder)
    if problem is not None:
        return problem
    try:
        info = folder.stat()  # follows a symbolic link: the folder the cache would really use
    except OSError as e:  # pragma: no cover - removed between mkdir and stat
        return f"cannot be inspected ({e.strerror or e})"
    if not stat.S_ISDIR(info.st_mode):
        return "exists and is not a folder"
    uid = _current_uid()
    if uid is None:  # pragma: no cover - no POSIX owners and modes to check on this platform
        return None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != uid:
        return (
            f"belongs to user id {info.st_uid}, not to you (user id {uid}): its owner could put "
            "programs in it that JAX would run in this process"
        )
    if mode & 0o022:
        return (
            f"is writable by other users (mode {mode:04o}): anyone who can write to it could "
            f"put programs in it that JAX would run in this process. If only you could have "
            f"written to it, make it private with `chmod 700 {folder}`; else remove it"
        )
    if mode & 0o077 and created:
        try:
            os.chmod(folder, mode & 0o700)
        except OSError as e:  # pragma: no cover - our own folder; only an odd filesystem refuses
            return f"is readable by other users (mode {mode:04o}) and cannot be made private ({e})"
    elif mode & 0o077:
        return (
            f"is readable by other users (mode {mode:04o}); a cache folder must be private to "
            f"you. Make it private with `chmod 700 {folder}`, or pass another folder"
        )
    return None


def _check_path(path: object) -> Path:
    """`path` (a str or `os.PathLike`, not empty) as an absolute path, resolved once against
    the current folder: a later `os.chdir` does not move the cache."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise ArgumentTypeError(
            "enable_compilation_cache: path must be a folder path (a str or os.PathLike) or "
            f"None; got {path!r} ({type(path).__name__})."
        )
    if not path.strip():
        raise ValueError(
            f"enable_compilation_cache: path={path!r} is empty; pass a folder that only you can "
            "write to, or path=None for the default. (An empty path would make the current "
            "folder the cache.)"
        )
    if "\0" in path:
        raise ValueError(
            f"enable_compilation_cache: path={path!r} holds a NUL character; pass a folder path."
        )
    return Path(os.path.abspath(Path(path).expanduser()))


def _configure_jax(folder: Path) -> None:
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:  # newer JAX: also cache the XLA autotuning results and kernels
        jax.config.update("jax_persistent_cache_enable_xla_caches", "all")
    except (AttributeError, ValueError, KeyError):  # pragma: no cover - older JAX
        pass


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process, and return its folder.

    Compiling is the largest cost of a small fit (far more than running its steps; figures in
    benchmarks/BENCHMARKS.md). With the cache on, the compiled programs are written to disk and a
    later process with the same program and JAX version loads them instead of compiling. Every
    program is cached, however fast it compiled.

    **The folder must be private to you.** JAX runs the programs it finds there without checking
    where they came from: whoever can replace a cache file chooses what this process computes.
    Never point the cache at a shared folder (a group project folder, `/tmp`, a network share
    others write to). A folder created here gets mode 0700; an existing one is used only if it
    belongs to the current user and no one else may read or write it (it is never changed: for
    one that is too open, the error says `chmod 700 <folder>`). On Windows, which has no such
    owners and modes, these checks are skipped.

    This sets JAX's global options `jax_compilation_cache_dir`,
    `jax_persistent_cache_min_compile_time_secs` (0) and
    `jax_persistent_cache_min_entry_size_bytes` (0); call it once at start-up, before fitting.
    The `eqx-ffn` command calls it unless given `--no-cache`.

    **Arguments:**

    - `path`: the cache folder (a str or `os.PathLike`, not empty; `~` is expanded). A relative
      path is resolved once, against the current folder at this call: a later `os.chdir` does
      not move the cache. Default `None`: `default_cache_dir()` (`$EQX_FFN_CACHE_DIR`, else
      `$XDG_CACHE_HOME/eqx_ffn/jax`, else `~/.cache/eqx_ffn/jax`).

    **Returns:** the folder in use, as an absolute path, or `None` when the default folder could
    not be used (the process then runs without the cache, which is only slower).

    **Raises:** `TypeError` (also a `ValueError`) for a `path` that is not a path, `ValueError`
    for an empty one; `ValueError`, naming the folder and the fix, when a `path` you passed
    cannot be created, is not a folder, belongs to another user or is readable or writable by
    others. For the default folder the same problems give a `CompilationCacheWarning` instead,
    and `None`.

    ```python
    import eqx_ffn
    eqx_ffn.enable_compilation_cache()   # once, at start-up
    ```
    """
    explicit = path is not None
    folder = _check_path(path if explicit else default_cache_dir())
    problem = _private_folder_problem(folder)
    if problem is not None:
        if explicit:
            raise ValueError(
                f"enable_compilation_cache: the cache folder path={str(folder)!r} {problem}. "
                "Pass a folder that only you can write to (it is created with mode 0700), "
                "or path=None for the default."
            )
        warnings.warn(
            f"eqx_ffn: not using the compilation cache folder {folder}: it {problem}. Running "
            "without the persistent cache (every process compiles again). Set "
            "EQX_FFN_CACHE_DIR to a folder that only you can write to.",
            CompilationCacheWarning,
            stacklevel=2,
        )
        return None
    _configure_jax(folder)
    return folder
