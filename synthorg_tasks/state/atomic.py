"""Atomic replacement of the files that hold state or secrets.

A write never exposes a half-written file and never leaves a readable
temporary copy of a secret: the temporary file is created 0600 with
``O_EXCL|O_NOFOLLOW`` next to its target, filled, fsynced, given its final
mode and renamed over the target. Any failure before the rename removes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path

from synthorg_tasks.errors import ConfigError

__all__ = ["STALE_TEMP_AGE_SECONDS", "atomic_write", "stale_temp_files", "temp_prefix"]

_logger = logging.getLogger("synthorg.state")

STALE_TEMP_AGE_SECONDS = 3600


def temp_prefix(name: str) -> str:
    """Return the prefix of temporary siblings of ``name``."""
    return f".{name}.tmp-"


def stale_temp_files(
    directory: Path, name: str, *, now: float | None = None
) -> list[Path]:
    """List temporary siblings of ``name`` older than one hour (left by killed runs)."""
    cutoff = (time.time() if now is None else now) - STALE_TEMP_AGE_SECONDS
    prefix = temp_prefix(name)
    found: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            # Only files this module could have left are swept, never folders.
            if entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                found.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return found


def _sweep_stale(directory: Path, name: str) -> None:
    for path in stale_temp_files(directory, name):
        try:
            path.unlink()
            _logger.debug("removed stale temporary file %s", path)
        except OSError as exc:
            _logger.debug("could not remove stale temporary file %s: %s", path, exc)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        _logger.debug("could not open %s to fsync it: %s", directory, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        _logger.debug("fsync of directory %s failed: %s", directory, exc)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``target`` with ``data`` so that readers see the old or the new bytes.

    ``target`` must be a plain file name inside an existing absolute directory.
    A symlink at ``target`` is rejected. Raises :class:`ConfigError` on I/O
    failure; the old file is then unchanged and no temporary file remains.
    """
    if not target.is_absolute():
        raise ValueError(f"atomic_write needs an absolute path, got {target}")
    directory, name = target.parent, target.name
    if target.is_symlink():
        raise ConfigError(
            f"{target} is a symbolic link; refusing to write through it",
            hints=["replace the link with a regular file or remove it"],
        )
    _sweep_stale(directory, name)
    temp = directory / f"{temp_prefix(name)}{os.getpid()}-{secrets.token_hex(8)}"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot create a temporary file in {directory}: {exc.strerror}"
        ) from exc
    try:
        try:
            # The umask may have removed bits from 0600; set them explicitly.
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    _fsync_directory(directory)
