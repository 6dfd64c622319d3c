"""Tampering cases for DHI verification, shared by the stub and registry tests.

Each case changes one thing about an otherwise valid image and names the
step at which verification must stop and a pattern of the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synthorg_tasks.verify.pins import DhiImagePin, Pins
from tests.verify.factories import (
    DhiImage,
    DhiOptions,
    LayerOptions,
    SigningKey,
    TrustKeys,
    make_pins,
    slsa_statement,
)
from tests.verify.stub_server import StubServer

OTHER_KEY = SigningKey.generate()
OTHER_DIGEST = "sha256:" + "ab" * 32


def flip_byte(data: bytes) -> bytes:
    position = len(data) // 2
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


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
