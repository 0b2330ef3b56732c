"""The compilation cache's folder (eqx_ffn/training/_compilation_cache.py): only a private
folder is used; a relative path is resolved once; bad paths are refused with a message naming
`path`. JAX's configuration is never changed here (`_configure_jax` is replaced)."""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from eqx_ffn.training import _compilation_cache as cc

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX files, modes and owners")


# -- the compilation cache folder --------------------------------------------------------------


@pytest.fixture
def no_jax_config(monkeypatch):
    """Record the folder `enable_compilation_cache` would hand to JAX, without changing JAX."""
    used = []
    monkeypatch.setattr(cc, "_configure_jax", used.append)
    return used


def test_cache_path_under_a_file(tmp_path, no_jax_config):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        ValueError,
        match=r"the cache folder path='.*file/cache' cannot be created: part of its path is a "
        r"file, not a folder. Pass a folder that only you can write to",
    ):
        cc.enable_compilation_cache(tmp_path / "file" / "cache")
    with pytest.raises(ValueError, match=r"path='.*file' exists and is not a folder"):
        cc.enable_compilation_cache(tmp_path / "file")
    assert no_jax_config == []


@posix_only
def test_cache_folder_writable_by_others(tmp_path, no_jax_config):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(
        ValueError,
        match=r"is writable by other users \(mode 0777\): anyone who can write to it could put "
        r"programs in it that JAX would run in this process. .*chmod 700",
    ):
        cc.enable_compilation_cache(shared)
    shared.chmod(0o770)
    with pytest.raises(ValueError, match=r"writable by other users \(mode 0770\)"):
        cc.enable_compilation_cache(shared)
    assert no_jax_config == []
    assert stat.S_IMODE(shared.stat().st_mode) == 0o770  # refused, not silently changed


@posix_only
def test_cache_folder_of_another_user(tmp_path, monkeypatch, no_jax_config):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(cc, "_current_uid", lambda: os.geteuid() + 1)
    with pytest.raises(ValueError, match=r"belongs to user id \d+, not to you \(user id \d+\)"):
        cc.enable_compilation_cache(folder)
    assert no_jax_config == []


@posix_only
def test_default_cache_folder_problems_warn_and_run_without_cache(tmp_path, monkeypatch):
    used = []
    monkeypatch.setattr(cc, "_configure_jax", used.append)
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EQX_FFN_CACHE_DIR", str(tmp_path / "file" / "jax"))
    with pytest.warns(cc.CompilationCacheWarning, match="not using the compilation cache folder"):
        assert cc.enable_compilation_cache() is None
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("EQX_FFN_CACHE_DIR", str(shared))
    with pytest.warns(cc.CompilationCacheWarning, match=r"writable by other users .*EQX_FFN_CACHE"):
        assert cc.enable_compilation_cache() is None
    assert used == []


@posix_only
def test_cache_folder_is_created_private(tmp_path, monkeypatch, no_jax_config):
    monkeypatch.setenv("EQX_FFN_CACHE_DIR", str(tmp_path / "a" / "jax"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = cc.enable_compilation_cache()
    assert folder == tmp_path / "a" / "jax" and no_jax_config == [folder]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # A folder of yours that only you may use is used as it is.
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert cc.enable_compilation_cache(mine) == mine
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


@posix_only
def test_existing_folder_readable_by_others_is_refused_not_changed(tmp_path, no_jax_config):
    # Only a folder enable_compilation_cache created is tightened; an existing one that others may
    # read (an earlier version's cache, or a folder the user keeps open on purpose) is refused
    # with the command that makes it private.
    old = tmp_path / "old"
    old.mkdir()
    old.chmod(0o755)
    with pytest.raises(
        ValueError,
        match=r"path='.*old' is readable by other users \(mode 0755\).*`chmod 700 .*old`",
    ):
        cc.enable_compilation_cache(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o755
    assert no_jax_config == []


@posix_only
def test_a_created_folder_is_private_whatever_the_umask(tmp_path, no_jax_config):
    previous = os.umask(0)
    try:
        folder = cc.enable_compilation_cache(tmp_path / "new" / "cache")
    finally:
        os.umask(previous)
    assert folder == tmp_path / "new" / "cache"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@posix_only
def test_relative_path_is_resolved_once(tmp_path, monkeypatch, no_jax_config):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir(mode=0o755)
    monkeypatch.chdir(tmp_path / "a")
    folder = cc.enable_compilation_cache("relcache")
    assert folder == tmp_path / "a" / "relcache" and folder.is_absolute()
    assert no_jax_config == [folder]  # JAX is given the absolute folder, not "relcache"
    os.chdir(tmp_path / "b")
    assert not (tmp_path / "b" / "relcache").exists()
    assert str(no_jax_config[0]) == str(tmp_path / "a" / "relcache")


def test_empty_path_is_refused(tmp_path, monkeypatch, no_jax_config):
    monkeypatch.chdir(tmp_path)
    mode = stat.S_IMODE(tmp_path.stat().st_mode)
    for empty in ("", "   "):
        with pytest.raises(ValueError, match=r"enable_compilation_cache: path=.* is empty"):
            cc.enable_compilation_cache(empty)  # type: ignore[arg-type]
    assert stat.S_IMODE(tmp_path.stat().st_mode) == mode  # the current folder left as it was
    assert no_jax_config == []


@pytest.mark.parametrize("bad", [123, 1.5, b"cache", ["cache"], True])
def test_a_path_that_is_not_a_path_is_refused(bad, no_jax_config):
    with pytest.raises(TypeError, match=r"enable_compilation_cache: path must be a folder path"):
        cc.enable_compilation_cache(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"path must be a folder path .* got "):
        cc.enable_compilation_cache(bad)  # type: ignore[arg-type]
    assert no_jax_config == []


def test_a_path_with_a_nul_character_is_refused(no_jax_config):
    with pytest.raises(ValueError, match=r"path='a\\x00b' holds a NUL character"):
        cc.enable_compilation_cache("a\x00b")
    assert no_jax_config == []
