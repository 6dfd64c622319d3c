"""Verification of Docker Hardened Images (DHI) before they are pulled.

A DHI image is trusted when its SLSA v1 provenance attestation carries a
cosign signature made with the pinned DHI key and logged in Rekor. The steps
below run in this order, each in its own function, and each raises
:class:`VerificationError` (or :class:`TransportError`) on failure, so a
caller can never mistake a failed check for a pass:

(0) key: the pinned DHI key is ECDSA P-256 and matches its pinned fingerprint.
(1) login: ``HEAD`` of ``<registry>/<repository>:<tag>``, which also shows
    whether the registry accepts the host's credentials.
(2) index: the index fetched by its pinned digest (hash-checked) and the
    manifest of the engine's platform chosen from it.
(3) attestation lookup: referrers of the platform manifest annotated with the
    SLSA v1 predicate type. Candidates are tried in order and the first that
    passes steps 4 to 7 wins.
(4) attestation: its subject is the platform manifest, and its first layer is
    an in-toto Statement about that manifest with an SLSA v1 predicate.
(5) signature lookup: cosign signature manifests whose subject is the
    attestation.
(6) signature: per layer, the simple-signing payload names the attestation and
    its signature verifies with the DHI key.
(7) Rekor: the layer's Rekor bundle proves that exactly this signature was
    logged. A layer passes only with steps 6 and 7, and the first passing
    layer wins.
(8) result: the digests found and the Rekor log index.

Failures read ``verifying <ref>: <step>: <reason>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify._crypto import (
    load_p256_pem,
    spki_der,
    verify_ecdsa_sha256,
)
from synthorg_tasks.verify.pins import pem_fingerprint
from synthorg_tasks.verify.registry import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Descriptor,
    Manifest,
    RegistryAuthError,
    RegistryClient,
)
from synthorg_tasks.verify.rekor import RekorClient, verify_log_entry

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from synthorg_tasks.verify.pins import DhiImagePin, DhiPins, Pins

__all__ = [
    "BUNDLE_ANNOTATION",
    "COSIGN_SIGNATURE_ARTIFACT",
    "IN_TOTO_STATEMENT_TYPES",
    "PREDICATE_TYPE_ANNOTATION",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "SLSA_PROVENANCE_V1",
    "DhiResult",
    "verify_dhi_image",
]

_logger = logging.getLogger("synthorg.verify.dhi")

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
IN_TOTO_STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"}
)
IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"

# NOTE: 16 MiB for an attestation layer is an estimate of the largest SLSA
# provenance document; signature payloads are small JSON documents.
MAX_ATTESTATION_LAYER_BYTES = 16 * 1024 * 1024
MAX_SIGNATURE_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class DhiResult:
    """The digests that a successful DHI verification established."""

    name: str
    ref: str
    index_digest: str
    platform: str
    platform_digest: str
    attestation_digest: str
    signature_digest: str
    rekor_log_index: int


class _CandidateFailed(Exception):
    """One attestation candidate, signature manifest or layer failed a step."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class _Signer:
    """The key, digest and log settings that steps 6 and 7 check a layer against."""

    registry: RegistryClient
    repository: str
    key: EllipticCurvePublicKey
    attestation_digest: str
    pins: Pins
    rekor_client: RekorClient | None
    now: datetime


def _prefixed(exc: VerificationError, prefix: str) -> VerificationError:
    """Return a copy of ``exc`` whose message starts with ``prefix``."""
    if isinstance(exc, TransportError):
        # TransportError adds the air-gapped hint again.
        hints = [hint for hint in exc.hints if hint != AIR_GAPPED_HINT]
        return TransportError(prefix + exc.message, hints=hints)
    return VerificationError(prefix + exc.message, hints=exc.hints)


@contextmanager
def _step(ref: str, step: str) -> Iterator[None]:
    """Prefix every verification failure inside the block with ref and step."""
    try:
        yield
    except VerificationError as exc:
        raise _prefixed(exc, f"verifying {ref}: {step}: ") from exc


