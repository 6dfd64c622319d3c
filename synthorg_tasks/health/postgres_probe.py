"""Authenticated PostgreSQL probe: connect over TCP with a password, then SELECT 1.

``pg_isready`` alone is not enough for a health verdict, because it succeeds
with a wrong password. The probe reports instead of raising: an unhealthy
server is a result, not an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from synthorg_tasks.persistence.driver_errors import (
    classify_connect_error,
    mask_secrets,
)

__all__ = ["PostgresProbe", "PostgresProbeResult", "probe_postgres"]

PostgresProbe = Literal["ok", "auth_failed", "database_missing", "unreachable"]


@dataclass(frozen=True)
class PostgresProbeResult:
    """Outcome of one probe; ``detail`` is the driver's message, password masked."""

    probe: PostgresProbe
    host: str
    port: int
    detail: str = field(default="")

    @property
    def ok(self) -> bool:
        return self.probe == "ok"


def probe_postgres(
    host: str,
    port: int,
    password: str,
    *,
    user: str = "synthorg",
    dbname: str = "synthorg",
    timeout: float = 5.0,
) -> PostgresProbeResult:
    """Connect as ``user`` to ``dbname`` and run ``SELECT 1``.

    The password travels as a keyword argument to libpq, never in argv or a
    URL. TLS is disabled because the stack publishes PostgreSQL without it.
    ``timeout`` is rounded up to whole seconds for libpq's ``connect_timeout``.
    """
    import psycopg

    def result(probe: PostgresProbe, detail: str = "") -> PostgresProbeResult:
        return PostgresProbeResult(probe, host, port, mask_secrets(detail, [password]))

    try:
        connection = psycopg.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            dbname=dbname,
            sslmode="disable",
            connect_timeout=max(1, math.ceil(timeout)),
        )
    except psycopg.Error as exc:
        return result(classify_connect_error(exc), _summary(exc))
    except OSError as exc:
        return result("unreachable", _summary(exc))
    try:
        with connection:
            row = connection.execute("SELECT 1").fetchone()
    except (psycopg.Error, OSError) as exc:
        return result("unreachable", f"SELECT 1 failed: {_summary(exc)}")
    if row is None or row[0] != 1:
        return result("unreachable", f"SELECT 1 returned {row!r}")
    return result("ok")


def _summary(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
