"""Fixtures of the verification tests.

DHI and Rekor tests use generated trust keys, a loopback registry and Rekor
stub, and a real docker-registry process. Keyless tests use a private
Sigstore instance, an in-memory registry and a GitHub attestations stub.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthorg_tasks.verify.attestations import AttestationsClient
from synthorg_tasks.verify.pins import Pins, load_pins
from synthorg_tasks.verify.registry import is_loopback_host
from tests.capabilities import require
from tests.verify.factories import TrustKeys
from tests.verify.http_stub import GitHubStub, run_stub
from tests.verify.local_registry import (
    REGISTRY_HOST_ENV,
    registry_binary,
    running_registry,
)
from tests.verify.memory_registry import MemoryRegistry
from tests.verify.publishing import ATTESTATIONS_PATH, TEST_REGISTRY, Publisher
from tests.verify.sigstore_factory import SigstoreFactory
from tests.verify.stack import Stack
from tests.verify.stub_server import StubServer


@pytest.fixture(scope="session")
def packaged_pins() -> Pins:
    return load_pins()


@pytest.fixture
def pins(packaged_pins: Pins) -> Pins:
    """The packaged pins with the SynthOrg registry moved to the test registry."""
    synthorg = dataclasses.replace(packaged_pins.synthorg, registry=TEST_REGISTRY)
    return dataclasses.replace(packaged_pins, synthorg=synthorg)


@pytest.fixture
def sigstore(tmp_path: Path) -> SigstoreFactory:
    return SigstoreFactory(tmp_path)


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry(TEST_REGISTRY)


@pytest.fixture
def github_stub() -> Iterator[GitHubStub]:
    """A loopback stand-in for the GitHub attestations API and bundle host."""
    with run_stub() as server:
        yield server


@pytest.fixture
def attestations(github_stub: GitHubStub) -> AttestationsClient:
    return AttestationsClient(
        github_stub.base + ATTESTATIONS_PATH,
        timeout=5.0,
        allowed_bundle_hosts=("localhost",),
        token="test-token-not-a-secret",
    )


@pytest.fixture
def publish(
    registry: MemoryRegistry, sigstore: SigstoreFactory, github_stub: GitHubStub
) -> Publisher:
    return Publisher(registry, sigstore, github_stub)


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


@pytest.fixture
def stack(
    tmp_path: Path,
    publish: Publisher,
    stub: StubServer,
    github_stub: GitHubStub,
    attestations: AttestationsClient,
    trust_keys: TrustKeys,
) -> Stack:
    for name in ("backend", "web"):
        publish.release(name, "0.7.0")
    return Stack(tmp_path, publish, stub, github_stub, attestations, trust_keys)