@contextmanager
def _candidate(step: str) -> Iterator[None]:
    """Turn a verification failure into a failure of the current candidate.

    A network failure is not a bad candidate, so it aborts the whole run.
    """
    try:
        yield
    except TransportError as exc:
        raise _prefixed(exc, f"{step}: ") from exc
    except VerificationError as exc:
        raise _CandidateFailed(step, exc.message) from exc


# (0) key ----------------------------------------------------------------------


def _step0_key(dhi: DhiPins) -> EllipticCurvePublicKey:
    key = load_p256_pem(dhi.public_key_pem.encode("ascii"), "the pinned DHI key")
    fingerprint = pem_fingerprint(dhi.public_key_pem)
    if fingerprint != dhi.public_key_fingerprint:
        raise VerificationError(
            f"the pinned DHI key has SHA-256 fingerprint {fingerprint}, "
            f"not the pinned {dhi.public_key_fingerprint}",
            hints=["restore config/pins.toml or run 'invoke pins.check'"],
        )
    return key


# (1) login --------------------------------------------------------------------


def _step1_login(registry: RegistryClient, pin: DhiImagePin) -> str:
    """Return the digest the tag names now; 401/403 means credentials are needed."""
    try:
        return registry.resolve_tag(pin.repository, pin.tag)
    except RegistryAuthError as exc:
        raise VerificationError(
            f"{registry.host} refused anonymous access; run: docker login "
            f"{registry.host}"
        ) from exc
    except TransportError as exc:
        raise TransportError(f"{registry.host} unreachable: {exc.message}") from exc


# (2) index --------------------------------------------------------------------


def _platform_matches(descriptor: Descriptor, platform: str) -> bool:
    wanted = platform.split("/")
    found = descriptor.platform or {}
    if found.get("os") != wanted[0] or found.get("architecture") != wanted[1]:
        return False
    return len(wanted) < 3 or found.get("variant") == wanted[2]


def _step2_index(
    registry: RegistryClient, pin: DhiImagePin, platform: str, tag_digest: str
) -> Descriptor:
    index = registry.get_manifest(pin.repository, pin.index_digest)
    if index.media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        raise VerificationError(
            f"{pin.index_digest} is a {index.media_type!r}, not an image index"
        )
    if tag_digest != pin.index_digest:
        _logger.info(
            "tag %s:%s now names %s; verifying the pinned %s",
            pin.repository,
            pin.tag,
            tag_digest,
            pin.index_digest,
        )
    manifests = index.document.get("manifests")
    if not isinstance(manifests, list):
        raise VerificationError("the index has no 'manifests' list")
    for position, entry in enumerate(manifests):
        descriptor = Descriptor.from_json(entry, f"index entry {position}")
        if _platform_matches(descriptor, platform):
            return descriptor
    raise VerificationError(f"no {platform} manifest in the index")


# (3) attestation lookup -------------------------------------------------------


def _step3_attestation_candidates(
    registry: RegistryClient, repository: str, platform_digest: str
) -> list[Descriptor]:
    candidates = [
        descriptor
        for descriptor in registry.referrers(repository, platform_digest)
        if descriptor.annotations.get(PREDICATE_TYPE_ANNOTATION) == SLSA_PROVENANCE_V1
    ]
    if not candidates:
        raise VerificationError(
            f"no SLSA v1 attestation referrer for {platform_digest}"
        )
    return candidates


# (4) attestation --------------------------------------------------------------


def _subject_digest(manifest: Manifest) -> str | None:
    subject = manifest.document.get("subject")
    if not isinstance(subject, dict):
        return None
    digest = subject.get("digest")
    return digest if isinstance(digest, str) else None


