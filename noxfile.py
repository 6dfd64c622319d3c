"""Nox sessions of synthorg-tasks.

Sessions that start servers choose free loopback ports and stop the servers in
``finally``; connection strings reach pytest through ``env=``, never argv.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from tests.integration import servers  # noqa: E402 (needs the checkout on sys.path)

nox.options.reuse_existing_virtualenvs = True


def _install_project(session: nox.Session) -> dict[str, str]:
    """Install the runtime and test dependencies; return the env to run the checkout.

    The package itself runs uninstalled from the checkout (its resource
    locator falls back to the top-level folders), so a session does not depend
    on building the wheel.
    """
    project = nox.project.load_toml(str(ROOT / "pyproject.toml"))["project"]
    session.install(*project["dependencies"], *project["optional-dependencies"]["test"])
    return {"PYTHONPATH": str(ROOT)}


def _marker_expression(db: str, bus: str) -> list[str]:
    excluded = []
    if db != "postgres":
        excluded.append("not postgres")
    if bus != "nats":
        excluded.append("not nats")
    return ["-m", " and ".join(excluded)] if excluded else []


@nox.session(tags=["integration", "postgres", "nats"], default=False)
@nox.parametrize("bus", ["internal", "nats"])
@nox.parametrize("db", ["sqlite", "postgres"])
def integration(session: nox.Session, db: str, bus: str) -> None:
    """Run tests/integration against real SQLite, PostgreSQL and NATS servers."""
    env = _install_project(session)
    # The exit stack is the session's finally: every server started below is
    # stopped when pytest ends, also when it fails or is interrupted.
    with contextlib.ExitStack() as servers_running:
        if db == "postgres":
            cluster = servers.init_cluster()
            servers_running.callback(cluster.remove)
            cluster.start()
            env[servers.ADMIN_DSN_ENV] = cluster.admin_url()
        if bus == "nats":
            urls = []
            for version, binary in sorted(servers.nats_binaries().items()):
                server = servers_running.enter_context(servers.nats_server(binary))
                urls.append(f"{version}={server.url}")
            env[servers.NATS_URLS_ENV] = ",".join(urls)
        session.run(
            "pytest",
            "tests/integration",
            *_marker_expression(db, bus),
            *session.posargs,
            env=env,
        )


@nox.session(tags=["integration"], default=False)
def bench_integration(session: nox.Session) -> None:
    """Print median server start-up and migration times."""
    env = _install_project(session)
    session.run("python", "benchmarks/bench_integration.py", *session.posargs, env=env)
