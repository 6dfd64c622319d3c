"""Session fixtures that provide real PostgreSQL and NATS servers.

A Nox ``integration`` session starts the servers itself and passes them in
through the environment (``SYNTHORG_TEST_PG_ADMIN_DSN`` and
``SYNTHORG_TEST_NATS_URLS``). Without them, these fixtures start private
servers, so ``pytest tests/integration`` also works on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.capabilities import require
from tests.integration import servers

NATS_VERSIONS = ("2.9", "2.15")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[servers.PostgresServer]:
    """A provisioned server: role ``synthorg`` and database ``synthorg``."""
    available, reason = servers.pg_available()
    require("postgres", available, reason)
    with servers.postgres_server() as server:
        yield server


@pytest.fixture
def pg_database(pg_server: servers.PostgresServer) -> Iterator[str]:
    """The name of a fresh, empty database owned by ``synthorg``, dropped after."""
    name = pg_server.create_database()
    yield name
    pg_server.drop_database(name)


def _nats_urls_from_env() -> dict[str, str]:
    # Format: "2.9=nats://127.0.0.1:4222,2.15=nats://127.0.0.1:4223".
    raw = os.environ.get(servers.NATS_URLS_ENV, "")
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {pair[0]: pair[1] for pair in pairs}


@pytest.fixture(scope="session")
def nats_binaries() -> dict[str, Path]:
    return servers.nats_binaries()


class NatsBinary(NamedTuple):
    version: str
    path: Path


@pytest.fixture(params=NATS_VERSIONS, ids=[f"nats-{v}" for v in NATS_VERSIONS])
def nats_binary(
    request: pytest.FixtureRequest, nats_binaries: dict[str, Path]
) -> NatsBinary:
    """One nats-server binary per supported version."""
    version: str = request.param
    path = nats_binaries.get(version)
    require(
        "nats",
        path is not None,
        f"no nats-server {version} (found: {sorted(nats_binaries) or 'none'})",
    )
    assert path is not None
    return NatsBinary(version, path)


@pytest.fixture
def nats_default(nats_binary: NatsBinary) -> Iterator[tuple[str, int]]:
    """(host, port) of a server of ``nats_binary`` started with the default limits."""
    given = _nats_urls_from_env().get(nats_binary.version)
    if given:
        host, port = given.removeprefix("nats://").rsplit(":", 1)
        yield host, int(port)
        return
    with servers.nats_server(nats_binary.path) as server:
        yield server.host, server.port