def _statement_bytes(layer: bytes, media_type: str) -> bytes:
    """Return the in-toto Statement of an attestation layer, unwrapping DSSE."""
    if media_type == IN_TOTO_MEDIA_TYPE:
        return layer
    try:
        envelope = json.loads(layer)
    except ValueError as exc:
        raise VerificationError("the DSSE envelope is not valid JSON") from exc
    if not isinstance(envelope, dict) or envelope.get("payloadType") != (
        IN_TOTO_MEDIA_TYPE
    ):
        raise VerificationError(
            f"the DSSE envelope's payloadType is not {IN_TOTO_MEDIA_TYPE}"
        )
    try:
        return base64.b64decode(envelope.get("payload", ""), validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise VerificationError("the DSSE payload is not valid base64") from exc


def _check_statement(
    raw: bytes, platform_digest: str, builder_ids: tuple[str, ...]
) -> None:
    try:
        statement = json.loads(raw)
    except ValueError as exc:
        raise VerificationError("the in-toto Statement is not valid JSON") from exc
    if not isinstance(statement, dict):
        raise VerificationError("the in-toto Statement is not a JSON object")
    statement_type = statement.get("_type")
    if statement_type not in IN_TOTO_STATEMENT_TYPES:
        raise VerificationError(
            f"statement _type {statement_type!r} is not an in-toto Statement v0.1 or v1"
        )
    predicate_type = statement.get("predicateType")
    if predicate_type != SLSA_PROVENANCE_V1:
        raise VerificationError(
            f"predicateType {predicate_type!r} is not {SLSA_PROVENANCE_V1}"
        )
    subjects = statement.get("subject")
    wanted = platform_digest.removeprefix("sha256:")
    if not isinstance(subjects, list) or not any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == wanted
        for s in subjects
    ):
        raise VerificationError(
            f"no statement subject has the platform digest {platform_digest}"
        )
    if builder_ids:
        builder_id = _builder_id(statement.get("predicate"))
        if builder_id not in builder_ids:
            raise VerificationError(
                f"builder id {builder_id!r} is not one of the pinned builder ids"
            )


def _builder_id(predicate: Any) -> str | None:
    if not isinstance(predicate, dict):
        return None
    run_details = predicate.get("runDetails")
    builder = run_details.get("builder") if isinstance(run_details, dict) else None
    builder_id = builder.get("id") if isinstance(builder, dict) else None
    return builder_id if isinstance(builder_id, str) else None


def _step4_attestation(
    registry: RegistryClient,
    repository: str,
    candidate: Descriptor,
    platform_digest: str,
    builder_ids: tuple[str, ...],
) -> Manifest:
    manifest = registry.get_manifest(repository, candidate.digest)
    if _subject_digest(manifest) != platform_digest:
        raise VerificationError(
            f"the attestation's subject {_subject_digest(manifest)} is not the "
            f"platform manifest {platform_digest}"
        )
    layers = manifest.document.get("layers")
    if not isinstance(layers, list) or not layers:
        raise VerificationError("the attestation manifest has no layers")
    layer = Descriptor.from_json(layers[0], "attestation layer 0")
    if layer.media_type not in (IN_TOTO_MEDIA_TYPE, DSSE_MEDIA_TYPE):
        raise VerificationError(
            f"the first attestation layer is a {layer.media_type!r}, not in-toto "
            f"or DSSE"
        )
    blob = registry.get_blob(
        repository, layer.digest, max_bytes=MAX_ATTESTATION_LAYER_BYTES
    )
    _check_statement(
        _statement_bytes(blob, layer.media_type), platform_digest, builder_ids
    )
    return manifest


# (5) signature lookup ---------------------------------------------------------


def _step5_signature_manifests(
    registry: RegistryClient, repository: str, attestation_digest: str
) -> list[Manifest]:
    found = registry.referrers(
        repository, attestation_digest, artifact_type=COSIGN_SIGNATURE_ARTIFACT
    )
    if not found:
        raise VerificationError(
            f"no cosign signature referrer for the attestation {attestation_digest}"
        )
    manifests: list[Manifest] = []
    reasons: list[str] = []
    for descriptor in found:
        manifest = registry.get_manifest(repository, descriptor.digest)
        if _subject_digest(manifest) != attestation_digest:
            reasons.append(
                f"{descriptor.digest}: subject {_subject_digest(manifest)} is not "
                f"the attestation"
            )
            continue
        manifests.append(manifest)
    if not manifests:
        raise VerificationError("; ".join(reasons))
    return manifests


