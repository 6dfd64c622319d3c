"""Resolution, URL encoding and migrations against a real PostgreSQL server."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from synthorg_tasks.errors import (
    DatabaseUnreachable,
    MigrationError,
    MigrationLockTimeout,
)
from synthorg_tasks.lifecycle import db as lifecycle
from synthorg_tasks.persistence import (
    apply_migrations,
    migration_status,
    resolve_persistence,
)
from synthorg_tasks.persistence.migrations import BREAK_LOCK_HINT
from synthorg_tasks.state.secrets import percent_encode
from tests.integration import servers
from tests.integration.helpers import (
    FIXTURE_IDS,
    FIXTURE_MIGRATIONS,
    REPO_ROOT,
    generate_migrations,
    run_cli,
    run_concurrently,
)

pytestmark = pytest.mark.postgres


def _environ(url: str, **extra: str) -> dict[str, str]:
    return {"SYNTHORG_DATABASE_URL": url, **extra}


def _no_install() -> lifecycle.InstallSettings:
    raise AssertionError("the environment must decide the target")


def test_resolved_url_connects(pg_server: servers.PostgresServer) -> None:
    environ = _environ(pg_server.url(), SYNTHORG_DB_PATH="/nonexistent/x.db")
    config = resolve_persistence(environ)
    with psycopg.connect(**config.psycopg_kwargs()) as connection:
        row = connection.execute("SELECT current_user, current_database()").fetchone()
    assert row == ("synthorg", "synthorg")


def test_encoded_password_reaches_psycopg_decoded(
    pg_server: servers.PostgresServer,
) -> None:
    role = f"encoded_{secrets.token_hex(4)}"
    pg_server.create_role(role, "p@ss/w#d")
    try:
        url = (
            f"postgresql://{role}:p%40ss%2Fw%23d@{pg_server.host}:{pg_server.port}/"
            "synthorg?sslmode=disable"
        )
        config = resolve_persistence(_environ(url))
        assert config.psycopg_kwargs()["password"] == "p@ss/w#d"
        with psycopg.connect(**config.psycopg_kwargs()) as connection:
            row = connection.execute("SELECT current_user").fetchone()
        assert row == (role,)
    finally:
        pg_server.drop_role(role)


def test_migrations_apply_then_noop(
    pg_server: servers.PostgresServer, pg_database: str
) -> None:
    config = resolve_persistence(_environ(pg_server.url(dbname=pg_database)))
    assert apply_migrations(config, str(FIXTURE_MIGRATIONS)) == FIXTURE_IDS
    assert apply_migrations(config, str(FIXTURE_MIGRATIONS)) == []
    with psycopg.connect(**config.psycopg_kwargs()) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'tasks' ORDER BY ordinal_position"
        ).fetchall()
    assert columns == [("id",), ("title",), ("state",)]


def test_migration_select_output_kept_off_stdout(
    pg_server: servers.PostgresServer,
    pg_database: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = resolve_persistence(_environ(pg_server.url(dbname=pg_database)))
    with caplog.at_level(logging.DEBUG, logger="synthorg"):
        apply_migrations(config, str(FIXTURE_MIGRATIONS))
    captured = capfd.readouterr()
    assert "migration-select-output" not in captured.out
    logged = [
        r.getMessage() for r in caplog.records if r.name == "synthorg.persistence"
    ]
    assert any("migration-select-output" in message for message in logged)


def test_status_reports_pending_then_applied(
    pg_server: servers.PostgresServer, pg_database: str
) -> None:
    config = resolve_persistence(_environ(pg_server.url(dbname=pg_database)))
    before = migration_status(config, str(FIXTURE_MIGRATIONS))
    assert [(row.id, row.applied, row.applied_at) for row in before] == [
        (migration_id, False, None) for migration_id in FIXTURE_IDS
    ]
    apply_migrations(config, str(FIXTURE_MIGRATIONS))
    after = migration_status(config, str(FIXTURE_MIGRATIONS))
    assert [row.id for row in after] == FIXTURE_IDS
    assert all(row.applied for row in after)
    assert all(row.applied_at is not None for row in after)


def test_db_tasks_report_both_states(
    pg_server: servers.PostgresServer, pg_database: str
) -> None:
    environ = _environ(pg_server.url(dbname=pg_database))
    source = str(FIXTURE_MIGRATIONS)
    dry = lifecycle.migrate(_no_install, source=source, dry_run=True, environ=environ)
    assert dry.migrations == FIXTURE_IDS
    pending = lifecycle.status(_no_install, source=source, environ=environ)
    assert pending.pending == FIXTURE_IDS
    applied = lifecycle.migrate(_no_install, source=source, environ=environ)
    assert applied.migrations == FIXTURE_IDS
    done = lifecycle.status(_no_install, source=source, environ=environ)
    assert done.pending == []
    assert [m["state"] for m in done.to_json()["migrations"]] == ["applied"] * 3  # type: ignore[union-attr]


def test_cli_json_and_check_without_password_leak(
    pg_server: servers.PostgresServer, pg_database: str
) -> None:
    url = pg_server.url(dbname=pg_database)
    env = {
        "SYNTHORG_DATABASE_URL": url,
        "SYNTHORG_MIGRATIONS_SOURCE": str(FIXTURE_MIGRATIONS),
    }
    runs = {
        "check-pending": run_cli(["db.status", "--check", "--json"], env),
        "migrate": run_cli(["db.migrate", "--json"], env),
        "migrate-again": run_cli(["db.migrate"], env),
        "check-done": run_cli(["db.status", "--check", "--json"], env),
    }
    assert runs["check-pending"].returncode == 1
    assert json.loads(runs["check-pending"].stdout)["pending"] == 3
    assert runs["migrate"].returncode == 0
    assert json.loads(runs["migrate"].stdout)["applied"] == FIXTURE_IDS
    assert runs["migrate-again"].returncode == 0
    assert "nothing to apply" in runs["migrate-again"].stdout
    assert runs["check-done"].returncode == 0
    assert json.loads(runs["check-done"].stdout)["pending"] == 0
    forms = {pg_server.role_password, percent_encode(pg_server.role_password)}
    for name, run in runs.items():
        for form in forms:
            assert form not in run.stdout, name
            assert form not in run.stderr, name


def test_cli_wrong_password_exit_and_mask(pg_server: servers.PostgresServer) -> None:
    wrong = "Wr0ng-p@ss#word"
    env = {
        "SYNTHORG_DATABASE_URL": pg_server.url(password=wrong),
        "SYNTHORG_MIGRATIONS_SOURCE": str(FIXTURE_MIGRATIONS),
    }
    run = run_cli(["db.migrate", "--json"], env)
    assert run.returncode == 1
    document = json.loads(run.stdout)
    assert document["error"]["code"] == "migration_failed"
    assert wrong not in run.stdout + run.stderr
    assert percent_encode(wrong) not in run.stdout + run.stderr


def test_cli_closed_port_exits_4(pg_server: servers.PostgresServer) -> None:
    url = servers.pg_url("synthorg", "secret-pw", servers.closed_port(), "synthorg")
    env = {
        "SYNTHORG_DATABASE_URL": url,
        "SYNTHORG_MIGRATIONS_SOURCE": str(FIXTURE_MIGRATIONS),
    }
    run = run_cli(["db.status", "--json"], env)
    assert run.returncode == 4
    assert json.loads(run.stdout)["error"]["code"] == "database_unreachable"


def test_no_password_in_logs_or_errors(
    pg_server: servers.PostgresServer,
    pg_database: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = resolve_persistence(_environ(pg_server.url(dbname=pg_database)))
    wrong = resolve_persistence(
        _environ(pg_server.url(password="another-s3cret!", dbname=pg_database))
    )
    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):
        apply_migrations(config, str(FIXTURE_MIGRATIONS))
        migration_status(config, str(FIXTURE_MIGRATIONS))
        with pytest.raises(MigrationError) as caught:
            apply_migrations(wrong, str(FIXTURE_MIGRATIONS))
        messages.append(str(caught.value))
    captured = capfd.readouterr()
    texts = [*messages, captured.out, captured.err]
    texts += [record.getMessage() for record in caplog.records]
    for secret in (pg_server.role_password, "another-s3cret!"):
        for form in (secret, percent_encode(secret)):
            assert all(form not in text for text in texts)


def test_unreachable_server_is_database_unreachable() -> None:
    url = servers.pg_url("synthorg", "pw-secret", servers.closed_port(), "synthorg")
    config = resolve_persistence(_environ(url))
    with pytest.raises(DatabaseUnreachable) as caught:
        apply_migrations(config, str(FIXTURE_MIGRATIONS))
    assert "pw-secret" not in str(caught.value)


_LOCK_HOLDER = """
import os, sys, time
import yoyo
from synthorg_tasks.persistence import resolve_persistence
backend = yoyo.get_backend(resolve_persistence().yoyo_uri())
with backend.lock(5):
    sys.stdout.write("locked\\n")
    sys.stdout.flush()
    sys.stdin.readline()
