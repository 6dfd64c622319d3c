"""Fixture paths, generated migrations and child processes for migration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_MIGRATIONS = REPO_ROOT / "tests" / "fixtures" / "migrations"
FIXTURE_IDS = ["0001_create_tasks", "0002_add_task_state", "0003_select_prints_rows"]


def generate_migrations(folder: Path, count: int) -> list[str]:
    """Write ``count`` small CREATE TABLE migrations into a new ``folder``."""
    folder.mkdir()
    ids = []
    for index in range(count):
        migration_id = f"{index:04d}_table_{index}"
        (folder / f"{migration_id}.sql").write_text(
            f"CREATE TABLE t_{index} (id INTEGER PRIMARY KEY);\n", encoding="utf-8"
        )
        ids.append(migration_id)
    return ids


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the db tasks in a child process; secrets travel only in ``env``."""
    runner = textwrap.dedent(
        """
        import sys
        from invoke import Collection, Program
        from synthorg_tasks.tasks.db import build_collection
        namespace = Collection()
        namespace.add_collection(build_collection())
        Program(namespace=namespace, name="synthorg", binary="synthorg").run(
            ["synthorg", *sys.argv[1:]]
        )
        """
    )
    return subprocess.run(
        [sys.executable, "-c", runner, *argv],
        env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


_CONCURRENT_WORKER = """
import json, sys, time
from pathlib import Path
from synthorg_tasks.persistence import apply_migrations, resolve_persistence
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
applied = apply_migrations(resolve_persistence(), sys.argv[1], lock_timeout=60)
print(json.dumps(applied))
"""


def run_concurrently(
    environ: dict[str, str], source: Path, tmp_path: Path
) -> list[str]:
    """Start two processes that apply ``source`` at once; return all applied ids."""
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_WORKER, str(source), str(go)],
            env={**os.environ, **environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    applied: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        applied += json.loads(out)
    return applied
