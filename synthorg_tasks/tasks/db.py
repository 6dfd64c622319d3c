"""Invoke tasks ``db.migrate`` and ``db.status``.

The tasks only parse options, call :mod:`synthorg_tasks.lifecycle.db` and map
the result to output and an exit code. With ``--json`` stdout contains exactly
one JSON document, the error document included.
"""

from __future__ import annotations

from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit

from synthorg_tasks.errors import ExitCode, UsageError
from synthorg_tasks.grammars import parse_duration
from synthorg_tasks.lifecycle import db as lifecycle
from synthorg_tasks.persistence.migrations import MigrationStatusRow
from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["build_collection", "migrate", "status"]

_TARGET_HELP = {
    "source": "Migration source: a folder or package:<pkg>:<dir> (env "
    "SYNTHORG_MIGRATIONS_SOURCE; default package:synthorg.persistence:migrations).",
    "sqlite_path": "Absolute path of a SQLite database file to use as the target.",
}


def _lock_timeout_seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--lock-timeout: {text!r} is invalid ({exc})") from None


def _install_loader(common: CommonOptions) -> lifecycle.LoadInstall:
    """Return a loader of the install's config.json, called only when needed."""

    def load() -> lifecycle.InstallSettings:
        from synthorg_tasks.state.config import load_strict

        return load_strict(common.data_dir())

    return load


def _state_text(row: MigrationStatusRow) -> str:
    if not row.applied:
        return "pending"
    if row.applied_at is None:
        return "applied"
    return f"applied {row.applied_at.isoformat()}"


@synthorg_task(
    name="migrate",
    help={
        **_TARGET_HELP,
        "lock_timeout": "How long to wait for the migration lock, as a duration "
        "such as 10s or 1m (default 10s).",
        "dry_run": "List the migrations that would run; apply nothing.",
    },
)
def migrate(
    c: Any,
    source: str | None = None,
    sqlite_path: str | None = None,
    lock_timeout: str = "10s",
    dry_run: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """Apply pending database migrations."""
    result = lifecycle.migrate(
        _install_loader(common),
        sqlite_path=sqlite_path,
        source=source,
        lock_timeout=_lock_timeout_seconds(lock_timeout),
        dry_run=dry_run,
    )
    out = common.out
    if out.json:
        out.document(result.to_json())
        return
    if not result.migrations:
        out.data(f"nothing to apply: {result.target} is up to date")
        return
    verb = "would apply" if dry_run else "applied"
    lines = [f"{verb} {len(result.migrations)} migration(s) to {result.target}:"]
    lines += [f"  {migration_id}" for migration_id in result.migrations]
    out.data("\n".join(lines))


@synthorg_task(
    name="status",
    help={**_TARGET_HELP, "check": "Exit 1 when any migration is pending."},
)
def status(
    c: Any,
    source: str | None = None,
    sqlite_path: str | None = None,
    check: bool = False,
    *,
    common: CommonOptions,
) -> None:
    """List each migration as applied (with its time) or pending."""
    result = lifecycle.status(
        _install_loader(common), sqlite_path=sqlite_path, source=source
    )
    out = common.out
    if out.json:
        out.document(result.to_json())
    else:
        rows = [(row.id, _state_text(row)) for row in result.rows]
        out.table(f"migrations of {result.target}", rows)
        out.data(f"{len(result.pending)} pending")
    if check and result.pending:
        raise Exit(code=int(ExitCode.FAILURE))


def build_collection() -> Collection:
    """Return the ``db`` collection with ``migrate`` and ``status``."""
    return Collection("db", migrate, status)