"""


def test_held_lock_names_holder_pid(
    pg_server: servers.PostgresServer, pg_database: str
) -> None:
    url = pg_server.url(dbname=pg_database)
    with subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER],
        env={**os.environ, "SYNTHORG_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            config = resolve_persistence(_environ(url))
            started = time.monotonic()
            with pytest.raises(MigrationLockTimeout) as caught:
                apply_migrations(config, str(FIXTURE_MIGRATIONS), lock_timeout=1.0)
            assert time.monotonic() - started < 10
            assert f"process {holder.pid}" in str(caught.value)
            assert caught.value.hints == [BREAK_LOCK_HINT]
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


def test_concurrent_processes_apply_each_once(
    pg_server: servers.PostgresServer, pg_database: str, tmp_path: Path
) -> None:
    ids = generate_migrations(tmp_path / "migrations", 40)
    environ = _environ(pg_server.url(dbname=pg_database))
    applied = run_concurrently(environ, tmp_path / "migrations", tmp_path)
    assert sorted(applied) == ids
    config = resolve_persistence(environ)
    with psycopg.connect(**config.psycopg_kwargs()) as connection:
        rows = connection.execute(
            "SELECT migration_id, count(*) FROM _yoyo_migration GROUP BY migration_id"
        ).fetchall()
    assert sorted(rows) == [(migration_id, 1) for migration_id in ids]
