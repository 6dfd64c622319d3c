"""``db.migrate`` and ``db.status``: apply and list migrations for one target.

Both verbs run the same first steps: pick the migration source, then pick the
database. The target is ``--sqlite-path``, else the environment resolved
exactly as the backend resolves it, else the install's config.json. No option
takes a database URL, so the password never appears in the process list.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from synthorg_tasks.errors import UsageError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.persistence.migrations import (
    MigrationStatusRow,
    apply_migrations,
    migration_status,
    pending_migrations,
)
from synthorg_tasks.persistence.wiring import (
    DATABASE_URL_ENV,
    DB_PATH_ENV,
    PersistenceConfig,
    postgres_config,
    resolve_persistence,
    sqlite_config,
)
from synthorg_tasks.state.secrets import percent_encode, register_secret

__all__ = [
    "DEFAULT_SOURCE",
    "SOURCE_ENV",
    "DbTarget",
    "InstallSettings",
    "MigrateResult",
    "StatusResult",
    "migrate",
    "probe_host",
    "resolve_source",
    "resolve_target",
    "status",
    "target_from_install",
]

SOURCE_ENV = "SYNTHORG_MIGRATIONS_SOURCE"
DEFAULT_SOURCE_PACKAGE = "synthorg.persistence"
DEFAULT_SOURCE = f"package:{DEFAULT_SOURCE_PACKAGE}:migrations"
SQLITE_INSTALL_MESSAGE = (
    "the SQLite database lives inside the synthorg-data volume; "
    "the backend applies its migrations on start"
)
# The stack's PostgreSQL role and database names are fixed by compose.yml.
_INSTALL_ROLE = "synthorg"
_INSTALL_DATABASE = "synthorg"

_logger = get_logger("persistence")


class InstallSettings(Protocol):
    """The config.json fields that locate an install's database."""

    @property
    def persistence_backend(self) -> str: ...

    @property
    def postgres_password(self) -> str | None: ...

    @property
    def postgres_port(self) -> int | None: ...

    @property
    def bind_address(self) -> str: ...


@dataclass(frozen=True)
class DbTarget:
    """The database to migrate and where that choice came from."""

    config: PersistenceConfig
    origin: str


@dataclass(frozen=True)
class MigrateResult:
    """Outcome of ``db.migrate``: the ids applied, or that would be applied."""

    target: str
    source: str
    migrations: list[str]
    dry_run: bool

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "source": self.source,
            "dry_run": self.dry_run,
            "pending" if self.dry_run else "applied": self.migrations,
        }


@dataclass(frozen=True)
class StatusResult:
    """Outcome of ``db.status``: one row per migration of the source."""

    target: str
    source: str
    rows: list[MigrationStatusRow]

    @property
    def pending(self) -> list[str]:
        return [row.id for row in self.rows if not row.applied]

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "source": self.source,
            "migrations": [
                {
                    "id": row.id,
                    "state": "applied" if row.applied else "pending",
                    "applied_at": (
                        row.applied_at.isoformat() if row.applied_at else None
                    ),
                }
                for row in self.rows
            ],
            "pending": len(self.pending),
        }


LoadInstall = Callable[[], InstallSettings]


def probe_host(bind_address: str) -> str:
    """Return the address a client on this host uses to reach ``bind_address``.

    A wildcard maps to the loopback of its family; any other address is used
    as it is.
    """
    address = ipaddress.ip_address(bind_address)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def resolve_source(flag: str | None, environ: Mapping[str, str]) -> str:
    """Return ``--source``, else ``SYNTHORG_MIGRATIONS_SOURCE``, else the default."""
    for value in (flag, environ.get(SOURCE_ENV)):
        if value is not None and value.strip():
            return value.strip()
    try:
        importable = importlib.util.find_spec(DEFAULT_SOURCE_PACKAGE) is not None
    except ImportError:
        importable = False
    if importable:
        return DEFAULT_SOURCE
    raise UsageError(
        "no migration source",
        hints=[
            f"pass --source DIR or set {SOURCE_ENV}; the default {DEFAULT_SOURCE} "
            "needs the backend package installed"
        ],
    )


def target_from_install(settings: InstallSettings) -> PersistenceConfig:
    """Return the host-side target of an install's PostgreSQL.

    The stack publishes PostgreSQL on ``postgres_port`` of the bind address
    without TLS, so the URL carries ``sslmode=disable``.
    """
    if settings.persistence_backend != "postgres":
        raise UsageError(SQLITE_INSTALL_MESSAGE)
    password = settings.postgres_password
    port = settings.postgres_port
    if not password or port is None:
        raise UsageError(
            "config.json has no postgres_password or postgres_port for this install",
            hints=["run 'synthorg init --backend postgres' to complete it"],
        )
    register_secret(password)
    host = probe_host(settings.bind_address)
    host_literal = f"[{host}]" if ":" in host else host
    url = (
        f"postgresql+psycopg://{_INSTALL_ROLE}:{percent_encode(password)}"
        f"@{host_literal}:{port}/{_INSTALL_DATABASE}"
        "?sslmode=disable"
    )
    return postgres_config(url, source="config.json")


def resolve_target(
    sqlite_path: str | None,
    environ: Mapping[str, str],
    load_install: LoadInstall,
) -> DbTarget:
    """Pick the database: ``--sqlite-path``, the environment, then config.json."""
    if sqlite_path is not None:
        return DbTarget(sqlite_config(sqlite_path, "--sqlite-path"), "--sqlite-path")
    if DATABASE_URL_ENV in environ or DB_PATH_ENV in environ:
        return DbTarget(resolve_persistence(environ), "environment")
    return DbTarget(target_from_install(load_install()), "config.json")


def _prepare(
    sqlite_path: str | None,
    source: str | None,
    environ: Mapping[str, str] | None,
    load_install: LoadInstall,
) -> tuple[DbTarget, str]:
    env = os.environ if environ is None else environ
    chosen_source = resolve_source(source, env)
    target = resolve_target(sqlite_path, env, load_install)
    _logger.info(
        "migration target %s (from %s), source %s",
        target.config.safe_repr(),
        target.origin,
        chosen_source,
    )
    return target, chosen_source


def migrate(
    load_install: LoadInstall,
    *,
    sqlite_path: str | None = None,
    source: str | None = None,
    lock_timeout: float = 10.0,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> MigrateResult:
    """Apply the pending migrations, or with ``dry_run`` only list them."""
    target, chosen_source = _prepare(sqlite_path, source, environ, load_install)
    if dry_run:
        ids = pending_migrations(target.config, chosen_source)
    else:
        ids = apply_migrations(target.config, chosen_source, lock_timeout)
    return MigrateResult(target.config.safe_repr(), chosen_source, ids, dry_run)


def status(
    load_install: LoadInstall,
    *,
    sqlite_path: str | None = None,
    source: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StatusResult:
    """List every migration of the source as applied (with its time) or pending."""
    target, chosen_source = _prepare(sqlite_path, source, environ, load_install)
    rows = migration_status(target.config, chosen_source)
    return StatusResult(target.config.safe_repr(), chosen_source, rows)
