"""DHI verification against a loopback registry and Rekor stub, offline.

Each tampering case changes one thing about an otherwise valid image and
must fail closed with a message naming the image and the failed step.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify.dhi import DhiResult, verify_dhi_image
from synthorg_tasks.verify.pins import DhiImagePin, Pins
from synthorg_tasks.verify.registry import RegistryClient
from synthorg_tasks.verify.rekor import RekorClient
from tests.verify.factories import (
    NOW,
    DhiImage,
    DhiOptions,
    LayerOptions,
    SigningKey,
    TrustKeys,
    build_dhi_image,
    make_pins,
    slsa_statement,
)
from tests.verify.stub_server import StubServer

OTHER_KEY = SigningKey.generate()
OTHER_DIGEST = "sha256:" + "ab" * 32


def flip_byte(data: bytes) -> bytes:
    position = len(data) // 2
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def publish(stub: StubServer, image: DhiImage) -> RegistryClient:
    client = RegistryClient(stub.host, timeout=5)
    image.publish(client)
    for entry in image.rekor_entries:
        stub.state.rekor_entries[entry.log_index] = entry.document
    return client


def verify(
    stub: StubServer,
    image: DhiImage,
    pins: Pins,
    *,
    pin: DhiImagePin | None = None,
    platform: str = "linux/amd64",
    rekor_url: str | None = None,
) -> DhiResult:
    return verify_dhi_image(
        "postgres",
        pin or image.pin,
        pins=pins,
        platform=platform,
        registry=RegistryClient(stub.host, timeout=5),
        rekor_client=RekorClient(rekor_url or stub.url, timeout=5),
        clock=lambda: NOW,
    )


# -- passing images ----------------------------------------------------------


@pytest.mark.parametrize("referrers_api", [True, False], ids=["api", "tag-fallback"])
@pytest.mark.parametrize("embed_proof", [False, True], ids=["rekor-api", "embedded"])
def test_valid_image_verifies(
    stub: StubServer, trust_keys: TrustKeys, referrers_api: bool, embed_proof: bool
) -> None:
    image = build_dhi_image(
        trust_keys, DhiOptions(layers=[LayerOptions(embed_proof=embed_proof)])
    )
    publish(stub, image)
    stub.state.referrers_api = referrers_api
    result = verify(stub, image, make_pins(trust_keys, {"postgres": image.pin}))
    assert result.index_digest == image.index_digest
    assert result.platform == "linux/amd64"
    assert result.platform_digest == image.platform_digest
    assert result.attestation_digest == image.attestation_digest
    assert result.signature_digest == image.signature_digest
    assert result.rekor_log_index == image.rekor_entries[0].log_index
    assert result.ref == f"{stub.host}/postgres:18-debian13"


def test_embedded_proof_needs_no_log_api(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(
        trust_keys, DhiOptions(layers=[LayerOptions(embed_proof=True)])
    )
    publish(stub, image)
    stub.state.rekor_entries.clear()
    result = verify(
        stub, image, make_pins(trust_keys, {}), rekor_url="http://127.0.0.1:9"
    )
    assert result.rekor_log_index == image.rekor_entries[0].log_index


def test_second_platform_is_chosen(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(target_platform="linux/arm64"))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm64")
    assert result.platform_digest == image.platform_digest


def test_platform_variant_is_matched(stub: StubServer, trust_keys: TrustKeys) -> None:
    options = DhiOptions(
        platforms=("linux/arm/v6", "linux/arm/v7"), target_platform="linux/arm/v7"
    )
    image = build_dhi_image(trust_keys, options)
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm/v7")
    assert result.platform_digest == image.platform_digest
    with pytest.raises(VerificationError, match="no linux/arm/v5 manifest"):
        verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm/v5")


def test_invalid_first_layer_valid_second_passes(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    layers = [LayerOptions(signing_key=OTHER_KEY), LayerOptions()]
    image = build_dhi_image(trust_keys, DhiOptions(layers=layers))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.rekor_log_index == image.rekor_entries[1].log_index


def test_dsse_attestation_layer_verifies(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(dsse=True))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.attestation_digest == image.attestation_digest


def test_invalid_first_attestation_valid_second_passes(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(decoy_attestation=True))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.attestation_digest == image.attestation_digest


def test_all_attestations_invalid_lists_each(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    options = DhiOptions(
        decoy_attestation=True, layers=[LayerOptions(signing_key=OTHER_KEY)]
    )
    image = build_dhi_image(trust_keys, options)
    publish(stub, image)
    with pytest.raises(VerificationError) as raised:
        verify(stub, image, make_pins(trust_keys, {}))
    message = raised.value.message
    assert message.startswith(
        f"verifying {stub.host}/postgres:18-debian13: attestation: none of the 2 "
        "SLSA v1 attestations passed: "
    )
    assert "attestation: predicateType 'https://slsa.dev/provenance/v0.2'" in message
    assert f"{image.attestation_digest}: signature: no valid DHI signature" in message


def test_pinned_builder_id_matches(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    pins = make_pins(trust_keys, {}, builder_ids=("https://dhi.docker.com/builder",))
    assert verify(stub, image, pins).attestation_digest == image.attestation_digest


def test_moved_tag_verifies_pinned_index(
    stub: StubServer, trust_keys: TrustKeys, caplog: pytest.LogCaptureFixture
) -> None:
    old = build_dhi_image(trust_keys)
    publish(stub, old)
    publish(stub, build_dhi_image(trust_keys))
    with caplog.at_level("INFO", logger="synthorg.verify.dhi"):
        result = verify(stub, old, make_pins(trust_keys, {}))
    assert result.index_digest == old.index_digest
    assert "now names" in caplog.text


# -- tampering cases ---------------------------------------------------------


@dataclass
class Case:
    """One change to a valid image, and where verification must stop."""

    step: str
    reason: str
    options: DhiOptions = field(default_factory=DhiOptions)
    referrers_api: bool = True
    tamper: Callable[[StubServer, DhiImage], None] | None = None
    pins: Callable[[TrustKeys, DhiImage], Pins] | None = None
    pin: Callable[[DhiImage], DhiImagePin] | None = None
    platform: str = "linux/amd64"


def layer_case(reason: str, step: str = "Rekor", **layer: Any) -> Case:
    return Case(
        step="signature",
        reason=rf"{step}: .*{reason}",
        options=DhiOptions(layers=[LayerOptions(**layer)]),
    )


def _mutate_proof(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    return {"proof_mutator": change}


def _flip_sibling(proof: dict[str, Any]) -> None:
    proof["hashes"][0] = flip_byte(bytes.fromhex(proof["hashes"][0])).hex()


def _shift_index(proof: dict[str, Any]) -> None:
    proof["logIndex"] += 1


def _grow_size(proof: dict[str, Any]) -> None:
    proof["treeSize"] += 1


def _corrupt_payload(stub: StubServer, image: DhiImage) -> None:
    payload_digest = "sha256:" + hashlib.sha256(image.blobs[-1]).hexdigest()
    stub.state.corrupt[f"/v2/postgres/blobs/{payload_digest}"] = flip_byte(
        image.blobs[-1]
    )


def _corrupt_index(stub: StubServer, image: DhiImage) -> None:
    raw = next(raw for ref, raw, _ in image.manifests if ref == image.options.tag)
    stub.state.corrupt[f"/v2/postgres/manifests/{image.index_digest}"] = raw.replace(
        b'"schemaVersion":2', b'"schemaVersion": 2'
    )


def _fingerprint_mismatch(keys: TrustKeys, image: DhiImage) -> Pins:
    return make_pins(keys, {}, fingerprint=hashlib.sha256(b"other").hexdigest())


def _other_key_pinned(keys: TrustKeys, image: DhiImage) -> Pins:
    # The pin names another key while keeping the real key's fingerprint.
    pins = make_pins(keys, {})
    dhi = dataclasses.replace(pins.dhi, public_key_pem=OTHER_KEY.public_pem)
    return dataclasses.replace(pins, dhi=dhi)


def _other_builder(keys: TrustKeys, image: DhiImage) -> Pins:
    return make_pins(keys, {}, builder_ids=("https://example.test/other-builder",))


CASES: dict[str, Case] = {
    "flipped-payload-byte": layer_case(
        "does not verify", step="signature", payload_mutator=flip_byte
    ),
    "payload-digest-not-attestation": layer_case(
        "not the attestation", step="signature", signed_digest=OTHER_DIGEST
    ),
    "signature-on-index-digest": layer_case(
        "not the attestation", step="signature", signs="index"
    ),
    "signature-on-platform-digest": layer_case(
        "not the attestation", step="signature", signs="platform"
    ),
    "wrong-signing-key": layer_case(
        "does not verify", step="signature", signing_key=OTHER_KEY
    ),
    "wrong-signature-type": layer_case(
        "critical.type 'cosign sbom' is not",
        step="signature",
        signature_type="cosign sbom",
    ),
    "payload-over-64-kib": layer_case(
        "exceed the limit of 65536 bytes", step="signature", payload_padding=65_536
    ),
    "layer-not-simple-signing": layer_case(
        "is not application/vnd.dev.cosign.simplesigning.v1",
        step="signature",
        media_type="application/octet-stream",
    ),
    "api-integrated-time-differs": layer_case(
        "Rekor API entry: integratedTime differs",
        api_overrides={"integratedTime": 1_700_000_000},
    ),
    "api-log-id-differs": layer_case(
        "Rekor API entry: logID differs", api_overrides={"logID": "0" * 64}
    ),
    "fingerprint-mismatch": Case(
        step="key", reason="fingerprint", pins=_fingerprint_mismatch
    ),
    "key-differs-from-fingerprint": Case(
        step="key", reason="fingerprint", pins=_other_key_pinned
    ),
    "set-by-other-key": layer_case("Rekor SET does not verify", set_key=OTHER_KEY),
    "set-integrated-time-changed": layer_case(
        "Rekor SET does not verify", integrated_time_shift=1
    ),
    "set-integrated-time-changed-embedded": layer_case(
        "Rekor SET does not verify", integrated_time_shift=-60, embed_proof=True
    ),
    "unknown-log-id": layer_case("unknown log id", set_log_id=secrets.token_hex(32)),
    "body-other-key": layer_case(
        "logged public key", body_public_pem=OTHER_KEY.public_pem
    ),
    "body-other-hash": layer_case("logged data hash", body_hash="00" * 32),
    "body-other-signature": layer_case(
        "logged signature differs", body_signature=OTHER_KEY.sign(b"x")
    ),
    "missing-rekor-bundle": layer_case(
        "dev.sigstore.cosign/bundle is missing", include_bundle=False
    ),
    "proof-wrong-sibling": layer_case(
        "inclusion proof", **_mutate_proof(_flip_sibling)
    ),
    "proof-wrong-index": layer_case("inclusion proof", **_mutate_proof(_shift_index)),
    "proof-wrong-size": layer_case(
        "(inclusion proof|checkpoint: tree size)", **_mutate_proof(_grow_size)
    ),
    "checkpoint-other-key": layer_case(
        "checkpoint: signature does not verify", checkpoint_key=OTHER_KEY
    ),
    "checkpoint-other-root": layer_case(
        "checkpoint: root hash differs", checkpoint_root=secrets.token_bytes(32)
    ),
    "checkpoint-other-tree-size": layer_case(
        "checkpoint: tree size", checkpoint_size=10_000
    ),
    "api-body-differs-from-set": layer_case(
        "Rekor API entry: body differs", api_body=b'{"kind":"hashedrekord"}'
    ),
    "all-layers-invalid": Case(
        step="signature",
        reason="no valid DHI signature: .*layer 0.*layer 1",
        options=DhiOptions(
            layers=[
                LayerOptions(signing_key=OTHER_KEY),
                LayerOptions(include_bundle=False),
            ]
        ),
    ),
    "attestation-subject-not-platform": Case(
        step="attestation",
        reason="subject .* is not the platform manifest",
        options=DhiOptions(attestation_subject=OTHER_DIGEST),
        referrers_api=False,
    ),
    "signature-subject-not-attestation": Case(
        step="signature lookup",
        reason="subject sha256:abab.* is not the attestation",
        options=DhiOptions(signature_subject=OTHER_DIGEST),
        referrers_api=False,
    ),
    "statement-subject-not-platform": Case(
        step="attestation",
        reason="no statement subject has the platform digest",
        options=DhiOptions(statement=lambda _digest: slsa_statement(OTHER_DIGEST)),
    ),
    "predicate-type-v0.2": Case(
        step="attestation",
        reason="predicateType .*v0.2",
        options=DhiOptions(
            statement=lambda digest: slsa_statement(
                digest, predicateType="https://slsa.dev/provenance/v0.2"
            )
        ),
    ),
    "predicate-annotation-v0.2": Case(
        step="attestation lookup",
        reason="no SLSA v1 attestation referrer",
        options=DhiOptions(predicate_annotation="https://slsa.dev/provenance/v0.2"),
    ),
    "dsse-wrong-payload-type": Case(
        step="attestation",
        reason="payloadType is not application/vnd.in-toto",
        options=DhiOptions(dsse=True, dsse_payload_type="text/plain"),
    ),
    "unknown-statement-type": Case(
        step="attestation",
        reason="statement _type",
        options=DhiOptions(
            statement=lambda digest: slsa_statement(
                digest, _type="https://in-toto.io/Statement/v9"
            )
        ),
    ),
    "builder-id-not-pinned": Case(
        step="attestation", reason="builder id", pins=_other_builder
    ),
    "payload-bytes-not-digest": Case(
        step="signature",
        reason="hash to sha256:.*not to the requested digest",
        tamper=_corrupt_payload,
    ),
    "index-bytes-not-digest": Case(
        step="index",
        reason="hash to sha256:.*not to the requested digest",
        tamper=_corrupt_index,
    ),
    "index-digest-not-pin": Case(
        step="index",
        reason="not found",
        pin=lambda image: dataclasses.replace(image.pin, index_digest=OTHER_DIGEST),
    ),
    "missing-platform": Case(
        step="index", reason="no linux/s390x manifest", platform="linux/s390x"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_tampered_image_fails_closed(
    stub: StubServer, trust_keys: TrustKeys, case: Case
) -> None:
    image = build_dhi_image(trust_keys, case.options)
    publish(stub, image)
    stub.state.referrers_api = case.referrers_api
    if case.tamper is not None:
        case.tamper(stub, image)
    pins = (case.pins or (lambda keys, _image: make_pins(keys, {})))(trust_keys, image)
    pin = case.pin(image) if case.pin is not None else None

    with pytest.raises(VerificationError) as raised:
        verify(stub, image, pins, pin=pin, platform=case.platform)

    message = raised.value.message
    prefix = f"verifying {stub.host}/postgres:18-debian13: {case.step}: "
    assert message.startswith(prefix), message
    assert re.search(case.reason, message), message
    assert not isinstance(raised.value, TransportError)
    assert AIR_GAPPED_HINT not in raised.value.hints


# -- access and transport failures -------------------------------------------


def test_login_refused_names_docker_login(
    stub: StubServer,
    trust_keys: TrustKeys,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.token_auth = True
    stub.state.credentials = ("user", "secret-password")

    with pytest.raises(VerificationError) as raised:
        verify(stub, image, make_pins(trust_keys, {}))

    assert f"refused anonymous access; run: docker login {stub.host}" in str(
        raised.value
    )
    assert ": login: " in str(raised.value)
    assert AIR_GAPPED_HINT not in raised.value.hints


def test_login_with_docker_credentials_verifies(
    stub: StubServer,
    trust_keys: TrustKeys,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    auth = base64.b64encode(b"user:secret-password").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {stub.host: {"auth": auth}}}), encoding="utf-8"
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.token_auth = True
    stub.state.credentials = ("user", "secret-password")

    result = verify(stub, image, make_pins(trust_keys, {}))

    assert result.signature_digest == image.signature_digest
    token_requests = [
        path for _m, path, _a in stub.state.log if path.startswith("/token")
    ]
    assert len(token_requests) == 1


def test_unreachable_registry_has_air_gapped_hint(trust_keys: TrustKeys) -> None:
    pin = DhiImagePin("postgres", "18-debian13", OTHER_DIGEST)
    with pytest.raises(TransportError) as raised:
        verify_dhi_image(
            "postgres",
            pin,
            pins=make_pins(trust_keys, {}),
            platform="linux/amd64",
            registry=RegistryClient("127.0.0.1:9", timeout=2),
            clock=lambda: NOW,
        )
    assert "127.0.0.1:9 unreachable" in str(raised.value)
    assert raised.value.hints.count(AIR_GAPPED_HINT) == 1


def test_unreachable_rekor_api_has_air_gapped_hint(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    with pytest.raises(TransportError) as raised:
        verify(stub, image, make_pins(trust_keys, {}), rekor_url="http://127.0.0.1:9")
    assert str(raised.value).startswith(f"verifying {stub.host}/postgres:18-debian13: ")
    assert raised.value.hints.count(AIR_GAPPED_HINT) == 1


def test_rekor_entry_missing_from_log(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    stub.state.rekor_entries.clear()
    with pytest.raises(VerificationError, match="the log has no such entry"):
        verify(stub, image, make_pins(trust_keys, {}))


def test_platform_must_name_os_and_arch(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    with pytest.raises(ValueError, match="os/arch"):
        verify(stub, image, make_pins(trust_keys, {}), platform="amd64")
