"""The db.migrate and db.status tasks through the synthorg program."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import run_synthorg
from tests.integration.helpers import FIXTURE_IDS, FIXTURE_MIGRATIONS

SOURCE = ["--source", str(FIXTURE_MIGRATIONS)]


def test_migrate_dry_run_then_apply_then_noop(tmp_path: Path) -> None:
    target = ["--sqlite-path", str(tmp_path / "a b.db"), *SOURCE]
    dry = run_synthorg("db.migrate", "--dry-run", *target)
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines()[1:] == [f"  {i}" for i in FIXTURE_IDS]
    after_dry_run = run_synthorg("db.status", "--check", *target)
    assert after_dry_run.code == 1
    assert "3 pending" in after_dry_run.stdout
    applied = run_synthorg("db.migrate", "--json", *target)
    assert applied.code == 0, applied.output
    assert json.loads(applied.stdout)["applied"] == FIXTURE_IDS
    again = run_synthorg("db.migrate", *target)
    assert again.code == 0
    assert "nothing to apply" in again.stdout


def test_status_check_exit_codes(tmp_path: Path) -> None:
    target = ["--sqlite-path", str(tmp_path / "x.db"), *SOURCE]
    pending = run_synthorg("db.status", "--check", "--json", *target)
    assert pending.code == 1
    document = json.loads(pending.stdout)
    assert document["pending"] == 3
    assert [m["state"] for m in document["migrations"]] == ["pending"] * 3
    run_synthorg("db.migrate", *target)
    done = run_synthorg("db.status", "--check", *target)
    assert done.code == 0
    assert "0 pending" in done.stdout


def test_space_form_reaches_db_tasks(tmp_path: Path) -> None:
    result = run_synthorg(
        "db", "status", "--json", "--sqlite-path", str(tmp_path / "x.db"), *SOURCE
    )
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["pending"] == 3


@pytest.mark.parametrize("value", ["10", "0s", "soon"], ids=str)
def test_bad_lock_timeout_exit_2(tmp_path: Path, value: str) -> None:
    result = run_synthorg(
        "db.migrate",
        "--json",
        "--lock-timeout",
        value,
        "--sqlite-path",
        str(tmp_path / "x.db"),
        *SOURCE,
    )
    assert result.code == 2
    assert json.loads(result.stdout)["error"]["code"] == "usage"


def test_missing_source_exit_2(tmp_path: Path) -> None:
    result = run_synthorg("db.status", "--sqlite-path", str(tmp_path / "x.db"))
    assert result.code == 2
    assert "no migration source" in result.stderr


def test_source_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHORG_MIGRATIONS_SOURCE", str(FIXTURE_MIGRATIONS))
    monkeypatch.setenv("SYNTHORG_DB_PATH", str(tmp_path / "env.db"))
    result = run_synthorg("db.migrate", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["applied"] == FIXTURE_IDS


def test_sqlite_install_exit_2(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "install")
    assert run_synthorg("init", "--data-dir", data_dir).code == 0
    result = run_synthorg("db.migrate", "--data-dir", data_dir, *SOURCE)
    assert result.code == 2
    assert "lives inside the synthorg-data volume" in result.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_postgres_install_uses_published_port(tmp_path: Path) -> None:
    data_dir = tmp_path / "install"
    port = _closed_port()
    init = run_synthorg(
        "init",
        "--data-dir",
        str(data_dir),
        "--backend",
        "postgres",
        "--postgres-port",
        str(port),
    )
    assert init.code == 0, init.output
    password = json.loads((data_dir / "config.json").read_text())["postgres_password"]
    result = run_synthorg("db.status", "--json", "--data-dir", str(data_dir), *SOURCE)
    assert result.code == 4
    document = json.loads(result.stdout)
    assert document["error"]["code"] == "database_unreachable"
    assert f"127.0.0.1:{port}/synthorg" in document["error"]["message"]
    assert password not in result.output
