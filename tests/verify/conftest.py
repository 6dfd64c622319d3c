"""Fixtures of the verification tests.

DHI and Rekor tests use generated trust keys, a loopback registry and Rekor
stub, and a real docker-registry process. Keyless tests use a private
Sigstore instance, an in-memory registry and a GitHub attestations stub.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from synthorg_tasks.verify.attestations import AttestationsClient
from synthorg_tasks.verify.keyless import BUNDLE_ARTIFACT_TYPE
from synthorg_tasks.verify.pins import Pins, load_pins
from tests.capabilities import require
from tests.verify.factories import TrustKeys
from tests.verify.http_stub import GitHubStub, Route, run_stub
from tests.verify.local_registry import registry_binary, running_registry
from tests.verify.memory_registry import MemoryRegistry
from tests.verify.sigstore_factory import (
    Claims,
    SigstoreFactory,
    in_toto_statement,
)
from tests.verify.stub_server import StubServer

TEST_REGISTRY = "registry.test.invalid"
ATTESTATIONS_PATH = "/repos/Aureliolo/synthorg/attestations"
BUNDLE_LAYER_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class VerifyTestConfig:
    """The config.json fields image verification reads."""

    image_tag: str = "0.7.0"
    persistence_backend: str = "sqlite"
    bus_backend: str = "internal"
    registry_host: str | None = None
    image_repo_prefix: str | None = None
    dhi_registry: str | None = None
    postgres_image_tag: str | None = None
    nats_image_tag: str | None = None
    data_init_image: str | None = None
    verified_digests: Mapping[str, str] = field(default_factory=dict)
    verified_image_tag: str | None = None


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


class Publisher:
    """Publishes SynthOrg stand-in images, signatures and attestations."""

    def __init__(
        self, registry: MemoryRegistry, sigstore: SigstoreFactory, stub: GitHubStub
    ) -> None:
        self.registry = registry
        self.sigstore = sigstore
        self.stub = stub

    def image(self, name: str, tag: str) -> str:
        return self.registry.push_image(
            f"aureliolo/synthorg-{name}", tag, f"{name}:{tag}".encode()
        )

    def signature(
        self,
        name: str,
        digest: str,
        bundle: str,
        *,
        artifact_type: str = BUNDLE_ARTIFACT_TYPE,
        manifest_artifact_type: str | None = None,
    ) -> None:
        self.registry.push_referrer(
            f"aureliolo/synthorg-{name}",
            digest,
            bundle.encode(),
            artifact_type=artifact_type,
            layer_media_type=BUNDLE_LAYER_MEDIA_TYPE,
            manifest_artifact_type=manifest_artifact_type,
        )

    def dsse_signature(
        self, name: str, digest: str, claims: Claims | None = None
    ) -> None:
        payload = in_toto_statement(
            digest.removeprefix("sha256:"),
            predicate_type="https://sigstore.dev/cosign/sign/v1",
        )
        self.signature(name, digest, self.sigstore.dsse_bundle(payload, claims=claims))

    def provenance(
        self,
        digest: str,
        bundles: list[str] | None = None,
        *,
        claims: Claims | None = None,
    ) -> None:
        if bundles is None:
            payload = in_toto_statement(digest.removeprefix("sha256:"))
            bundles = [self.sigstore.dsse_bundle(payload, claims=claims)]
        self.attestation_entries(
            digest, [{"bundle": json.loads(b), "repository_id": 1} for b in bundles]
        )

    def attestation_entries(
        self, digest: str, entries: list[dict[str, object]]
    ) -> None:
        body = json.dumps({"attestations": entries}).encode()
        self.stub.routes[f"{ATTESTATIONS_PATH}/{digest}"] = Route(
            200, body, {"Content-Type": "application/json"}
        )

    def release(self, name: str, tag: str) -> str:
        """Publish a correctly signed and attested image; return its digest."""
        digest = self.image(name, tag)
        self.dsse_signature(name, digest)
        self.provenance(digest)
        return digest


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
    """Host of a real docker-registry process on 127.0.0.1 for the session."""
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
