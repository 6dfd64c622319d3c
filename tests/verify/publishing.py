"""Publish SynthOrg stand-in images with their signatures and attestations."""

from __future__ import annotations

import json

from synthorg_tasks.verify.keyless import BUNDLE_ARTIFACT_TYPE
from tests.verify.http_stub import GitHubStub, Route
from tests.verify.memory_registry import MemoryRegistry
from tests.verify.sigstore_factory import Claims, SigstoreFactory, in_toto_statement

TEST_REGISTRY = "registry.test.invalid"
ATTESTATIONS_PATH = "/repos/Aureliolo/synthorg/attestations"
BUNDLE_LAYER_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


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
