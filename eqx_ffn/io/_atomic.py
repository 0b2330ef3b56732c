"""Writing a file atomically: a temporary file in the same folder, flushed, synced and renamed
over the target, so that a reader sees the old file or the new one, never a part.

A save that is killed leaves its temporary file behind; the next save of the same target removes
it once it is stale (its process is gone, or it is untouched for 15 minutes).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO

from .._validation import check_path

_STALE_AFTER_S = 15 * 60  # a temporary file untouched this long belongs to a dead save

_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_stem(target: Path) -> str:
    """The start of the temporary files' names for `target` (short enough for any filesystem)."""
    name = target.name
    if len(name) > 180:
        name = name[:100] + "~" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16]
    return f".{name}."


def _temp_path(target: Path) -> Path:
    # .<name>.<host>-<pid>-<random>.tmp: the host and process id tell a later save whether the
    # writer is still alive.
    token = secrets.token_hex(6)
    return target.with_name(f"{_temp_stem(target)}{_HOST}-{os.getpid()}-{token}.tmp")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # pragma: no cover - no harmless liveness probe elsewhere
        return True
    if pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove temporary files of `target` that a killed save left behind; return them.

    Only regular files named as `_temp_path` names them for this very target (or as earlier
    versions did: `.<name>.<12 hex digits>.tmp`) are candidates, and only stale ones: written on
    this host by a process that no longer exists, or not modified for `_STALE_AFTER_S` seconds.
    """
    pattern = re.compile(
        re.escape(_temp_stem(target)) + r"(?:([0-9a-f]{8})-([0-9]{1,10})-)?[0-9a-f]{12}\.tmp"
    )
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        host, pid = match.groups()
        dead = host == _HOST and pid is not None and not _pid_alive(int(pid))
        if dead or now - info.st_mtime > _STALE_AFTER_S:
            try:
                os.unlink(entry.path)
            except OSError:  # removed by a concurrent save, or not ours to remove
                continue
            removed.append(Path(entry.path))
    return removed


def _write_bytes(f: BinaryIO, data: bytes) -> None:
    """Write `data` to the open file `f` and make it durable (flush, fsync)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


# errno -> why there is no room for the file, and what to do
_NO_ROOM = {
    errno.ENOSPC: (
        "the disk (file system) it is on is full",
        "Free some space there, or save to another disk",
    ),
    errno.EDQUOT: (
        "your disk quota there is used up",
        "Remove some of your files there, or save to another disk",
    ),
    errno.EFBIG: (
        "the file would be larger than the file system or the process's file-size limit "
        "(`ulimit -f`) allows",
        "Save to a file system that takes larger files (not FAT32, 4 GiB at most), or raise "
        "the limit",
    ),
}


def _no_room(path: Path, error: OSError, n_bytes: int) -> OSError:
    """An `OSError` (same errno) naming the file, the reason and the fix for a full disk, an
    exhausted quota or a file-size limit."""
    code = error.errno if error.errno is not None else errno.ENOSPC
    why, fix = _NO_ROOM[code]
    before = "the file already there is unchanged" if path.exists() else "no file was created"
    # OSError(errno, text): str() is "[Errno N] text", and `errno` stays for callers to test.
    return OSError(
        code,
        f"Cannot write {path} ({n_bytes:,} bytes): {why} ({error.strerror}). Nothing was "
        f"written: {before}. {fix}.",
    )


def _target(path: Any, argument: str = "path", example: str = "model.eqx") -> Path:
    """`path` as the `Path` of a file to write: a str or `os.PathLike`, not empty, not a folder,
    no file where its folders should be. Raises an error naming it and the fix otherwise."""
    target = check_path(path, argument, empty_hint=f"pass a file path such as {example!r}")
    if target.is_dir():
        raise IsADirectoryError(
            errno.EISDIR,
            f"Cannot write {target}: it is a folder; pass a file path such as {target / example}",
        )
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, f"Cannot write {target}: {folder} is a file, not a folder"
                )
            break
    return target


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: the old file or the new one, never a part of it.

    **Raises:** `OSError` as the file system gives it; for a full disk, an exhausted quota or a
    file too large (errno `ENOSPC`, `EDQUOT`, `EFBIG`), one that names the file and the fix.
    """
    path = _target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = _temp_path(path)
    try:
        # os.open with mode 0o666 so that the final file gets the usual umask-derived mode.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            raise _no_room(path, e, len(data)) from None
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)
