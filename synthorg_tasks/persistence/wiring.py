"""Resolve the backend's persistence settings from its environment.

Order: ``SYNTHORG_DATABASE_URL`` wins (a present ``SYNTHORG_DB_PATH`` is then
ignored with a WARNING); else ``SYNTHORG_DB_PATH``; else an error. There is no
in-memory or default fallback, because a backend that silently starts on an
empty database looks healthy while it has lost its data.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from synthorg_tasks.errors import PersistenceConfigError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.persistence.dsn import (
    DatabaseURL,
    parse_database_url,
    validate_sslmode,
)

__all__ = [
    "DATABASE_URL_ENV",
    "DB_PATH_ENV",
    "SSL_MODE_ENV",
    "PersistenceConfig",
    "postgres_config",
    "resolve_persistence",
    "sqlite_config",
    "sqlite_path_rules",
]

DATABASE_URL_ENV = "SYNTHORG_DATABASE_URL"
DB_PATH_ENV = "SYNTHORG_DB_PATH"
SSL_MODE_ENV = "SYNTHORG_POSTGRES_SSL_MODE"

_logger = get_logger("persistence")


@dataclass(frozen=True, repr=False)
class PersistenceConfig:
    """Where the backend keeps its data: one SQLite file or one PostgreSQL URL.

    ``dsn`` contains the password; ``repr()`` and :meth:`safe_repr` mask it, while
    :meth:`yoyo_uri` and :meth:`psycopg_kwargs` return it for the driver.
    """

    backend: Literal["sqlite", "postgres"]
    sqlite_path: Path | None = None
    dsn: DatabaseURL | None = None
    sslmode: str | None = None

    def __repr__(self) -> str:
        return f"PersistenceConfig({self.safe_repr()})"

    def safe_repr(self) -> str:
        """Describe the target with the password shown as ``****``."""
        if self.backend == "sqlite":
            return f"sqlite {self.sqlite_path}"
        dsn = self._require_dsn()
        sslmode = self.sslmode if self.sslmode is not None else "default"
        return f"postgres {dsn.masked()} (sslmode {sslmode})"

    def yoyo_uri(self) -> str:
        """Return the yoyo database URI; for PostgreSQL it contains the password."""
        if self.backend == "sqlite":
            # Three slashes then the absolute path. yoyo opens SQLite in URI
            # mode, which decodes %HH, so a literal '%' is written as %25.
            path = str(self.sqlite_path).replace("%", "%25")
            return f"sqlite:///{path}"
        return self._require_dsn().yoyo_uri(self.sslmode)

    def psycopg_kwargs(self) -> dict[str, str | int]:
        """Return ``psycopg.connect`` keyword arguments, password included."""
        return self._require_dsn().psycopg_kwargs(self.sslmode)

    def _require_dsn(self) -> DatabaseURL:
        if self.backend != "postgres" or self.dsn is None:
            raise ValueError("only a PostgreSQL persistence config has a DSN")
        return self.dsn


def sqlite_path_rules(raw: str, source: str) -> Path:
    """Return ``raw`` as a normalised absolute path, or raise naming ``source``.

    ``?`` and ``#`` are rejected because yoyo opens SQLite through a ``file:``
    URI, where they would silently cut the path short.
    """
    if not raw.strip():
        raise PersistenceConfigError(f"{source} is set but empty")
    if "\x00" in raw:
        raise PersistenceConfigError(f"{source}: the path contains a NUL character")
    for character in "?#":
        if character in raw:
            raise PersistenceConfigError(
                f"{source}: {raw!r} contains {character!r}, which a SQLite URI "
                "would cut short; choose a path without '?' and '#'"
            )
    if not raw.startswith("/"):
        raise PersistenceConfigError(
            f"{source}: {raw!r} is not an absolute path; use a path starting with /"
        )
    # normpath removes '..' lexically but keeps a leading '//', which would
    # become a network location in the yoyo URI.
    normalised = "/" + posixpath.normpath(raw).lstrip("/")
    return Path(normalised)


def sqlite_config(raw_path: str, source: str = DB_PATH_ENV) -> PersistenceConfig:
    """Return a SQLite config for ``raw_path`` after the path rules."""
    return PersistenceConfig(
        backend="sqlite", sqlite_path=sqlite_path_rules(raw_path, source)
    )


def postgres_config(
    url: str,
    ssl_mode_env: str | None = None,
    source: str = DATABASE_URL_ENV,
) -> PersistenceConfig:
    """Return a PostgreSQL config for ``url`` and an optional SSL mode setting.

    The SSL mode comes from the URL's ``sslmode``, else from ``ssl_mode_env``;
    both present and different is an error. Neither leaves libpq's default.
    """
    dsn = parse_database_url(url, source)
    env_mode = None
    if ssl_mode_env is not None and ssl_mode_env.strip():
        env_mode = validate_sslmode(ssl_mode_env.strip(), SSL_MODE_ENV)
    url_mode = dsn.sslmode
    if url_mode is not None and env_mode is not None and url_mode != env_mode:
        raise PersistenceConfigError(
            f"{source} has sslmode={url_mode} but {SSL_MODE_ENV} is {env_mode}; "
            "remove one of them or make them equal"
        )
    return PersistenceConfig(backend="postgres", dsn=dsn, sslmode=url_mode or env_mode)


def resolve_persistence(environ: Mapping[str, str] | None = None) -> PersistenceConfig:
    """Resolve the persistence target from ``environ`` (default ``os.environ``).

    Example: ``resolve_persistence({"SYNTHORG_DB_PATH": "/data/synthorg.db"})``.
    The common mistake is a set but empty ``SYNTHORG_DATABASE_URL``, which is
    an error rather than a fallback to SQLite. Raises
    :class:`PersistenceConfigError` with the password masked.
    """
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV)
    db_path = env.get(DB_PATH_ENV)
    if url is not None:
        if not url.strip():
            raise PersistenceConfigError(
                f"{DATABASE_URL_ENV} is set but empty",
                hints=[f"unset it to use {DB_PATH_ENV}, or set a postgresql:// URL"],
            )
        config = postgres_config(url, env.get(SSL_MODE_ENV))
        if db_path is not None:
            _logger.warning(
                "%s is ignored because %s is set", DB_PATH_ENV, DATABASE_URL_ENV
            )
        _logger.info("persistence: %s", config.safe_repr())
        return config
    if db_path is not None:
        config = sqlite_config(db_path)
        _logger.info("persistence: %s", config.safe_repr())
        return config
    raise PersistenceConfigError(
        f"no persistence configured: set {DATABASE_URL_ENV} or {DB_PATH_ENV}"
    )
