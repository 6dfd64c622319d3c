"""Fixture factories for the DHI and Rekor tests.

Every run generates fresh keys, so nothing here is a recorded artifact. The
factories make a DHI-style signing key, a Rekor log key and its log id,
simple-signing payloads, hashedrekord bodies, Merkle trees with inclusion
proofs and signed checkpoints. They also make SETs over RFC 8785 canonical
JSON, in-toto statements with SLSA v1 predicates, and the OCI manifests,
indexes and referrers indexes that carry them. :func:`build_dhi_image`
assembles one image, and its options are the knobs that the tampering tests
turn.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from synthorg_tasks.verify.dhi import (
    BUNDLE_ANNOTATION,
    COSIGN_SIGNATURE_ARTIFACT,
    PREDICATE_TYPE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SLSA_PROVENANCE_V1,
)
from synthorg_tasks.verify.pins import (
    DhiImagePin,
    DhiPins,
    Pins,
    RekorKeyPin,
    RekorPins,
    load_pins,
    pem_fingerprint,
)
from synthorg_tasks.verify.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
LOG_KEY_VALID_FROM = datetime(2021, 1, 12, 11, 53, 27, tzinfo=timezone.utc)
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# -- keys --------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A P-256 key pair with its PEM text and SPKI-derived log id."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode("ascii")
        )

    @property
    def spki_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    @property
    def log_id(self) -> str:
        return hashlib.sha256(self.spki_der).hexdigest()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class TrustKeys:
    """The DHI signing key and the Rekor log key of one test run."""

    dhi: SigningKey
    rekor: SigningKey

    @classmethod
    def generate(cls) -> TrustKeys:
        return cls(SigningKey.generate(), SigningKey.generate())


def make_pins(
    keys: TrustKeys,
    images: dict[str, DhiImagePin],
    *,
    registry: str = "dhi.io",
    rekor_url: str = "https://rekor.sigstore.dev",
    builder_ids: tuple[str, ...] = (),
    fingerprint: str | None = None,
) -> Pins:
    """Return the packaged pins with this run's DHI key, Rekor key and images."""
    base = load_pins()
    for name in ("postgres", "nats"):
        images.setdefault(name, base.dhi.images[name])
    dhi = DhiPins(
        registry=registry,
        public_key_pem=keys.dhi.public_pem,
        public_key_fingerprint=fingerprint or pem_fingerprint(keys.dhi.public_pem),
        images=images,
        builder_ids=builder_ids,
    )
    rekor = RekorPins(
        url=rekor_url,
        keys=(
            RekorKeyPin(keys.rekor.public_pem, keys.rekor.log_id, LOG_KEY_VALID_FROM),
        ),
    )
    return dataclasses.replace(base, dhi=dhi, rekor=rekor)


