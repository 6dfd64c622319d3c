"""The authenticated PostgreSQL probe against a real server."""

from __future__ import annotations

import pytest

from synthorg_tasks.health.postgres_probe import probe_postgres
from tests.integration import servers

pytestmark = pytest.mark.postgres


def test_right_password_ok(pg_server: servers.PostgresServer) -> None:
    result = probe_postgres(pg_server.host, pg_server.port, pg_server.role_password)
    assert result.probe == "ok"
    assert result.ok


def test_wrong_password_auth_failed(pg_server: servers.PostgresServer) -> None:
    wrong = "not-the-password-" + pg_server.role_password[-4:]
    result = probe_postgres(pg_server.host, pg_server.port, wrong)
    assert result.probe == "auth_failed"
    assert not result.ok
    assert wrong not in result.detail


def test_unknown_role_auth_failed(pg_server: servers.PostgresServer) -> None:
    result = probe_postgres(
        pg_server.host, pg_server.port, "whatever-pw", user="no_such_role"
    )
    assert result.probe == "auth_failed"


def test_missing_database(pg_server: servers.PostgresServer) -> None:
    result = probe_postgres(
        pg_server.host,
        pg_server.port,
        pg_server.role_password,
        dbname="no_such_database",
    )
    assert result.probe == "database_missing"
    assert "no_such_database" in result.detail


def test_closed_port_unreachable() -> None:
    port = servers.closed_port()
    result = probe_postgres(servers.LOOPBACK, port, "pw-for-closed-port", timeout=2)
    assert result.probe == "unreachable"
    assert result.port == port
    assert "pw-for-closed-port" not in result.detail


def test_result_is_frozen(pg_server: servers.PostgresServer) -> None:
    result = probe_postgres(pg_server.host, pg_server.port, pg_server.role_password)
    with pytest.raises(AttributeError):
        result.probe = "auth_failed"  # type: ignore[misc]
