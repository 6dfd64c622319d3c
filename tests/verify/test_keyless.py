"""Keyless verification of SynthOrg images against a private Sigstore instance."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from sigstore.errors import VerificationError as PolicyError
from sigstore.models import TrustedRoot

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.verify import keyless
from synthorg_tasks.verify.attestations import AttestationsClient
from synthorg_tasks.verify.pins import Pins
from synthorg_tasks.verify.registry import RegistryClient
from tests.verify.http_stub import GitHubStub
from tests.verify.identity_cases import POLICY_REJECTS, WORKFLOWS
from tests.verify.memory_registry import EMPTY_MEDIA_TYPE, MemoryRegistry
from tests.verify.publishing import Publisher
from tests.verify.registry_release import RegistryWriter
from tests.verify.sigstore_factory import (
    PINNED_SAN,
    Claims,
    SigstoreFactory,
    in_toto_statement,
)
from tests.verify.stub_server import StubServer


@pytest.mark.parametrize(
    ("claims", "reason"), POLICY_REJECTS.values(), ids=POLICY_REJECTS.keys()
)
def test_policy_rejects(
    sigstore: SigstoreFactory, pins: Pins, claims: Claims, reason: str
) -> None:
    cert, _ = sigstore.mint_certificate(claims, embed_sct=False)
    policy = keyless.identity_policy(pins.synthorg.identity)
    with pytest.raises(PolicyError, match=reason):
        policy.verify(cert)


POLICY_ACCEPTS = {
    "both-issuers": Claims(),
    "issuer-v2-only": Claims(issuer_v1=None),
    "issuer-v1-only": Claims(issuer_v2=None),
    "loaded-workflow": Claims(
        san_uri=WORKFLOWS + "reusable-publish-image-loaded.yml@refs/heads/main"
    ),
    "docker-workflow": Claims(san_uri=WORKFLOWS + "docker.yml@refs/heads/main"),
}


@pytest.mark.parametrize("claims", POLICY_ACCEPTS.values(), ids=POLICY_ACCEPTS.keys())
def test_policy_accepts(sigstore: SigstoreFactory, pins: Pins, claims: Claims) -> None:
    cert, _ = sigstore.mint_certificate(claims, embed_sct=False)
    keyless.identity_policy(pins.synthorg.identity).verify(cert)


# -- full pipeline for one image -------------------------------------------------


def run_image(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    name: str = "backend",
    tag: str = "0.7.0",
) -> keyless.KeylessResult:
    root = TrustedRoot.from_file(str(sigstore.trusted_root_path))
    return keyless.verify_synthorg_image(
        name,
        tag,
        pins=pins,
        registry=registry,
        verifier=keyless.build_verifier(root),
        policy=keyless.identity_policy(pins.synthorg.identity),
        attestations=attestations,
    )


def test_image_verifies_with_dsse_signature(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.release("backend", "0.7.0")
    result = run_image(pins, registry, sigstore, attestations)
    assert result.digest == digest
    assert result.checks == ("sig", "slsa")
    assert result.ref == "registry.test.invalid/aureliolo/synthorg-backend:0.7.0"


def test_image_verifies_with_message_signature(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.image("backend", "0.7.0")
    bundle = sigstore.message_bundle(digest.removeprefix("sha256:"))
    publish.signature("backend", digest, bundle)
    publish.provenance(digest)
    assert run_image(pins, registry, sigstore, attestations).digest == digest


def test_empty_typed_referrer_is_read(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.image("backend", "0.7.0")
    bundle = sigstore.message_bundle(digest.removeprefix("sha256:"))
    publish.signature(
        "backend",
        digest,
        bundle,
        artifact_type=EMPTY_MEDIA_TYPE,
        manifest_artifact_type=keyless.BUNDLE_ARTIFACT_TYPE,
    )
    publish.provenance(digest)
    assert run_image(pins, registry, sigstore, attestations).digest == digest


def test_failing_bundle_then_passing_bundle(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.image("backend", "0.7.0")
    publish.dsse_signature("backend", digest, Claims(runner_environment="self-hosted"))
    publish.dsse_signature("backend", digest)
    publish.provenance(digest)
    assert run_image(pins, registry, sigstore, attestations).digest == digest


def _tamper(bundle: str) -> str:
    document = json.loads(bundle)
    envelope = document["dsseEnvelope"]
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"] = {"tampered": True}
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps(document)


def _signature_case(case: str, publish: Publisher, digest: str) -> None:
    sigstore = publish.sigstore
    hex_digest = digest.removeprefix("sha256:")
    other = hashlib.sha256(b"another image").hexdigest()
    if case == "bundle-for-another-digest":
        publish.signature("backend", digest, sigstore.message_bundle(other))
    elif case == "wrong-dsse-payload-type":
        payload = in_toto_statement(hex_digest)
        bundle = sigstore.dsse_bundle(payload, payload_type="application/json")
        publish.signature("backend", digest, bundle)
    elif case == "subject-mismatch":
        bundle = sigstore.dsse_bundle(in_toto_statement(other))
        publish.signature("backend", digest, bundle)
    elif case == "tampered-bundle":
        bundle = _tamper(sigstore.dsse_bundle(in_toto_statement(hex_digest)))
        publish.signature("backend", digest, bundle)
    elif case == "fork-identity":
        claims = Claims(
            san_uri="https://github.com/attacker/synthorg/.github/workflows/"
            "docker.yml@refs/heads/main"
        )
        publish.dsse_signature("backend", digest, claims)
    elif case == "empty-typed-other-artifact":
        publish.signature(
            "backend",
            digest,
            sigstore.message_bundle(hex_digest),
            artifact_type=EMPTY_MEDIA_TYPE,
            manifest_artifact_type="application/vnd.example.sbom+json",
        )
    elif case == "not-a-bundle":
        publish.signature("backend", digest, '{"mediaType": "text/plain"}')
    elif case != "no-signature-referrers":
        raise AssertionError(case)


SIGNATURE_REJECTS = {
    "no-signature-referrers": "no signature bundle found for",
    "bundle-for-another-digest": "message digest mismatch",
    "wrong-dsse-payload-type": "DSSE payload type",
    "subject-mismatch": "no subject with digest",
    "tampered-bundle": "failed verification",
    "fork-identity": "does not match the pinned workflow",
    "not-a-bundle": "failed to load bundle",
    "empty-typed-other-artifact": "not a Sigstore bundle",
}


@pytest.mark.parametrize(
    ("case", "reason"), SIGNATURE_REJECTS.items(), ids=SIGNATURE_REJECTS.keys()
)
def test_signature_rejects(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
    case: str,
    reason: str,
) -> None:
    digest = publish.image("backend", "0.7.0")
    _signature_case(case, publish, digest)
    publish.provenance(digest)
    with pytest.raises(VerificationError, match=reason) as caught:
        run_image(pins, registry, sigstore, attestations)
    assert not isinstance(caught.value, TransportError)
    assert caught.value.message.startswith(
        "verifying registry.test.invalid/aureliolo/synthorg-backend:0.7.0: signature: "
    )


def test_missing_tag_fails_at_digest_step(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
) -> None:
    with pytest.raises(VerificationError, match=r"synthorg-backend:0.7.0: digest: "):
        run_image(pins, registry, sigstore, attestations)


def test_oversize_bundle_layer_is_rejected(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.image("backend", "0.7.0")
    publish.signature("backend", digest, " " * (keyless.MAX_BUNDLE_BYTES + 1))
    with pytest.raises(VerificationError, match="byte limit"):
        run_image(pins, registry, sigstore, attestations)


# -- trust root --------------------------------------------------------------------


def test_custom_trusted_root_warns_with_digest(
    sigstore: SigstoreFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sigstore.trusted_root_path
    keyless.load_trusted_root(path, tuf_fetch_timeout=1.0)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    err = capsys.readouterr().err
    assert f"WARNING: using the custom Sigstore trusted root {path}" in err
    assert expected in err


def test_unreadable_trusted_root_fails(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="cannot read the trusted root"):
        keyless.load_trusted_root(tmp_path / "absent.json", tuf_fetch_timeout=1.0)


def test_malformed_trusted_root_fails(tmp_path: Path) -> None:
    path = tmp_path / "root.json"
    path.write_text('{"mediaType": "nope"}', encoding="utf-8")
    with pytest.raises(VerificationError, match="trusted root"):
        keyless.load_trusted_root(path, tuf_fetch_timeout=1.0)


def test_tuf_refresh_is_abandoned_at_timeout(sigstore: SigstoreFactory) -> None:
    release = threading.Event()

    def stalled_refresh() -> TrustedRoot:
        release.wait(10)
        return TrustedRoot.from_file(str(sigstore.trusted_root_path))

    started = time.monotonic()
    with pytest.raises(TransportError, match=r"timed out after 0\.2s"):
        keyless.load_trusted_root(
            None, tuf_fetch_timeout=0.2, fetch_public_good=stalled_refresh
        )
    assert time.monotonic() - started < 2.0
    release.set()


def test_tuf_refresh_result_is_returned(sigstore: SigstoreFactory) -> None:
    def refresh() -> TrustedRoot:
        return TrustedRoot.from_file(str(sigstore.trusted_root_path))

    root = keyless.load_trusted_root(
        None, tuf_fetch_timeout=5.0, fetch_public_good=refresh
    )
    assert root.get_fulcio_certs()[0] == sigstore.ca_cert


def test_pinned_san_pattern_matches_factory_default(pins: Pins) -> None:
    import re

    assert re.fullmatch(pins.synthorg.identity.san_pattern, PINNED_SAN)


def test_tuf_refresh_failure_is_transport_error() -> None:
    def failing_refresh() -> TrustedRoot:
        raise TransportError("refreshing failed: connection refused")

    with pytest.raises(TransportError, match="connection refused"):
        keyless.load_trusted_root(
            None, tuf_fetch_timeout=5.0, fetch_public_good=failing_refresh
        )


@pytest.mark.parametrize(
    "referrers_api", [True, False], ids=["referrers-api", "referrers-tag"]
)
def test_image_verifies_through_registry_client(
    stub: StubServer,
    sigstore: SigstoreFactory,
    github_stub: GitHubStub,
    attestations: AttestationsClient,
    pins: Pins,
    referrers_api: bool,
) -> None:
    client = RegistryClient(stub.host, timeout=5)
    publisher = Publisher(RegistryWriter(client), sigstore, github_stub)  # type: ignore[arg-type]
    digest = publisher.release("backend", "0.7.0")
    stub.state.referrers_api = referrers_api
    stub.state.log.clear()
    local_pins = dataclasses.replace(
        pins, synthorg=dataclasses.replace(pins.synthorg, registry=stub.host)
    )
    result = run_image(local_pins, client, sigstore, attestations)  # type: ignore[arg-type]
    assert result.digest == digest
    paths = [entry[1] for entry in stub.state.log]
    referrers_tag = "sha256-" + digest.removeprefix("sha256:")
    assert any("/referrers/" in path for path in paths)
    assert any(path.endswith(referrers_tag) for path in paths) is not referrers_api
