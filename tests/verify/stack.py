"""A published SynthOrg and DHI release with everything one verification needs.

SynthOrg images live in the in-memory registry with their signatures, and
their provenance in the GitHub stub; DHI images live in the loopback registry
stub, each with an embedded Rekor inclusion proof.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from synthorg_tasks.state.config import Config
from synthorg_tasks.verify.attestations import AttestationsClient
from synthorg_tasks.verify.pins import Pins
from synthorg_tasks.verify.pipeline import (
    TrustSettings,
    VerificationOutcome,
    verify_images_with_cache,
)
from synthorg_tasks.verify.registry import RegistryClient
from synthorg_tasks.verify.rekor import RekorClient
from tests.verify.factories import (
    DhiImage,
    DhiOptions,
    LayerOptions,
    TrustKeys,
    build_dhi_image,
    make_pins,
)
from tests.verify.http_stub import GitHubStub
from tests.verify.memory_registry import MemoryRegistry
from tests.verify.publishing import TEST_REGISTRY, Publisher
from tests.verify.sigstore_factory import SigstoreFactory
from tests.verify.stub_server import StubServer


class Stack:
    """Published SynthOrg and DHI images plus everything a call needs."""

    def __init__(
        self,
        tmp_path: Path,
        publish: Publisher,
        dhi_stub: StubServer,
        github_stub: GitHubStub,
        attestations: AttestationsClient,
        trust_keys: TrustKeys,
    ) -> None:
        self.publish = publish
        self.memory: MemoryRegistry = publish.registry
        self.sigstore: SigstoreFactory = publish.sigstore
        self.dhi_stub = dhi_stub
        self.github_stub = github_stub
        self.attestations = attestations
        self.trust_keys = trust_keys
        self.dhi: dict[str, DhiImage] = {}
        for service, tag in (("postgres", "18-debian13"), ("nats", "2.14-debian13")):
            self.publish_dhi(service, tag)
        self.pins = self.make_pins()
        self.config = Config(
            data_dir=tmp_path,
            project_name="test",
            image_tag="0.7.0",
            persistence_backend="postgres",
            bus_backend="nats",
            postgres_port=3002,
            postgres_password="test-password-" + "x" * 32,
            nats_client_port=3003,
        )

    def publish_dhi(self, service: str, tag: str) -> DhiImage:
        # Each image carries its inclusion proof, because separately built
        # images may reuse log indexes in the stub's Rekor API.
        options = DhiOptions(
            repository=service, tag=tag, layers=[LayerOptions(embed_proof=True)]
        )
        image = build_dhi_image(self.trust_keys, options)
        image.publish(RegistryClient(self.dhi_stub.host, timeout=5))
        self.dhi[service] = image
        return image

    def make_pins(self) -> Pins:
        pins = make_pins(
            self.trust_keys,
            {name: image.pin for name, image in self.dhi.items()},
            registry=self.dhi_stub.host,
        )
        synthorg = dataclasses.replace(pins.synthorg, registry=TEST_REGISTRY)
        return dataclasses.replace(pins, synthorg=synthorg)

    def registry_factory(self, host: str) -> Any:
        if host == TEST_REGISTRY:
            return self.memory
        assert host == self.dhi_stub.host
        return RegistryClient(host, timeout=5)

    def run(self, config: Config | None = None, **kwargs: Any) -> VerificationOutcome:
        arguments: dict[str, Any] = {
            "target_tag": "0.7.0",
            "platform": "linux/amd64",
            "trust": TrustSettings(
                trusted_root_path=self.sigstore.trusted_root_path, dhi_timeout=30
            ),
            "registry_factory": self.registry_factory,
            "deadline": 60.0,
            "rekor_client": RekorClient(self.dhi_stub.url, timeout=5),
            "attestations_client": self.attestations,
            **kwargs,
        }
        return verify_images_with_cache(config or self.config, self.pins, **arguments)

    def request_count(self) -> int:
        return (
            len(self.memory.requests)
            + len(self.dhi_stub.state.log)
            + len(self.github_stub.requests)
        )

    def saved(self, outcome: VerificationOutcome) -> Config:
        return self.config.replace(
            verified_digests=outcome.verified_digests,
            verified_image_tag=outcome.verified_image_tag,
        )
