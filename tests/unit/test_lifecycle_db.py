"""Target and source selection of db.migrate and db.status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from synthorg_tasks.errors import PersistenceConfigError, UsageError
from synthorg_tasks.lifecycle import db as lifecycle
from synthorg_tasks.state.secrets import mask

PASSWORD = "pw@with:odd/chars#%$'"


@dataclass(frozen=True)
class Install:
    persistence_backend: str = "postgres"
    postgres_password: str | None = PASSWORD
    postgres_port: int = 3002
    bind_address: str = "127.0.0.1"


def _loader(install: Install) -> lifecycle.LoadInstall:
    return lambda: install


def _unused_loader() -> lifecycle.InstallSettings:
    raise AssertionError("config.json must not be read")


@pytest.mark.parametrize(
    ("bind", "host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="loopback"),
        pytest.param("0.0.0.0", "127.0.0.1", id="ipv4-wildcard"),
        pytest.param("::", "::1", id="ipv6-wildcard"),
        pytest.param("192.0.2.10", "192.0.2.10", id="specific"),
        pytest.param("::1", "::1", id="ipv6-loopback"),
    ],
)
def test_probe_host(bind: str, host: str) -> None:
    assert lifecycle.probe_host(bind) == host


def test_sqlite_flag_wins(tmp_path: Path) -> None:
    environ = {"SYNTHORG_DATABASE_URL": "postgresql://u:pw@h/db"}
    target = lifecycle.resolve_target(str(tmp_path / "x.db"), environ, _unused_loader)
    assert target.origin == "--sqlite-path"
    assert target.config.sqlite_path == tmp_path / "x.db"


def test_sqlite_flag_path_rules() -> None:
    with pytest.raises(PersistenceConfigError, match="--sqlite-path"):
        lifecycle.resolve_target("relative.db", {}, _unused_loader)


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"SYNTHORG_DB_PATH": "/data/x.db"}, id="path"),
        pytest.param({"SYNTHORG_DATABASE_URL": "postgresql://u:pw@h/db"}, id="url"),
    ],
)
def test_environment_beats_config(environ: dict[str, str]) -> None:
    target = lifecycle.resolve_target(None, environ, _unused_loader)
    assert target.origin == "environment"


def test_empty_url_in_environment_is_error() -> None:
    with pytest.raises(PersistenceConfigError, match="set but empty"):
        lifecycle.resolve_target(None, {"SYNTHORG_DATABASE_URL": ""}, _unused_loader)


def test_config_postgres_target() -> None:
    install = Install(bind_address="0.0.0.0", postgres_port=4321)
    target = lifecycle.resolve_target(None, {}, _loader(install))
    assert target.origin == "config.json"
    kwargs = target.config.psycopg_kwargs()
    assert kwargs == {
        "host": "127.0.0.1",
        "port": 4321,
        "user": "synthorg",
        "dbname": "synthorg",
        "password": PASSWORD,
        "sslmode": "disable",
    }
    assert target.config.yoyo_uri().startswith("postgresql+psycopg://synthorg:")
    assert PASSWORD not in target.config.safe_repr()
    assert mask(f"x {PASSWORD} y") == "x **** y"


def test_config_ipv6_wildcard_target() -> None:
    target = lifecycle.target_from_install(Install(bind_address="::"))
    assert target.psycopg_kwargs()["host"] == "::1"
    assert "@[::1]:3002/" in target.yoyo_uri()


def test_config_sqlite_is_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        lifecycle.target_from_install(Install(persistence_backend="sqlite"))
    assert str(caught.value) == (
        "the SQLite database lives inside the synthorg-data volume; "
        "the backend applies its migrations on start"
    )
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        pytest.param("/flag", "/env", "/flag", id="flag"),
        pytest.param(None, "/env", "/env", id="env"),
        pytest.param("  ", " /env ", "/env", id="blank-flag-trimmed-env"),
    ],
)
def test_source_precedence(flag: str | None, env: str, expected: str) -> None:
    environ = {"SYNTHORG_MIGRATIONS_SOURCE": env}
    assert lifecycle.resolve_source(flag, environ) == expected


def test_source_default_missing_is_usage_error() -> None:
    with pytest.raises(UsageError, match="no migration source"):
        lifecycle.resolve_source(None, {})
