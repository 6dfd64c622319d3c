"""The lifecycle lock: one writer at a time per data dir.

An advisory exclusive ``flock`` on ``<data_dir>.lock``, a sibling of the data
dir so that removing the data dir never removes a held lock. The lock is not
re-entrant: functions that call each other pass the held lock down.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from synthorg_tasks.errors import ConfigError, LockTimeout
from synthorg_tasks.state.paths import make_parent_dirs

__all__ = ["LifecycleLock", "lock_path"]

_logger = logging.getLogger("synthorg.state")

POLL_INTERVAL_SECONDS = 0.2


def lock_path(data_dir: Path) -> Path:
    """Return the lock file of ``data_dir``."""
    return data_dir.with_name(data_dir.name + ".lock")


class LifecycleLock:
    """Exclusive lock on a data dir, polled every 200 ms up to ``timeout`` seconds."""

    def __init__(self, data_dir: Path, timeout: float = 5.0) -> None:
        self.data_dir = data_dir
        self.path = lock_path(data_dir)
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockTimeout` after ``timeout`` seconds."""
        if self._fd is not None:
            raise RuntimeError("the lifecycle lock is not re-entrant")
        try:
            make_parent_dirs(self.path)
            fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot open the lock file {self.path}: {exc.strerror}"
            ) from exc
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        "a lifecycle operation (init, start, stop, update or a config "
                        f"write) is already running for {self.data_dir}",
                        hints=["wait for it to finish, then retry"],
                    ) from None
                time.sleep(POLL_INTERVAL_SECONDS)
            except BaseException:
                os.close(fd)
                raise
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)
        self._fd = fd
        _logger.debug("lifecycle lock taken: %s", self.path)

    def release(self) -> None:
        """Release the lock; calling it again is harmless."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        _logger.debug("lifecycle lock released: %s", self.path)

    def __enter__(self) -> LifecycleLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
