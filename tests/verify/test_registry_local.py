"""The registry client and DHI pipeline against a real docker-registry process.

Debian's docker-registry (distribution 2.8) has no OCI referrers API, so
these tests exercise the referrers-tag fallback on a real registry, with a
valid image and with every tampering case that needs no lying registry. A
loopback stub still serves the Rekor API.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from synthorg_tasks.errors import VerificationError
from synthorg_tasks.verify.dhi import verify_dhi_image
from synthorg_tasks.verify.registry import (
    OCI_MANIFEST,
    RegistryClient,
    RegistryNotFound,
    sha256_digest,
)
from synthorg_tasks.verify.rekor import RekorClient
from tests.verify.dhi_cases import CASES, Case
from tests.verify.factories import (
    EMPTY_CONFIG,
    NOW,
    DhiImage,
    DhiOptions,
    LayerOptions,
    SigningKey,
    TrustKeys,
    build_dhi_image,
    canonical,
    descriptor,
    make_pins,
    oci_manifest,
)
from tests.verify.stub_server import StubServer

pytestmark = pytest.mark.registry


def _publish(host: str, stub: StubServer, image: DhiImage) -> RegistryClient:
    client = RegistryClient(host, timeout=10)
    image.publish(client)
    for entry in image.rekor_entries:
        stub.state.rekor_entries[entry.log_index] = entry.document
    return client


def test_local_registry_has_no_referrers_api(docker_registry: str) -> None:
    import requests

    response = requests.get(
        f"http://{docker_registry}/v2/demo/referrers/sha256:{'0' * 64}", timeout=5
    )
    assert response.status_code == 404
    assert response.headers.get("Content-Type", "").startswith("text/plain")


def test_manifest_and_blob_round_trip(docker_registry: str) -> None:
    client = RegistryClient(docker_registry, timeout=10)
    client.push_blob("roundtrip/demo", EMPTY_CONFIG)
    layer = b"layer for the local registry"
    client.push_blob("roundtrip/demo", layer)
    raw = canonical(oci_manifest([descriptor("text/plain", layer)]))
    digest = client.push_manifest("roundtrip/demo", "v1", raw, OCI_MANIFEST)

    assert client.resolve_tag("roundtrip/demo", "v1") == digest
    manifest = client.get_manifest("roundtrip/demo", digest)
    assert manifest.raw == raw
    assert manifest.media_type == OCI_MANIFEST
    assert client.get_blob("roundtrip/demo", sha256_digest(layer), max_bytes=100) == (
        layer
    )


def test_blob_cap_on_local_registry(docker_registry: str) -> None:
    client = RegistryClient(docker_registry, timeout=10)
    digest = client.push_blob("caps/demo", b"y" * 70_000)
    with pytest.raises(VerificationError, match="limit of 65536 bytes"):
        client.get_blob("caps/demo", digest, max_bytes=65_536)


def test_missing_tag_is_not_found(docker_registry: str) -> None:
    with pytest.raises(RegistryNotFound):
        RegistryClient(docker_registry).get_manifest("absent/demo", "v1")


def test_tag_fallback_matches_stub_api(
    docker_registry: str, stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(repository="agree/postgres"))
    real = RegistryClient(docker_registry, timeout=10)
    image.publish(real)
    api = RegistryClient(stub.host)
    image.publish(api, referrers_tags=False)

    for subject in (image.platform_digest, image.attestation_digest):
        from_tag = real.referrers("agree/postgres", subject)
        from_api = api.referrers("agree/postgres", subject)
        assert from_tag == from_api
        assert len(from_tag) == 1


@pytest.mark.parametrize("embed_proof", [False, True], ids=["rekor-api", "embedded"])
def test_dhi_verifies_on_local_registry(
    docker_registry: str, stub: StubServer, trust_keys: TrustKeys, embed_proof: bool
) -> None:
    options = DhiOptions(
        repository="dhi/postgres", layers=[LayerOptions(embed_proof=embed_proof)]
    )
    image = build_dhi_image(trust_keys, options)
    client = _publish(docker_registry, stub, image)
    pins = make_pins(trust_keys, {"postgres": image.pin}, registry=docker_registry)

    result = verify_dhi_image(
        "postgres",
        image.pin,
        pins=pins,
        platform="linux/amd64",
        registry=client,
        rekor_client=RekorClient(stub.url),
        clock=lambda: NOW,
    )

    assert result.index_digest == image.index_digest
    assert result.attestation_digest == image.attestation_digest
    assert result.signature_digest == image.signature_digest
    assert result.rekor_log_index == image.rekor_entries[0].log_index


def test_dhi_wrong_key_fails_on_local_registry(
    docker_registry: str, stub: StubServer, trust_keys: TrustKeys
) -> None:
    options = DhiOptions(
        repository="dhi/nats",
        tag="2.14-debian13",
        layers=[LayerOptions(signing_key=SigningKey.generate())],
    )
    image = build_dhi_image(trust_keys, options)
    client = _publish(docker_registry, stub, image)

    with pytest.raises(VerificationError) as raised:
        verify_dhi_image(
            "nats",
            image.pin,
            pins=make_pins(trust_keys, {}),
            platform="linux/amd64",
            registry=client,
            rekor_client=RekorClient(stub.url),
            clock=lambda: NOW,
        )
    message = str(raised.value)
    assert message.startswith(f"verifying {docker_registry}/dhi/nats:2.14-debian13: ")
    assert "signature: no valid DHI signature" in message


def test_pushed_index_keeps_platform_fields(
    docker_registry: str, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(repository="shape/postgres"))
    client = RegistryClient(docker_registry, timeout=10)
    image.publish(client)
    index = client.get_manifest("shape/postgres", image.index_digest)
    platforms = [entry["platform"] for entry in index.document["manifests"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64"},
    ]
    assert json.loads(index.raw) == index.document


# Cases that edit what the stub serves cannot run on a real registry, which
# always serves the bytes it stored.
REGISTRY_CASES = {name: case for name, case in CASES.items() if case.tamper is None}


@pytest.mark.parametrize("case", REGISTRY_CASES.values(), ids=REGISTRY_CASES.keys())
def test_tampered_image_fails_on_local_registry(
    docker_registry: str,
    stub: StubServer,
    trust_keys: TrustKeys,
    case: Case,
    request: pytest.FixtureRequest,
) -> None:
    repository = "tamper/" + request.node.callspec.id.lower().replace(".", "-")
    options = dataclasses.replace(case.options, repository=repository)
    image = build_dhi_image(trust_keys, options)
    client = _publish(docker_registry, stub, image)
    pins = (case.pins or (lambda keys, _image: make_pins(keys, {})))(trust_keys, image)
    pin = case.pin(image) if case.pin is not None else image.pin

    with pytest.raises(VerificationError) as raised:
        verify_dhi_image(
            "postgres",
            pin,
            pins=pins,
            platform=case.platform,
            registry=client,
            rekor_client=RekorClient(stub.url),
            clock=lambda: NOW,
        )

    message = raised.value.message
    prefix = f"verifying {docker_registry}/{repository}:18-debian13: {case.step}: "
    assert message.startswith(prefix), message
    assert re.search(case.reason, message), message
