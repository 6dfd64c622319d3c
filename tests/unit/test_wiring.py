"""Resolution of the persistence target from the environment, and SQLite paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from synthorg_tasks.errors import PersistenceConfigError
from synthorg_tasks.persistence import PersistenceConfig, resolve_persistence
from synthorg_tasks.persistence.wiring import sqlite_config

URL = "postgresql://synthorg:p%40ss%2Fw%23d@127.0.0.1:5432/synthorg"


def test_url_wins_over_path_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"SYNTHORG_DATABASE_URL": URL, "SYNTHORG_DB_PATH": "/data/x.db"}
    with caplog.at_level(logging.WARNING, logger="synthorg"):
        config = resolve_persistence(environ)
    assert config.backend == "postgres"
    assert config.sqlite_path is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "SYNTHORG_DB_PATH is ignored" in warnings[0].getMessage()


def test_url_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="synthorg"):
        config = resolve_persistence({"SYNTHORG_DATABASE_URL": URL})
    assert config.backend == "postgres"
    assert config.dsn is not None
    assert config.dsn.password == "p@ss/w#d"
    assert caplog.records == []


def test_path_only() -> None:
    config = resolve_persistence({"SYNTHORG_DB_PATH": "/data/synthorg.db"})
    assert config == PersistenceConfig(
        backend="sqlite", sqlite_path=Path("/data/synthorg.db")
    )


@pytest.mark.parametrize("value", ["", "   ", "\t\n"], ids=["empty", "spaces", "ws"])
def test_empty_url_is_error_not_fallback(value: str) -> None:
    environ = {"SYNTHORG_DATABASE_URL": value, "SYNTHORG_DB_PATH": "/data/x.db"}
    with pytest.raises(PersistenceConfigError, match="is set but empty"):
        resolve_persistence(environ)


def test_neither_is_error() -> None:
    with pytest.raises(PersistenceConfigError, match="no persistence configured"):
        resolve_persistence({"SYNTHORG_OTHER": "x"})


def test_default_environ_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHORG_DATABASE_URL", raising=False)
    monkeypatch.setenv("SYNTHORG_DB_PATH", "/srv/db.sqlite")
    assert resolve_persistence().sqlite_path == Path("/srv/db.sqlite")


def test_persistence_config_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="no persistence configured"):
        resolve_persistence({})


@pytest.mark.parametrize(
    ("url_mode", "env_mode", "expected"),
    [
        pytest.param(None, None, None, id="neither-libpq-default"),
        pytest.param("require", None, "require", id="url-only"),
        pytest.param(None, "verify-full", "verify-full", id="env-only"),
        pytest.param("disable", "disable", "disable", id="both-equal"),
        pytest.param(None, "  ", None, id="env-blank-is-unset"),
    ],
)
def test_sslmode_resolution(
    url_mode: str | None, env_mode: str | None, expected: str | None
) -> None:
    environ = {
        "SYNTHORG_DATABASE_URL": URL + (f"?sslmode={url_mode}" if url_mode else "")
    }
    if env_mode is not None:
        environ["SYNTHORG_POSTGRES_SSL_MODE"] = env_mode
    config = resolve_persistence(environ)
    assert config.sslmode == expected
    assert config.psycopg_kwargs().get("sslmode") == expected


def test_sslmode_conflict() -> None:
    environ = {
        "SYNTHORG_DATABASE_URL": URL + "?sslmode=require",
        "SYNTHORG_POSTGRES_SSL_MODE": "disable",
    }
    with pytest.raises(PersistenceConfigError, match="sslmode=require but"):
        resolve_persistence(environ)


def test_sslmode_env_invalid() -> None:
    environ = {"SYNTHORG_DATABASE_URL": URL, "SYNTHORG_POSTGRES_SSL_MODE": "on"}
    with pytest.raises(PersistenceConfigError, match="not a valid SSL mode"):
        resolve_persistence(environ)


def test_safe_repr_masks_password() -> None:
    config = resolve_persistence({"SYNTHORG_DATABASE_URL": URL})
    for text in (config.safe_repr(), repr(config), str(config)):
        assert "p@ss" not in text
        assert "p%40ss" not in text
        assert "****" in text


def test_yoyo_uri_and_kwargs_carry_password() -> None:
    config = resolve_persistence({"SYNTHORG_DATABASE_URL": URL})
    assert "p%40ss%2Fw%23d" in config.yoyo_uri()
    assert config.psycopg_kwargs()["password"] == "p@ss/w#d"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("/data/db.sqlite", "/data/db.sqlite", id="plain"),
        pytest.param("/data/a b/db.sqlite", "/data/a b/db.sqlite", id="space"),
        pytest.param("/data/../etc/./db", "/etc/db", id="dot-dot"),
        pytest.param("//data//db", "/data/db", id="double-slash"),
        pytest.param("/data/50%/db", "/data/50%/db", id="percent"),
    ],
)
def test_sqlite_path_normalised(raw: str, expected: str) -> None:
    assert sqlite_config(raw).sqlite_path == Path(expected)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("", "set but empty", id="empty"),
        pytest.param("  ", "set but empty", id="blank"),
        pytest.param("data/db.sqlite", "not an absolute path", id="relative"),
        pytest.param("/data/db?mode=ro", "'?'", id="question"),
        pytest.param("/data/db#1", "'#'", id="hash"),
        pytest.param("/data/\x00db", "NUL", id="nul"),
    ],
)
def test_sqlite_path_rejected(raw: str, problem: str) -> None:
    with pytest.raises(PersistenceConfigError, match="SYNTHORG_DB_PATH") as caught:
        sqlite_config(raw)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "uri"),
    [
        pytest.param("/data/db.sqlite", "sqlite:////data/db.sqlite", id="plain"),
        pytest.param("/data/a b/x", "sqlite:////data/a b/x", id="space"),
        pytest.param("/data/50%/x", "sqlite:////data/50%25/x", id="percent"),
    ],
)
def test_sqlite_yoyo_uri(raw: str, uri: str) -> None:
    assert sqlite_config(raw).yoyo_uri() == uri
