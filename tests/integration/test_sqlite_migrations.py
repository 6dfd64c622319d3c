"""Migrations on real SQLite files, including awkward paths."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from synthorg_tasks.errors import PersistenceConfigError, UsageError
from synthorg_tasks.lifecycle import db as lifecycle
from synthorg_tasks.persistence import (
    apply_migrations,
    migration_status,
    resolve_persistence,
)
from tests.integration.helpers import (
    FIXTURE_IDS,
    FIXTURE_MIGRATIONS,
    generate_migrations,
    run_concurrently,
)


def _no_install() -> lifecycle.InstallSettings:
    raise AssertionError("the environment must decide the target")


@pytest.mark.parametrize(
    "folder",
    ["plain", "with spaces", "50% done", "quote's [x]"],
    ids=["plain", "spaces", "percent", "quote-brackets"],
)
def test_apply_then_noop(tmp_path: Path, folder: str) -> None:
    database = tmp_path / folder / "synthorg.db"
    database.parent.mkdir()
    config = resolve_persistence({"SYNTHORG_DB_PATH": str(database)})
    assert apply_migrations(config, str(FIXTURE_MIGRATIONS)) == FIXTURE_IDS
    assert apply_migrations(config, str(FIXTURE_MIGRATIONS)) == []
    assert sorted(p.name for p in database.parent.iterdir()) == ["synthorg.db"]
    with sqlite3.connect(database) as connection:
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE name = 'tasks'"
        ).fetchall()
    assert tables == [("tasks",)]


def test_source_folder_with_glob_characters(tmp_path: Path) -> None:
    source = tmp_path / "migrations [v1]*"
    ids = generate_migrations(source, 3)
    config = resolve_persistence({"SYNTHORG_DB_PATH": str(tmp_path / "x.db")})
    assert apply_migrations(config, str(source)) == ids


@pytest.mark.parametrize("character", ["?", "#"], ids=["question", "hash"])
def test_uri_characters_rejected_before_yoyo(tmp_path: Path, character: str) -> None:
    database = tmp_path / f"db{character}mode=ro.sqlite"
    with pytest.raises(PersistenceConfigError, match="SYNTHORG_DB_PATH"):
        resolve_persistence({"SYNTHORG_DB_PATH": str(database)})
    assert list(tmp_path.iterdir()) == []


def test_status_reports_both_states(tmp_path: Path) -> None:
    environ = {"SYNTHORG_DB_PATH": str(tmp_path / "with space.db")}
    source = str(FIXTURE_MIGRATIONS)
    before = lifecycle.status(_no_install, source=source, environ=environ)
    assert before.pending == FIXTURE_IDS
    lifecycle.migrate(_no_install, source=source, environ=environ)
    after = lifecycle.status(_no_install, source=source, environ=environ)
    assert after.pending == []
    assert all(row.applied_at is not None for row in after.rows)


def test_sqlite_path_flag_beats_environment(tmp_path: Path) -> None:
    flagged = tmp_path / "flag.db"
    environ = {"SYNTHORG_DB_PATH": str(tmp_path / "env.db")}
    result = lifecycle.migrate(
        _no_install,
        sqlite_path=str(flagged),
        source=str(FIXTURE_MIGRATIONS),
        environ=environ,
    )
    assert result.migrations == FIXTURE_IDS
    assert flagged.exists()
    assert not (tmp_path / "env.db").exists()


def test_missing_source_is_usage_error(tmp_path: Path) -> None:
    config = resolve_persistence({"SYNTHORG_DB_PATH": str(tmp_path / "x.db")})
    with pytest.raises(UsageError, match="is not a directory"):
        apply_migrations(config, str(tmp_path / "absent"))
    with pytest.raises(UsageError, match="not importable"):
        migration_status(config, "package:no_such_package_here:migrations")


def test_package_source(tmp_path: Path) -> None:
    config = resolve_persistence({"SYNTHORG_DB_PATH": str(tmp_path / "x.db")})
    rows = migration_status(config, "package:tests:fixtures/migrations")
    assert [row.id for row in rows] == FIXTURE_IDS


def test_concurrent_processes_apply_each_once(tmp_path: Path) -> None:
    ids = generate_migrations(tmp_path / "migrations", 40)
    database = tmp_path / "shared db.sqlite"
    applied = run_concurrently(
        {"SYNTHORG_DB_PATH": str(database)}, tmp_path / "migrations", tmp_path
    )
    assert sorted(applied) == ids
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT migration_id, count(*) FROM _yoyo_migration GROUP BY migration_id"
        ).fetchall()
    assert sorted(rows) == [(migration_id, 1) for migration_id in ids]
