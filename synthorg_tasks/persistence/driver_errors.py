"""Translate psycopg and sqlite3 errors into the product's exception tree.

This is the one adapter for database driver errors: the migration runner and
the PostgreSQL probe both classify failures here. Every message passes through
the secret registry, and the caller's own secrets are masked as well, so a
password shorter than the registry's minimum is hidden too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from synthorg_tasks.errors import (
    DatabaseUnreachable,
    MigrationError,
    PersistenceError,
)
from synthorg_tasks.state.secrets import MASK, mask, percent_encode

__all__ = [
    "ConnectFailure",
    "classify_connect_error",
    "mask_secrets",
    "translate_connect_error",
    "translate_driver_error",
]

ConnectFailure = Literal["auth_failed", "database_missing", "unreachable"]

_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
_DATABASE_MISSING_SQLSTATE = "3D000"
# psycopg 3.3 sets no SQLSTATE on connection failures, so libpq's message is
# matched as well. NOTE: these are the server's English texts; a server with
# another lc_messages reports them translated and is classified unreachable.
_AUTH_MESSAGES = re.compile(r"password authentication failed|no pg_hba\.conf entry")
_DATABASE_MISSING_MESSAGE = re.compile(r"database \".*\" does not exist")


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask registered secrets and ``secrets`` (raw and percent-encoded) in ``text``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(percent_encode(secret), MASK).replace(secret, MASK)
    return mask(text)


def classify_connect_error(exc: BaseException) -> ConnectFailure:
    """Classify a failed connection by SQLSTATE, else by libpq's message."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _AUTH_SQLSTATES:
        return "auth_failed"
    if sqlstate == _DATABASE_MISSING_SQLSTATE:
        return "database_missing"
    text = str(exc)
    if _AUTH_MESSAGES.search(text):
        return "auth_failed"
    if _DATABASE_MISSING_MESSAGE.search(text):
        return "database_missing"
    return "unreachable"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else "no detail"


def translate_connect_error(
    exc: BaseException, target: str, secrets: Iterable[str] = ()
) -> PersistenceError:
    """Map a connection failure to an unreachable or a migration error."""
    detail = mask_secrets(_first_line(str(exc)), secrets)
    kind = classify_connect_error(exc)
    if kind == "auth_failed":
        return MigrationError(
            f"cannot connect to {target}: the password or user was rejected ({detail})",
            hints=["check the PostgreSQL password of the synthorg role"],
        )
    if kind == "database_missing":
        return MigrationError(
            f"cannot connect to {target}: the database does not exist ({detail})",
            hints=["create the database, or point the URL at an existing one"],
        )
    return DatabaseUnreachable(
        f"cannot connect to {target}: {detail}",
        hints=["check that the database server is running and the port is right"],
    )


def translate_driver_error(
    exc: BaseException, action: str, target: str, secrets: Iterable[str] = ()
) -> MigrationError:
    """Map an error raised while ``action`` ran against ``target``."""
    detail = mask_secrets(_first_line(str(exc)), secrets)
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
    return MigrationError(f"{action} failed on {target}: {detail}{code}")