# -- Merkle tree (RFC 9162), written independently of the product's verifier -


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class MerkleTree:
    """An RFC 9162 Merkle tree over leaf byte strings."""

    def __init__(self, leaves: list[bytes]) -> None:
        if not leaves:
            raise ValueError("a tree needs at least one leaf")
        self.leaves = leaves
        self._hashes = [_leaf(leaf) for leaf in leaves]

    @property
    def size(self) -> int:
        return len(self.leaves)

    def root(self) -> bytes:
        return self._root(0, self.size)

    def _root(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return self._hashes[start]
        k = _split(end - start)
        return _node(self._root(start, start + k), self._root(start + k, end))

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``, from the leaf upwards."""
        return self._path(index, 0, self.size)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if index - start < k:
            return [*self._path(index, start, start + k), self._root(start + k, end)]
        return [*self._path(index, start + k, end), self._root(start, start + k)]


def make_checkpoint(
    key: SigningKey,
    tree_size: int,
    root: bytes,
    *,
    origin: str = "rekor.test - 1234567890",
    hint_log_id: str | None = None,
) -> str:
    """Return a signed note: origin, size, base64 root, blank line, signature."""
    note = f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n"
    hint = bytes.fromhex(hint_log_id or key.log_id)[:4]
    signature = base64.b64encode(hint + key.sign(note.encode())).decode()
    return f"{note}\n\u2014 rekor.test {signature}\n"


# -- cosign and Rekor payloads -----------------------------------------------


def simple_signing_payload(
    signed_digest: str,
    reference: str,
    *,
    signature_type: str = "cosign container image signature",
    padding: int = 0,
) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": signed_digest},
            "type": signature_type,
        },
        "optional": {"padding": "x" * padding} if padding else None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def hashedrekord_body(data_hash_hex: str, signature: bytes, public_pem: str) -> bytes:
    document = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": data_hash_hex}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {
                    "content": base64.b64encode(public_pem.encode()).decode()
                },
            },
        },
    }
    return canonical(document)


def sign_set(key: SigningKey, payload: dict[str, Any]) -> bytes:
    return key.sign(rfc8785.dumps(payload))


def slsa_statement(subject_digest: str, **overrides: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "_type": STATEMENT_V1,
        "subject": [
            {"name": "dhi.io/postgres", "digest": {"sha256": subject_digest[7:]}}
        ],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {"buildType": "https://docker.com/dhi/build/v1"},
            "runDetails": {"builder": {"id": "https://dhi.docker.com/builder"}},
        },
    }
    statement.update(overrides)
    return statement


# -- OCI objects -------------------------------------------------------------


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": sha256_digest(data),
        "size": len(data),
        **extra,
    }


def oci_manifest(
    layers: list[dict[str, Any]],
    *,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
        "layers": layers,
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = subject
    if annotations:
        document["annotations"] = annotations
    return document


def oci_index(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def referrer_descriptor(raw: bytes) -> dict[str, Any]:
    """The descriptor a registry lists for a referrer (OCI distribution spec)."""
    document = json.loads(raw)
    entry = descriptor(document.get("mediaType", OCI_MANIFEST), raw)
    artifact_type = document.get("artifactType") or document["config"]["mediaType"]
    entry["artifactType"] = artifact_type
    if document.get("annotations"):
        entry["annotations"] = document["annotations"]
    return entry


# -- one DHI image -----------------------------------------------------------


@dataclass
class LayerOptions:
    """How one signature layer is made; the defaults give a valid layer."""

    signing_key: SigningKey | None = None
    # Which digest the payload names: "attestation", "index" or "platform".
    signs: str = "attestation"
    signed_digest: str | None = None
    signature_type: str = "cosign container image signature"
    payload_padding: int = 0
    media_type: str = SIMPLE_SIGNING_MEDIA_TYPE
    payload_mutator: Callable[[bytes], bytes] | None = None
    include_bundle: bool = True
    embed_proof: bool = False
    set_key: SigningKey | None = None
    set_log_id: str | None = None
    integrated_time_shift: int = 0
    body_public_pem: str | None = None
    body_hash: str | None = None
    body_signature: bytes | None = None
    proof_mutator: Callable[[dict[str, Any]], None] | None = None
    checkpoint_key: SigningKey | None = None
    checkpoint_root: bytes | None = None
    checkpoint_size: int | None = None
    api_body: bytes | None = None
    # Fields of the log API's entry that differ from the SET payload.
    api_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class DhiOptions:
    """Knobs for one image; the defaults give an image that verifies."""

    repository: str = "postgres"
    tag: str = "18-debian13"
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    target_platform: str = "linux/amd64"
    statement: Callable[[str], dict[str, Any]] = slsa_statement
    predicate_annotation: str = SLSA_PROVENANCE_V1
    # Wrap the statement in a DSSE envelope instead of a bare in-toto layer.
    dsse: bool = False
    dsse_payload_type: str = IN_TOTO_MEDIA_TYPE
    # List an unsigned, invalid SLSA v1 attestation before the real one.
    decoy_attestation: bool = False
    attestation_subject: str | None = None
    signature_subject: str | None = None
    layers: list[LayerOptions] = field(default_factory=lambda: [LayerOptions()])


@dataclass
class RekorEntryFixture:
    """One logged entry as the Rekor API would return it."""

    log_index: int
    document: dict[str, Any]


@dataclass
class DhiImage:
    """Everything to publish for one image, plus the digests tests check."""

    options: DhiOptions
    blobs: list[bytes]
    manifests: list[tuple[str, bytes, str]]
    index_digest: str
    platform_digest: str
    attestation_digest: str
    signature_digest: str
    rekor_entries: list[RekorEntryFixture]

    @property
    def pin(self) -> DhiImagePin:
        return DhiImagePin(self.options.repository, self.options.tag, self.index_digest)

    def publish(self, client: RegistryClient, *, referrers_tags: bool = True) -> None:
        """Push every blob and manifest (and the referrers tags, if asked)."""
        repository = self.options.repository
        for blob in self.blobs:
            client.push_blob(repository, blob)
        for reference, raw, media_type in self.manifests:
            if reference.startswith("sha256-") and not referrers_tags:
                continue
            client.push_manifest(repository, reference, raw, media_type)


def _platform_manifest(platform: str) -> tuple[bytes, bytes, bytes]:
    layer = f"rootfs for {platform} {secrets.token_hex(8)}".encode()
    config = json.dumps({"os": platform.split("/", maxsplit=1)[0]}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    }
    return config, layer, canonical(document)


def _platform_fields(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    fields = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        fields["variant"] = parts[2]
    return fields


def _signature_layer(
    keys: TrustKeys,
    layer: LayerOptions,
    digests: dict[str, str],
    reference: str,
    log_index: int,
) -> tuple[bytes, dict[str, Any], RekorEntryFixture | None]:
    signer = layer.signing_key or keys.dhi
    signed = layer.signed_digest or digests[layer.signs]
    payload = simple_signing_payload(
        signed,
        reference,
        signature_type=layer.signature_type,
        padding=layer.payload_padding,
    )
    signature = signer.sign(payload)
    if layer.payload_mutator is not None:
        payload = layer.payload_mutator(payload)
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    entry: RekorEntryFixture | None = None
    if layer.include_bundle:
        bundle, entry = _rekor_bundle(
            keys, layer, payload, signature, signer, log_index
        )
        annotations[BUNDLE_ANNOTATION] = bundle
    return (
        payload,
        descriptor(layer.media_type, payload, annotations=annotations),
        entry,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _inclusion_proof(
    keys: TrustKeys, layer: LayerOptions, body: bytes
) -> dict[str, Any]:
    """Log ``body`` at a random position among random neighbours; return the proof."""
    before = [secrets.token_bytes(40) for _ in range(secrets.randbelow(20))]
    after = [secrets.token_bytes(40) for _ in range(secrets.randbelow(20) + 1)]
    tree = MerkleTree([*before, body, *after])
    tree_index = len(before)
    root = tree.root()
    checkpoint = make_checkpoint(
        layer.checkpoint_key or keys.rekor,
        layer.checkpoint_size or tree.size,
        layer.checkpoint_root or root,
        hint_log_id=keys.rekor.log_id,
    )
    proof = {
        "logIndex": tree_index,
        "treeSize": tree.size,
        "rootHash": root.hex(),
        "hashes": [h.hex() for h in tree.proof(tree_index)],
        "checkpoint": checkpoint,
    }
    if layer.proof_mutator is not None:
        layer.proof_mutator(proof)
    return proof


def _sigstore_bundle(
    fields: dict[str, Any], signed_entry_timestamp: bytes, proof: dict[str, Any]
) -> dict[str, Any]:
    """A Sigstore bundle whose one log entry embeds its inclusion proof."""
    entry = {
        "logIndex": str(fields["logIndex"]),
        "logId": {"keyId": _b64(bytes.fromhex(fields["logID"]))},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
        "integratedTime": str(fields["integratedTime"]),
        "inclusionPromise": {"signedEntryTimestamp": _b64(signed_entry_timestamp)},
        "inclusionProof": {
            "logIndex": str(proof["logIndex"]),
            "rootHash": _b64(bytes.fromhex(proof["rootHash"])),
            "treeSize": str(proof["treeSize"]),
            "hashes": [_b64(bytes.fromhex(h)) for h in proof["hashes"]],
            "checkpoint": {"envelope": proof["checkpoint"]},
        },
        "canonicalizedBody": fields["body"],
    }
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"tlogEntries": [entry]},
    }


def _rekor_bundle(
    keys: TrustKeys,
    layer: LayerOptions,
    payload: bytes,
    signature: bytes,
    signer: SigningKey,
    log_index: int,
) -> tuple[str, RekorEntryFixture]:
    """Return the bundle annotation of one signature and its log API entry."""
    body = hashedrekord_body(
        layer.body_hash or hashlib.sha256(payload).hexdigest(),
        layer.body_signature or signature,
        layer.body_public_pem or signer.public_pem,
    )
    proof = _inclusion_proof(keys, layer, body)
    fields = {
        "body": _b64(body),
        "integratedTime": int((NOW - timedelta(days=3)).timestamp()),
        "logIndex": log_index,
        "logID": layer.set_log_id or keys.rekor.log_id,
    }
    signed_entry_timestamp = sign_set(layer.set_key or keys.rekor, fields)

    api_fields = {**fields, "body": _b64(layer.api_body or body)}
    api_entry = {
        **api_fields,
        "verification": {
            "signedEntryTimestamp": _b64(signed_entry_timestamp),
            "inclusionProof": proof,
        },
        **layer.api_overrides,
    }
    entry = RekorEntryFixture(log_index, {secrets.token_hex(40): api_entry})

    # The bundle shows the time shifted after signing, which breaks the SET.
    shown = {
        **fields,
        "integratedTime": fields["integratedTime"] + layer.integrated_time_shift,
    }
    if layer.embed_proof:
        bundle = _sigstore_bundle(shown, signed_entry_timestamp, proof)
    else:
        bundle = {
            "SignedEntryTimestamp": _b64(signed_entry_timestamp),
            "Payload": shown,
        }
    return json.dumps(bundle), entry


def _attestation_manifest(
    options: DhiOptions, statement: dict[str, Any], subject: dict[str, Any]
) -> tuple[bytes, bytes]:
    """Return the statement layer and the attestation manifest that carries it."""
    layer = canonical(statement)
    media_type = IN_TOTO_MEDIA_TYPE
    if options.dsse:
        envelope = {
            "payloadType": options.dsse_payload_type,
            "payload": _b64(layer),
            "signatures": [],
        }
        layer = canonical(envelope)
        media_type = DSSE_MEDIA_TYPE
    annotations = {PREDICATE_TYPE_ANNOTATION: options.predicate_annotation}
    manifest = oci_manifest(
        [descriptor(media_type, layer, annotations=annotations)],
        subject=subject,
        artifact_type=IN_TOTO_MEDIA_TYPE,
        annotations=annotations,
    )
    return layer, canonical(manifest)


def build_dhi_image(keys: TrustKeys, options: DhiOptions | None = None) -> DhiImage:
    """Build a multi-platform image with an SLSA v1 attestation and signature."""
    options = options or DhiOptions()
    blobs: list[bytes] = [EMPTY_CONFIG]
    manifests: list[tuple[str, bytes, str]] = []
    index_entries: list[dict[str, Any]] = []
    platform_raw: dict[str, bytes] = {}
    for platform in options.platforms:
        config, layer, raw = _platform_manifest(platform)
        blobs += [config, layer]
        manifests.append((sha256_digest(raw), raw, OCI_MANIFEST))
        platform_raw[platform] = raw
        index_entries.append(
            descriptor(OCI_MANIFEST, raw, platform=_platform_fields(platform))
        )
    index_raw = canonical(oci_index(index_entries))
    index_digest = sha256_digest(index_raw)
    manifests.append((options.tag, index_raw, OCI_INDEX))

    target_raw = platform_raw.get(options.target_platform) or next(
        iter(platform_raw.values())
    )
    platform_digest = sha256_digest(target_raw)
    reference = f"dhi.io/{options.repository}:{options.tag}"

    subject = descriptor(OCI_MANIFEST, target_raw)
    if options.attestation_subject is not None:
        subject["digest"] = options.attestation_subject
    referrers_of_platform: list[dict[str, Any]] = []
    if options.decoy_attestation:
        # Annotated as SLSA v1 but carrying a v0.2 statement, so step 4 fails.
        decoy = slsa_statement(
            platform_digest, predicateType="https://slsa.dev/provenance/v0.2"
        )
        decoy_layer, decoy_raw = _attestation_manifest(options, decoy, subject)
        blobs.append(decoy_layer)
        manifests.append((sha256_digest(decoy_raw), decoy_raw, OCI_MANIFEST))
        referrers_of_platform.append(referrer_descriptor(decoy_raw))
    statement_raw, attestation_raw = _attestation_manifest(
        options, options.statement(platform_digest), subject
    )
    blobs.append(statement_raw)
    referrers_of_platform.append(referrer_descriptor(attestation_raw))
    attestation_digest = sha256_digest(attestation_raw)
    manifests.append((attestation_digest, attestation_raw, OCI_MANIFEST))

    layer_descriptors: list[dict[str, Any]] = []
    entries: list[RekorEntryFixture] = []
    # Random log positions keep the entries of several images apart.
    first_log_index = secrets.randbelow(10**9)
    for position, layer in enumerate(options.layers):
        digests = {
            "attestation": attestation_digest,
            "index": index_digest,
            "platform": platform_digest,
        }
        payload, layer_descriptor, entry = _signature_layer(
            keys, layer, digests, reference, first_log_index + position
        )
        blobs.append(payload)
        layer_descriptors.append(layer_descriptor)
        if entry is not None:
            entries.append(entry)
    signature_subject = descriptor(OCI_MANIFEST, attestation_raw)
    if options.signature_subject is not None:
        signature_subject["digest"] = options.signature_subject
    signature_raw = canonical(
        oci_manifest(
            layer_descriptors,
            subject=signature_subject,
            artifact_type=COSIGN_SIGNATURE_ARTIFACT,
        )
    )
    signature_digest = sha256_digest(signature_raw)
    manifests.append((signature_digest, signature_raw, OCI_MANIFEST))

    # Referrers tags, as clients write them for registries without the API.
    # The attestation is listed under the platform digest even when a test
    # gives it another subject, as a lying registry would.
    manifests.append(
        (
            platform_digest.replace(":", "-"),
            canonical(oci_index(referrers_of_platform)),
            OCI_INDEX,
        )
    )
    manifests.append(
        (
            attestation_digest.replace(":", "-"),
            canonical(oci_index([referrer_descriptor(signature_raw)])),
            OCI_INDEX,
        )
    )
    return DhiImage(
        options=options,
        blobs=blobs,
        manifests=manifests,
        index_digest=index_digest,
        platform_digest=platform_digest,
        attestation_digest=attestation_digest,
        signature_digest=signature_digest,
        rekor_entries=entries,
    )
