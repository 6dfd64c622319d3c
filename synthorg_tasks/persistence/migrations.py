"""Apply and list yoyo migrations for a :class:`PersistenceConfig`.

A migration source is a directory or ``package:<pkg>:<dir>``. A migration's id
is its file stem, so renaming an applied migration creates a new one. This
module is the one adapter for yoyo's exceptions; driver errors go through
:mod:`synthorg_tasks.persistence.driver_errors`.

yoyo prints the result table of every SELECT inside a migration to stdout.
Everything here runs with stdout redirected to the ``synthorg.persistence``
logger at DEBUG, so ``--json`` output stays one document.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import io
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from synthorg_tasks.errors import (
    MigrationError,
    MigrationLockTimeout,
    PersistenceConfigError,
    UsageError,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.persistence.driver_errors import (
    mask_secrets,
    translate_connect_error,
    translate_driver_error,
)

if TYPE_CHECKING:
    from synthorg_tasks.persistence.wiring import PersistenceConfig

__all__ = [
    "BREAK_LOCK_HINT",
    "MigrationStatusRow",
    "apply_migrations",
    "migration_status",
    "pending_migrations",
    "validate_source",
]

BREAK_LOCK_HINT = "if no migration is running, clear it with yoyo break-lock"

_logger = get_logger("persistence")
_PACKAGE_SOURCE = re.compile(r"^package:([^\s/:]+):(.*)$")


class MigrationStatusRow(NamedTuple):
    """One migration: its id, whether it is applied, and when (UTC)."""

    id: str
    applied: bool
    applied_at: datetime | None


class _LoggingStream(io.TextIOBase):
    """A text stream that sends each complete line to the logger at DEBUG."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._pending = ""
        self._secrets = secrets

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        if line.strip():
            _logger.debug("migration output: %s", mask_secrets(line, self._secrets))


def validate_source(source: str) -> str:
    """Check that ``source`` names a readable folder; return it in yoyo's form.

    yoyo skips a missing package or folder silently, which would report
    "nothing to apply" for a typo, so both forms are checked here first.
    """
    match = _PACKAGE_SOURCE.match(source)
    if match is not None:
        package, folder = match.groups()
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise UsageError(
                f"migration source {source}: the package {package} is not importable"
            )
        if not resources.files(package).joinpath(folder).is_dir():
            raise UsageError(
                f"migration source {source}: the package {package} has no "
                f"folder {folder}"
            )
        return source
    path = Path(source)
    if not path.is_dir():
        raise UsageError(
            f"migration source {source} is not a directory; pass a folder of "
            "migrations or package:<pkg>:<dir>"
        )
    # yoyo expands a folder source as a glob pattern.
    return glob.escape(str(path))


def _secrets_of(config: PersistenceConfig) -> tuple[str, ...]:
    if config.dsn is None or config.dsn.password is None:
        return ()
    return (config.dsn.password, config.yoyo_uri())


def _driver_error_types(config: PersistenceConfig) -> tuple[type[BaseException], ...]:
    import sqlite3

    if config.backend == "postgres":
        import psycopg

        return (sqlite3.Error, psycopg.Error)
    return (sqlite3.Error,)


@contextlib.contextmanager
def _stdout_to_log(config: PersistenceConfig) -> Iterator[None]:
    stream = _LoggingStream(_secrets_of(config))
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def _register_sqlite_datetime_adapter() -> None:
    """Store datetimes as ISO 8601 text, as sqlite3's deprecated default did.

    yoyo writes ``datetime`` values to its bookkeeping tables; Python 3.12
    deprecates sqlite3's built-in adapter for them, so an explicit one that
    writes the same text is registered instead.
    """
    import datetime
    import sqlite3

    sqlite3.register_adapter(datetime.datetime, lambda value: value.isoformat(" "))
    sqlite3.register_adapter(datetime.date, lambda value: value.isoformat())


@contextlib.contextmanager
def _open_backend(config: PersistenceConfig) -> Iterator[Any]:
    """Connect with yoyo, which also creates its bookkeeping tables."""
    import yoyo
    from yoyo.connections import BadConnectionURI

    if config.backend == "sqlite":
        _register_sqlite_datetime_adapter()

    target = config.safe_repr()
    try:
        backend = yoyo.get_backend(config.yoyo_uri())
    except BadConnectionURI as exc:
        raise PersistenceConfigError(
            f"yoyo rejected the database URI for {target}"
        ) from exc
    except _driver_error_types(config) as exc:
        if config.backend == "postgres":
            raise translate_connect_error(exc, target, _secrets_of(config)) from exc
        raise translate_driver_error(
            exc, "opening the database", target, _secrets_of(config)
        ) from exc
    try:
        yield backend
    finally:
        with contextlib.suppress(Exception):
            backend.connection.close()


