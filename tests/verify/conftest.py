"""Fixtures for the DHI, Rekor and registry tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from synthorg_tasks.verify.registry import is_loopback_host
from tests.capabilities import require
from tests.verify.factories import TrustKeys
from tests.verify.local_registry import (
    REGISTRY_HOST_ENV,
    registry_binary,
    running_registry,
)
from tests.verify.stub_server import StubServer


@pytest.fixture(scope="session")
def trust_keys() -> TrustKeys:
    """Fresh DHI and Rekor keys, generated once per test run."""
    return TrustKeys.generate()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    """A loopback registry and Rekor API stub, stopped after the test."""
    with StubServer() as server:
        yield server


@pytest.fixture(scope="session")
def docker_registry() -> Iterator[str]:
    """Host of a real docker-registry process on 127.0.0.1 for the session.

    The ``registry`` Nox session starts one and passes its host in the
    environment; otherwise the fixture starts its own.
    """
    started = os.environ.get(REGISTRY_HOST_ENV)
    if started:
        assert is_loopback_host(started), (
            f"{REGISTRY_HOST_ENV}={started} is not loopback"
        )
        yield started
        return
    binary = registry_binary()
    require(
        "registry",
        binary is not None,
        "Debian's docker-registry binary is not installed "
        "(apt-get install docker-registry)",
    )
    assert binary is not None
    with running_registry(binary) as host:
        yield host