# (6) signature ----------------------------------------------------------------


def _step6_signature_layer(signer: _Signer, layer: Descriptor) -> tuple[bytes, bytes]:
    """Return the payload and signature bytes of a layer that verifies."""
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
        raise VerificationError(
            f"media type {layer.media_type!r} is not {SIMPLE_SIGNING_MEDIA_TYPE}"
        )
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
    if encoded is None:
        raise VerificationError(f"annotation {SIGNATURE_ANNOTATION} is missing")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(
            f"annotation {SIGNATURE_ANNOTATION} is not base64"
        ) from exc

    payload = signer.registry.get_blob(
        signer.repository, layer.digest, max_bytes=MAX_SIGNATURE_PAYLOAD_BYTES
    )
    # The signature covers the stored bytes; they are never re-serialised.
    verify_ecdsa_sha256(
        signer.key, signature, payload, "the signature with the DHI key"
    )
    try:
        document = json.loads(payload)
        critical = document["critical"]
        signed_type = critical["type"]
        signed_digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            "the simple-signing payload lacks critical.type or "
            "critical.image.docker-manifest-digest"
        ) from exc

    if signed_type != COSIGN_SIGNATURE_TYPE:
        raise VerificationError(
            f"critical.type {signed_type!r} is not {COSIGN_SIGNATURE_TYPE!r}"
        )
    if signed_digest != signer.attestation_digest:
        raise VerificationError(
            f"the payload signs {signed_digest}, not the attestation "
            f"{signer.attestation_digest}"
        )
    return payload, signature


# (7) Rekor --------------------------------------------------------------------


def _step7_rekor(
    signer: _Signer, layer: Descriptor, payload: bytes, signature: bytes
) -> int:
    bundle = layer.annotations.get(BUNDLE_ANNOTATION)
    if bundle is None:
        raise VerificationError(f"annotation {BUNDLE_ANNOTATION} is missing")
    return verify_log_entry(
        bundle,
        payload=payload,
        signature=signature,
        signer_spki=spki_der(signer.key),
        rekor=signer.pins.rekor,
        client=signer.rekor_client,
        now=signer.now,
    )


def _verify_signature_layers(
    signer: _Signer, manifests: list[Manifest]
) -> tuple[str, int]:
    """Return the signature manifest digest and log index of the first good layer."""
    reasons: list[str] = []
    for manifest in manifests:
        layers = manifest.document.get("layers")
        if not isinstance(layers, list) or not layers:
            reasons.append(f"{manifest.digest}: no layers")
            continue
        for position, entry in enumerate(layers):
            label = f"{manifest.digest} layer {position}"
            try:
                layer = Descriptor.from_json(entry, label)
                with _candidate("signature"):
                    payload, signature = _step6_signature_layer(signer, layer)
                with _candidate("Rekor"):
                    log_index = _step7_rekor(signer, layer, payload, signature)
            except _CandidateFailed as exc:
                _logger.debug("%s failed: %s", label, exc)
                reasons.append(f"{label}: {exc}")
                continue
            except TransportError:
                raise
            except VerificationError as exc:
                reasons.append(f"{label}: {exc.message}")
                continue
            return manifest.digest, log_index
    raise _CandidateFailed("signature", "no valid DHI signature: " + "; ".join(reasons))