def _read_migrations(source: str) -> Any:
    import yoyo
    from yoyo.exceptions import BadMigration, MigrationConflict

    try:
        return yoyo.read_migrations(validate_source(source))
    except (BadMigration, MigrationConflict) as exc:
        raise MigrationError(f"migration source {source} is invalid: {exc}") from exc
    except OSError as exc:
        raise MigrationError(
            f"migration source {source} cannot be read: {exc.strerror}"
        ) from exc


def _lock_holder(backend: Any) -> int | None:
    try:
        # The table name is yoyo's own quoted identifier, not user input.
        query = f"SELECT pid FROM {backend.lock_table_quoted}"  # noqa: S608
        row = backend.execute(query).fetchone()
    except Exception:  # the lock row is a best-effort detail of the message
        return None
    return int(row[0]) if row else None


def _check_lock_timeout(lock_timeout: float) -> None:
    # yoyo treats a zero timeout as "wait forever".
    if not lock_timeout > 0:
        raise UsageError(
            f"lock timeout {lock_timeout} is invalid (it must be greater than 0s)"
        )


def apply_migrations(
    config: PersistenceConfig, source: str, lock_timeout: float = 10.0
) -> list[str]:
    """Apply the pending migrations of ``source`` under yoyo's lock.

    Returns the ids applied, in order; a second run returns ``[]``. Two
    processes may run this at once: the second waits for the lock and then
    finds nothing to apply. Raises :class:`MigrationLockTimeout` naming the
    holder's PID when the lock stays held for ``lock_timeout`` seconds, and
    :class:`MigrationError` when a migration fails.
    """
    _check_lock_timeout(lock_timeout)
    from yoyo.exceptions import LockTimeout

    target = config.safe_repr()
    with _stdout_to_log(config):
        migrations = _read_migrations(source)
        with _open_backend(config) as backend:
            try:
                with backend.lock(lock_timeout):
                    pending = backend.to_apply(migrations)
                    ids = [migration.id for migration in pending]
                    _logger.info("applying %d migration(s) to %s", len(ids), target)
                    backend.apply_migrations(pending)
            except LockTimeout as exc:
                holder = _lock_holder(backend)
                holder_name = (
                    f"process {holder}" if holder is not None else "another process"
                )
                raise MigrationLockTimeout(
                    f"the migration lock on {target} is held by {holder_name} "
                    f"(waited {lock_timeout:g}s)",
                    hints=[BREAK_LOCK_HINT],
                ) from exc
            except _driver_error_types(config) as exc:
                raise translate_driver_error(
                    exc, "applying migrations", target, _secrets_of(config)
                ) from exc
    for migration_id in ids:
        _logger.info("applied migration %s", migration_id)
    return ids


def pending_migrations(config: PersistenceConfig, source: str) -> list[str]:
    """Return the ids that :func:`apply_migrations` would apply now, in order."""
    target = config.safe_repr()
    with _stdout_to_log(config):
        migrations = _read_migrations(source)
        with _open_backend(config) as backend:
            try:
                return [migration.id for migration in backend.to_apply(migrations)]
            except _driver_error_types(config) as exc:
                raise translate_driver_error(
                    exc, "listing migrations", target, _secrets_of(config)
                ) from exc


def _as_utc(value: object) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def migration_status(
    config: PersistenceConfig, source: str
) -> list[MigrationStatusRow]:
    """Return one ``(id, applied, applied_at)`` row per migration of ``source``."""
    target = config.safe_repr()
    with _stdout_to_log(config):
        migrations = _read_migrations(source)
        with _open_backend(config) as backend:
            try:
                backend.ensure_internal_schema_updated()
                # The table name is yoyo's own quoted identifier.
                table = backend.migration_table_quoted
                query = f"SELECT migration_hash, applied_at_utc FROM {table}"  # noqa: S608
                cursor = backend.execute(query)
                applied = {row[0]: _as_utc(row[1]) for row in cursor.fetchall()}
            except _driver_error_types(config) as exc:
                raise translate_driver_error(
                    exc, "reading the migration status", target, _secrets_of(config)
                ) from exc
    return [
        MigrationStatusRow(
            migration.id, migration.hash in applied, applied.get(migration.hash)
        )
        for migration in migrations
    ]
