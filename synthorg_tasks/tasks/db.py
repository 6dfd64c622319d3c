"""Invoke tasks ``db.migrate`` and ``db.status``.

The tasks only parse options, call :mod:`synthorg_tasks.lifecycle.db` and map
the result to output and an exit code. With ``--json`` stdout holds exactly
one JSON document, the error document included.
"""

from __future__ import annotations

import functools
import importlib
import json as _json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from synthorg_tasks.errors import ExitCode, SynthorgError, UsageError
from synthorg_tasks.lifecycle import db as lifecycle
from synthorg_tasks.logging import configure_logging
from synthorg_tasks.state.secrets import mask

__all__ = ["build_collection", "migrate", "status"]

_F = TypeVar("_F", bound=Callable[..., None])

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

_COMMON_HELP = {
    "source": (
        "Migration source: a folder or package:<pkg>:<dir> "
        "(env SYNTHORG_MIGRATIONS_SOURCE; default package:synthorg.persistence:"
        "migrations)."
    ),
    "sqlite_path": "Absolute path of a SQLite database file to use as the target.",
    "data_dir": "Data dir whose config.json names the target (env SYNTHORG_DATA_DIR).",
    "json": "Print one JSON document on stdout.",
}


def parse_duration(text: str, flag: str) -> float:
    """Return a Go-style duration such as ``10s``, ``1m30s`` or ``500ms`` in seconds."""
    # TODO: use the shared duration grammar once the options module provides it.
    value = text.strip()
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not value or position != len(value) or total <= 0:
        raise UsageError(
            f"{flag}: {text!r} is invalid (a duration greater than 0 such as "
            "10s, 1m30s or 500ms)"
        )
    return total


def _emit_json(document: dict[str, Any]) -> None:
    # TODO: switch to output.emit_json once the shared output module exists.
    sys.stdout.write(mask(_json.dumps(document, indent=2)) + "\n")
    sys.stdout.flush()


def _handles_errors(body: _F) -> _F:
    """Turn product errors into ``error:``/``hint:`` lines and an exit code."""

    # TODO: replace with the shared task decorator once it exists.
    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        configure_logging()
        try:
            body(*args, **kwargs)
        except SynthorgError as exc:
            message = mask(exc.message)
            hints = [mask(hint) for hint in exc.hints]
            if kwargs.get("json"):
                _emit_json(
                    {
                        "error": {"code": exc.slug, "message": message, "hints": hints},
                        "exit_code": int(exc.exit_code),
                    }
                )
            lines = [f"error: {message}", *(f"hint: {hint}" for hint in hints)]
            raise Exit("\n".join(lines), code=int(exc.exit_code)) from exc

    return wrapper  # type: ignore[return-value]


def _install_loader(data_dir: str | None) -> lifecycle.LoadInstall:
    def load() -> lifecycle.InstallSettings:
        # TODO: import these directly once the config and paths modules exist.
        config_module = importlib.import_module("synthorg_tasks.state.config")
        paths_module = importlib.import_module("synthorg_tasks.state.paths")
        data_path = paths_module.resolve_data_dir(data_dir)
        settings: lifecycle.InstallSettings = config_module.load_strict(data_path)
        return settings

    return load


@task(
    auto_shortflags=False,
    help={
        **_COMMON_HELP,
        "lock_timeout": "How long to wait for the migration lock (default 10s).",
        "dry_run": "List the migrations that would run; apply nothing.",
    },
)
@_handles_errors
def migrate(  # noqa: PLR0917 (Invoke turns each parameter into a flag)
    c: Any,
    source: str | None = None,
    sqlite_path: str | None = None,
    lock_timeout: str = "10s",
    dry_run: bool = False,
    data_dir: str | None = None,
    json: bool = False,
) -> None:
    """Apply pending database migrations."""
    result = lifecycle.migrate(
        _install_loader(data_dir),
        sqlite_path=sqlite_path,
        source=source,
        lock_timeout=parse_duration(lock_timeout, "--lock-timeout"),
        dry_run=dry_run,
    )
    if json:
        _emit_json(result.to_json())
        return
    if not result.migrations:
        print(f"nothing to apply: {result.target} is up to date")
        return
    verb = "would apply" if dry_run else "applied"
    print(f"{verb} {len(result.migrations)} migration(s) to {result.target}:")
    for migration_id in result.migrations:
        print(f"  {migration_id}")


@task(
    auto_shortflags=False,
    help={**_COMMON_HELP, "check": "Exit 1 when any migration is pending."},
)
@_handles_errors
def status(  # noqa: PLR0917 (Invoke turns each parameter into a flag)
    c: Any,
    source: str | None = None,
    sqlite_path: str | None = None,
    check: bool = False,
    data_dir: str | None = None,
    json: bool = False,
) -> None:
    """List each migration as applied (with its time) or pending."""
    result = lifecycle.status(
        _install_loader(data_dir), sqlite_path=sqlite_path, source=source
    )
    if json:
        _emit_json(result.to_json())
    else:
        print(f"migrations of {result.target}:")
        for row in result.rows:
            when = f" {row.applied_at.isoformat()}" if row.applied_at else ""
            state = "applied" if row.applied else "pending"
            print(f"  {row.id}  {state}{when}")
        print(f"{len(result.pending)} pending")
    if check and result.pending:
        raise Exit(code=int(ExitCode.FAILURE))


def build_collection() -> Collection:
    """Return the ``db`` collection with ``migrate`` and ``status``."""
    return Collection("db", migrate, status)