def _verify_candidate(
    registry: RegistryClient,
    pin: DhiImagePin,
    candidate: Descriptor,
    platform_digest: str,
    key: EllipticCurvePublicKey,
    pins: Pins,
    rekor_client: RekorClient | None,
    now: datetime,
) -> tuple[str, str, int]:
    """Run steps 4 to 7 on one attestation candidate.

    Returns the attestation digest, the signature manifest digest and the
    Rekor log index, or raises :class:`_CandidateFailed`.
    """
    with _candidate("attestation"):
        attestation = _step4_attestation(
            registry, pin.repository, candidate, platform_digest, pins.dhi.builder_ids
        )
    with _candidate("signature lookup"):
        manifests = _step5_signature_manifests(
            registry, pin.repository, attestation.digest
        )
    signer = _Signer(
        registry=registry,
        repository=pin.repository,
        key=key,
        attestation_digest=attestation.digest,
        pins=pins,
        rekor_client=rekor_client,
        now=now,
    )
    signature_digest, log_index = _verify_signature_layers(signer, manifests)
    return attestation.digest, signature_digest, log_index


def _no_candidate_passed(
    ref: str, failures: list[tuple[str, _CandidateFailed]]
) -> VerificationError:
    if len(failures) == 1:
        return VerificationError(f"verifying {ref}: {failures[0][1]}")
    joined = "; ".join(f"{digest}: {failure}" for digest, failure in failures)
    return VerificationError(
        f"verifying {ref}: attestation: none of the {len(failures)} SLSA v1 "
        f"attestations passed: {joined}"
    )


# (8) result and the public entry point -------------------------------------------


def verify_dhi_image(
    name: str,
    pin: DhiImagePin,
    *,
    pins: Pins,
    platform: str,
    registry: RegistryClient,
    rekor_client: RekorClient | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DhiResult:
    """Verify one DHI image at its pinned index digest, or raise.

    ``platform`` is the engine's ``os/arch[/variant]``; ``registry`` is a
    client for the DHI registry host. ``rekor_client`` defaults to the pinned
    Rekor URL; ``clock`` returns an aware "now" and defaults to the system
    clock. Raises :class:`VerificationError`, or :class:`TransportError` for
    network failures.
    """
    ref = f"{registry.host}/{pin.repository}:{pin.tag}"
    if len(platform.split("/")) not in (2, 3):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    now = (clock or (lambda: datetime.now(timezone.utc)))()
    if rekor_client is None:
        rekor_client = RekorClient(pins.rekor.url, timeout=registry.timeout)

    # (0) The pinned key, before any request.
    with _step(ref, "key"):
        key = _step0_key(pins.dhi)
    # (1) Login: fails early, with the docker login hint, when access is denied.
    with _step(ref, "login"):
        tag_digest = _step1_login(registry, pin)
    # (2) The pinned index and the engine's platform manifest in it.
    with _step(ref, "index"):
        platform_descriptor = _step2_index(registry, pin, platform, tag_digest)
    platform_digest = platform_descriptor.digest
    # (3) SLSA v1 attestation candidates of that manifest.
    with _step(ref, "attestation lookup"):
        candidates = _step3_attestation_candidates(
            registry, pin.repository, platform_digest
        )

    # (4)-(7) per candidate; the first that passes gives the (8) result.
    failures: list[tuple[str, _CandidateFailed]] = []
    for candidate in candidates:
        try:
            attestation_digest, signature_digest, log_index = _verify_candidate(
                registry, pin, candidate, platform_digest, key, pins, rekor_client, now
            )
        except _CandidateFailed as exc:
            _logger.debug("attestation %s failed: %s", candidate.digest, exc)
            failures.append((candidate.digest, exc))
            continue
        except TransportError as exc:
            raise _prefixed(exc, f"verifying {ref}: ") from exc
        _logger.info("verified %s (%s, Rekor entry %d)", ref, platform, log_index)
        return DhiResult(
            name=name,
            ref=ref,
            index_digest=pin.index_digest,
            platform=platform,
            platform_digest=platform_digest,
            attestation_digest=attestation_digest,
            signature_digest=signature_digest,
            rekor_log_index=log_index,
        )
    raise _no_candidate_passed(ref, failures)
