"""Nox sessions: lint, unit tests and the suites against real services.

Default sessions (`nox`) need nothing outside the virtualenv but a Compose
binary. The others need real servers and are selected by tag, for example
`nox -t integration`, or `nox -t ci` for everything CI runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import nox

# uv must not download interpreters: the test machines reach no Python mirror.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from tests.integration import servers  # noqa: E402 (needs the checkout on sys.path)

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["lint", "unit", "verify", "compose_config"]
nox.options.error_on_missing_interpreters = False

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
CI_PYTHON = "3.11"
TEST_EXTRA = ".[test]"


def _pytest(
    session: nox.Session, *args: str, env: dict[str, str] | None = None
) -> None:
    session.run("python", "-m", "pytest", *args, *session.posargs, env=env or {})


@nox.session(python=CI_PYTHON, tags=["ci"])
def lint(session: nox.Session) -> None:
    """Run ruff check, ruff format --check and mypy strict on the package."""
    session.install(TEST_EXTRA)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHONS, tags=["ci"])
def unit(session: nox.Session) -> None:
    """Run the unit, golden and property tests (Python 3.10-3.13, those present)."""
    session.install(TEST_EXTRA)
    _pytest(session, "tests/unit", "tests/golden", "tests/property")


@nox.session(python=CI_PYTHON, tags=["ci", "compose"])
def compose_config(session: nox.Session) -> None:
    """Check every golden compose file with a real `docker-compose config`."""
    if shutil.which("docker-compose") is None and shutil.which("docker") is None:
        if os.environ.get("SYNTHORG_TEST_REQUIRE_ALL") == "1":
            session.error("no Compose binary found, and SYNTHORG_TEST_REQUIRE_ALL=1")
        session.skip("no Compose binary found (docker-compose or docker compose)")
    session.install(TEST_EXTRA)
    _pytest(session, "tests/compose", "-m", "compose")


@nox.session(python=CI_PYTHON, tags=["ci"])
def verify(session: nox.Session) -> None:
    """Run the offline verification tests: keyless, DHI, Rekor and the cache."""
    session.install(TEST_EXTRA)
    _pytest(session, "tests/verify", "-m", "not registry")


@nox.session(python=CI_PYTHON, tags=["bench"], default=False)
def bench_init(session: nox.Session) -> None:
    """Print whole-process timings of synthorg --help and init against inv."""
    session.install(".")
    session.run("python", "benchmarks/bench_init.py", *session.posargs)


@nox.session(python=CI_PYTHON, tags=["bench"], default=False)
def bench_verify(session: nox.Session) -> None:
    """Time a cached and a full verification against a local docker-registry."""
    session.install(TEST_EXTRA)
    session.run("python", "benchmarks/bench_verify.py", *session.posargs)


def _marker_expression(db: str, bus: str) -> list[str]:
    excluded = []
    if db != "postgres":
        excluded.append("not postgres")
    if bus != "nats":
        excluded.append("not nats")
    return ["-m", " and ".join(excluded)] if excluded else []


@nox.session(
    python=CI_PYTHON, tags=["ci", "integration", "postgres", "nats"], default=False
)
@nox.parametrize("bus", ["internal", "nats"])
@nox.parametrize("db", ["sqlite", "postgres"])
def integration(session: nox.Session, db: str, bus: str) -> None:
    """Run tests/integration against real SQLite, PostgreSQL and NATS servers."""
    session.install(TEST_EXTRA)
    env: dict[str, str] = {}
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
        ignored = [f"--ignore={path}" for path in PROCESS_TESTS]
        _pytest(
            session,
            "tests/integration",
            *ignored,
            *_marker_expression(db, bus),
            env=env,
        )


@nox.session(python=CI_PYTHON, tags=["bench"], default=False)
def bench_integration(session: nox.Session) -> None:
    """Print median server start-up and migration times."""
    session.install(TEST_EXTRA)
    session.run("python", "benchmarks/bench_integration.py", *session.posargs)


@nox.session(python=CI_PYTHON, tags=["ci", "registry"], default=False)
def registry(session: nox.Session) -> None:
    """Run the registry client and DHI tests against a local docker-registry."""
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tests.verify.local_registry import (
        REGISTRY_HOST_ENV,
        registry_binary,
        running_registry,
    )

    binary = registry_binary()
    if binary is None:
        if os.environ.get("SYNTHORG_TEST_REQUIRE_ALL") == "1":
            session.error("docker-registry not found, and SYNTHORG_TEST_REQUIRE_ALL=1")
        session.skip("docker-registry not found (apt-get install docker-registry)")
    session.install(TEST_EXTRA)
    # The registry listens on 127.0.0.1 at a free port and stops in finally.
    with running_registry(binary) as host:
        _pytest(
            session, "tests/verify", "-m", "registry", env={REGISTRY_HOST_ENV: host}
        )


# Tests of real `synthorg` processes; they need no server, so they run once
# here rather than in every integration cell.
PROCESS_TESTS = (
    "tests/integration/test_config_concurrency.py",
    "tests/integration/test_kill_safety.py",
)


@nox.session(python=CI_PYTHON, tags=["ci", "slow"], default=False)
def config_processes(session: nox.Session) -> None:
    """Run real `synthorg` processes: 20 concurrent config writers, 60 SIGKILLs."""
    session.install(TEST_EXTRA)
    _pytest(session, *PROCESS_TESTS)


@nox.session(python=CI_PYTHON, tags=["ci", "docker"], default=False)
@nox.parametrize("bus", ["internal", "nats"])
@nox.parametrize("db", ["sqlite", "postgres"])
def stack(session: nox.Session, db: str, bus: str) -> None:
    """Run tests/stack on a real Docker engine with locally built stand-in images.

    A private dockerd is started (and stopped by its pid) when no engine
    answers. Test projects are swept by label before and after pytest.
    """
    import tempfile

    from tests.stack.engine import running_engine

    session.install(TEST_EXTRA)
    env = {"SYNTHORG_STACK_DB": db, "SYNTHORG_STACK_BUS": bus}
    folder = Path(tempfile.mkdtemp(prefix="synthorg-dockerd-"))
    with running_engine(folder) as host:
        env["DOCKER_HOST"] = host
        session.run("python", "-m", "tests.images.build", env=env)
        session.run("python", "-m", "tests.stack.harness", "sweep", env=env)
        try:
            _pytest(session, "tests/stack", "-m", "docker", env=env)
        finally:
            session.run("python", "-m", "tests.stack.harness", "sweep", env=env)


@nox.session(python=CI_PYTHON, tags=["bench"], default=False)
def bench_status(session: nox.Session) -> None:
    """Time synthorg status --json against docker-compose ps; count API calls."""
    session.install(TEST_EXTRA)
    session.run("python", "benchmarks/bench_status.py", *session.posargs)
