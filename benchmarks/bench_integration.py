"""Measure how fast the integration harness's servers become ready, and db.migrate.

Run from the checkout root: ``python benchmarks/bench_integration.py [--runs N]``
or ``nox -s bench_integration``. Prints one median line per measurement:

- PostgreSQL through the harness: initdb, start and the first authenticated
  ``SELECT 1``. A bare ``initdb && pg_ctl start && pg_isready`` is measured in
  the same run for comparison; the target is at most 1.5 times the bare figure.
- NATS through the harness, per binary: start and the first PONG;
- ``db.migrate`` of 200 small generated migrations on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthorg_tasks.lifecycle import db as lifecycle  # noqa: E402
from tests.integration import servers  # noqa: E402
from tests.integration.helpers import generate_migrations  # noqa: E402

MIGRATION_COUNT = 200


def _median(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms"


def _report(label: str, value: str) -> None:
    print(f"{label:<50}{value}")


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def harness_postgres_once() -> float:
    """Time initdb, start and the first authenticated query through the harness."""
    cluster: servers.PostgresCluster | None = None

    def start() -> None:
        nonlocal cluster
        cluster = servers.init_cluster()
        cluster.start()
        servers.wait_for_postgres(cluster.admin_url())

    try:
        return _timed(start)
    finally:
        if cluster is not None:
            cluster.remove()


def bare_postgres_once() -> float:
    """Time a plain ``initdb && pg_ctl start && pg_isready`` with default settings."""
    bindir = servers.find_pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="synthorg-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, servers.PG_OS_USER, servers.PG_OS_USER)
    data = base / "data"
    port = servers.free_port()
    options = f"-p {port} -c listen_addresses={servers.LOOPBACK} -k {base}"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data)]

    def start() -> None:
        initdb = servers.run_as_pg_user([str(bindir / "initdb"), "-D", str(data)], base)
        initdb.check_returncode()
        log = ["-l", str(base / "log"), "-o", options]
        servers.run_as_pg_user([*pg_ctl, *log, "start"], base).check_returncode()
        isready = [str(bindir / "pg_isready"), "-h", servers.LOOPBACK, "-p", str(port)]
        while subprocess.run(isready, capture_output=True, check=False).returncode:
            time.sleep(0.01)

    try:
        return _timed(start)
    finally:
        servers.run_as_pg_user([*pg_ctl, "-m", "immediate", "stop"], base)
        shutil.rmtree(base, ignore_errors=True)


def nats_once(binary: Path) -> float:
    """Time a harness start until the first PONG; the stop is not timed."""
    context = servers.nats_server(binary)
    elapsed = _timed(context.__enter__)
    context.__exit__(None, None, None)
    return elapsed


def _no_install() -> lifecycle.InstallSettings:
    raise RuntimeError("the benchmark always sets the target in the environment")


def migrate_once(environ: dict[str, str], source: Path) -> float:
    result: list[str] = []

    def run() -> None:
        result.extend(
            lifecycle.migrate(
                _no_install, source=str(source), environ=environ
            ).migrations
        )

    elapsed = _timed(run)
    if len(result) != MIGRATION_COUNT:
        raise RuntimeError(
            f"expected {MIGRATION_COUNT} migrations, applied {len(result)}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Samples per figure.")
    runs = parser.parse_args().runs

    harness = [harness_postgres_once() for _ in range(runs)]
    bare = [bare_postgres_once() for _ in range(runs)]
    ratio = statistics.median(harness) / statistics.median(bare)
    _report("postgres harness ready (initdb+start+SELECT 1)", _median(harness))
    _report("postgres bare initdb+pg_ctl start+pg_isready", _median(bare))
    _report("postgres harness / bare", f"{ratio:8.2f} x")

    for version, binary in sorted(servers.nats_binaries().items()):
        samples = [nats_once(binary) for _ in range(runs)]
        _report(f"nats {version} harness ready (start+PONG)", _median(samples))

    with tempfile.TemporaryDirectory(prefix="synthorg-bench-") as scratch:
        source = Path(scratch) / "migrations"
        generate_migrations(source, MIGRATION_COUNT)
        sqlite_samples = []
        for index in range(runs):
            database = Path(scratch) / f"run{index}.db"
            sqlite_samples.append(
                migrate_once({"SYNTHORG_DB_PATH": str(database)}, source)
            )
        _report(
            f"db.migrate {MIGRATION_COUNT} migrations, sqlite", _median(sqlite_samples)
        )
        with servers.postgres_server() as server:
            pg_samples = []
            for _ in range(runs):
                url = server.url(dbname=server.create_database())
                pg_samples.append(migrate_once({"SYNTHORG_DATABASE_URL": url}, source))
        _report(
            f"db.migrate {MIGRATION_COUNT} migrations, postgres", _median(pg_samples)
        )


if __name__ == "__main__":
    main()
