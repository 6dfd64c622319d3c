"""Offline checks of a Rekor transparency-log entry for a key-signed cosign signature.

A cosign signature made with a long-lived key is only as good as the proof
that it was logged, so :func:`verify_log_entry` checks, in order and failing
closed at each step:

(1) the log key, chosen by the entry's log id among the pinned Rekor keys (an
    unknown log id fails);
(2) the signed entry timestamp (SET), an ECDSA P-256 signature with SHA-256
    over the RFC 8785 canonical JSON of ``body``, ``integratedTime``,
    ``logIndex`` and ``logID``, and ``integratedTime`` inside the key's
    validity;
(3) the logged ``hashedrekord`` body: kind, API version, the payload's
    SHA-256, the signature bytes and the signer's public key;
(4) the inclusion proof, embedded in a Sigstore bundle or fetched from the log
    API (whose entry must repeat the SET payload), recomputed with the RFC 9162
    audit-path algorithm;
(5) the signed checkpoint: same tree size and root hash as the proof, signed
    by the same log key.

Every failure raises :class:`VerificationError` whose message names the check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from synthorg_tasks.errors import VerificationError
from synthorg_tasks.verify._crypto import (
    load_p256_pem,
    spki_der,
    verify_ecdsa_sha256,
)
from synthorg_tasks.verify.registry import RegistryNotFound, fetch_json

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from synthorg_tasks.verify.pins import RekorKeyPin, RekorPins

__all__ = [
    "InclusionProof",
    "LogEntry",
    "RekorClient",
    "leaf_hash",
    "node_hash",
    "parse_bundle",
    "root_from_inclusion_proof",
    "verify_checkpoint",
    "verify_inclusion",
    "verify_log_entry",
]

_logger = logging.getLogger("synthorg.verify.rekor")

_MAX_ENTRY_BYTES = 4 * 1024 * 1024
# An entry integrated further in the future than this, by the verifier's
# clock, is rejected: the log cannot have signed it yet.
_MAX_CLOCK_SKEW = timedelta(minutes=5)
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_CHECKPOINT_SIGNATURE_PREFIX = "\u2014 "


@dataclass(frozen=True)
class InclusionProof:
    """A Merkle audit path from one leaf to a signed tree head."""

    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class LogEntry:
    """A Rekor entry as promised by its SET, with an optional inclusion proof."""

    body_b64: str
    integrated_time: int
    log_index: int
    log_id: str
    signed_entry_timestamp: bytes
    inclusion_proof: InclusionProof | None

    def set_payload(self) -> dict[str, Any]:
        """Return the four fields that the SET signs."""
        return {
            "body": self.body_b64,
            "integratedTime": self.integrated_time,
            "logIndex": self.log_index,
            "logID": self.log_id,
        }


# -- Merkle tree (RFC 9162) --------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, hashes: Sequence[bytes]
) -> bytes:
    """Recompute the tree root from a leaf hash and its audit path.

    Follows the verification algorithm of RFC 9162 section 2.1.3.2 and
    raises when the index is out of range or the path is too short or too
    long for the tree size.
    """
    if not 0 <= index < tree_size:
        raise VerificationError(
            f"inclusion proof: index {index} is outside a tree of size {tree_size}"
        )
    fn, sn = index, tree_size - 1
    result = leaf
    for sibling in hashes:
        if sn == 0:
            raise VerificationError(
                "inclusion proof: the audit path is longer than the tree allows"
            )
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            "inclusion proof: the audit path is shorter than the tree needs"
        )
    return result


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, hashes: Sequence[bytes], root: bytes
) -> None:
    """Raise unless the audit path leads from ``leaf`` to ``root``."""
    computed = root_from_inclusion_proof(index, tree_size, leaf, hashes)
    if computed != root:
        raise VerificationError(
            f"inclusion proof: the recomputed root {computed.hex()} differs from "
            f"the proof's root hash {root.hex()}"
        )


# -- signed checkpoint -------------------------------------------------------


def verify_checkpoint(
    text: str,
    *,
    key: EllipticCurvePublicKey,
    log_id: str,
    tree_size: int,
    root_hash: bytes,
) -> None:
    """Check a signed-note checkpoint against the proof's tree head and log key.

    The note is an origin line, a tree-size line, a base64 root-hash line and
    optional extension lines, then a blank line and signature lines
    ``\u2014 <name> <base64(4-byte key hint || signature)>``. The signature
    whose key hint is the first four bytes of ``log_id`` must verify over the
    note text up to and including the newline before the blank line.
    """
    note, separator, signature_block = text.partition("\n\n")
    if not separator:
        raise VerificationError("checkpoint: no blank line before the signatures")
    lines = note.split("\n")
    if len(lines) < 3 or not lines[0]:
        raise VerificationError("checkpoint: origin, size and root lines missing")
    size_text, root_text = lines[1], lines[2]
    if not size_text.isdigit() or int(size_text) != tree_size:
        raise VerificationError(
            f"checkpoint: tree size {size_text!r} differs from the proof's "
            f"tree size {tree_size}"
        )
    if _decode_base64(root_text, "checkpoint: root hash") != root_hash:
        raise VerificationError(
            "checkpoint: root hash differs from the proof's root hash"
        )
    key_hint = bytes.fromhex(log_id)[:4]
    signed_text = (note + "\n").encode("utf-8")
    for line in signature_block.split("\n"):
        if not line:
            continue
        if not line.startswith(_CHECKPOINT_SIGNATURE_PREFIX):
            raise VerificationError(f"checkpoint: malformed signature line {line!r}")
        _name, _, encoded = line[len(_CHECKPOINT_SIGNATURE_PREFIX) :].rpartition(" ")
        raw = _decode_base64(encoded, "checkpoint: signature")
        if len(raw) > 4 and raw[:4] == key_hint:
            verify_ecdsa_sha256(key, raw[4:], signed_text, "checkpoint: signature")
            return
    raise VerificationError(
        f"checkpoint: no signature with the key hint {key_hint.hex()} of log {log_id}"
    )


# -- parsing -----------------------------------------------------------------


def _decode_base64(text: Any, label: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationError(f"{label} is missing or not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{label} is not valid base64") from exc


def _integer(value: Any, label: str) -> int:
    """Accept a JSON integer, or a decimal string as Sigstore bundles use."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise VerificationError(f"{label} is missing or not a non-negative integer")


def _object(value: Any, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError(f"{label} is missing or not a JSON object")
    return value


def _log_id(value: Any, label: str) -> str:
    if not isinstance(value, str) or not _HEX64_RE.fullmatch(value):
        raise VerificationError(f"{label} is not a 64-digit lowercase hex log id")
    return value


def _parse_api_proof(value: Any) -> InclusionProof:
    """Parse ``verification.inclusionProof`` of the log API (hex hashes)."""
    proof = _object(value, "inclusion proof")
    hashes = proof.get("hashes")
    if not isinstance(hashes, list):
        raise VerificationError("inclusion proof: hashes is not a list")
    try:
        decoded = tuple(bytes.fromhex(h) for h in hashes)
        root = bytes.fromhex(proof.get("rootHash", ""))
    except (TypeError, ValueError) as exc:
        raise VerificationError("inclusion proof: a hash is not hex") from exc
    checkpoint = proof.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise VerificationError("inclusion proof: checkpoint is missing")
    return InclusionProof(
        log_index=_integer(proof.get("logIndex"), "inclusion proof: logIndex"),
        tree_size=_integer(proof.get("treeSize"), "inclusion proof: treeSize"),
        root_hash=root,
        hashes=decoded,
        checkpoint=checkpoint,
    )


def _parse_bundle_proof(value: Any) -> InclusionProof:
    """Parse ``inclusionProof`` of a Sigstore bundle (base64 hashes)."""
    proof = _object(value, "inclusion proof")
    hashes = proof.get("hashes")
    if not isinstance(hashes, list):
        raise VerificationError("inclusion proof: hashes is not a list")
    checkpoint = _object(proof.get("checkpoint"), "inclusion proof: checkpoint")
    envelope = checkpoint.get("envelope")
    if not isinstance(envelope, str):
        raise VerificationError("inclusion proof: checkpoint envelope is missing")
    return InclusionProof(
        log_index=_integer(proof.get("logIndex"), "inclusion proof: logIndex"),
        tree_size=_integer(proof.get("treeSize"), "inclusion proof: treeSize"),
        root_hash=_decode_base64(proof.get("rootHash"), "inclusion proof: rootHash"),
        hashes=tuple(_decode_base64(h, "inclusion proof: hash") for h in hashes),
        checkpoint=envelope,
    )


def _parse_cosign_bundle(document: dict[str, Any]) -> LogEntry:
    payload = _object(document.get("Payload"), "Rekor bundle: Payload")
    body = payload.get("body")
    if not isinstance(body, str):
        raise VerificationError("Rekor bundle: Payload.body is missing")
    return LogEntry(
        body_b64=body,
        integrated_time=_integer(
            payload.get("integratedTime"), "Rekor bundle: integratedTime"
        ),
        log_index=_integer(payload.get("logIndex"), "Rekor bundle: logIndex"),
        log_id=_log_id(payload.get("logID"), "Rekor bundle: logID"),
        signed_entry_timestamp=_decode_base64(
            document.get("SignedEntryTimestamp"), "Rekor bundle: SignedEntryTimestamp"
        ),
        inclusion_proof=None,
    )


def _parse_sigstore_bundle(document: dict[str, Any]) -> LogEntry:
    material = _object(
        document.get("verificationMaterial"), "Sigstore bundle: verificationMaterial"
    )
    entries = material.get("tlogEntries")
    if not isinstance(entries, list) or len(entries) != 1:
        raise VerificationError(
            "Sigstore bundle: expected exactly one tlogEntries item"
        )
    entry = _object(entries[0], "Sigstore bundle: tlogEntries[0]")
    log_id = _object(entry.get("logId"), "Sigstore bundle: logId")
    promise = _object(entry.get("inclusionPromise"), "Sigstore bundle: SET")
    body = entry.get("canonicalizedBody")
    if not isinstance(body, str):
        raise VerificationError("Sigstore bundle: canonicalizedBody is missing")
    proof = entry.get("inclusionProof")
    key_id = _decode_base64(log_id.get("keyId"), "Sigstore bundle: logId.keyId")
    return LogEntry(
        body_b64=body,
        integrated_time=_integer(
            entry.get("integratedTime"), "Sigstore bundle: integratedTime"
        ),
        log_index=_integer(entry.get("logIndex"), "Sigstore bundle: logIndex"),
        log_id=_log_id(key_id.hex(), "Sigstore bundle: logId.keyId"),
        signed_entry_timestamp=_decode_base64(
            promise.get("signedEntryTimestamp"), "Sigstore bundle: SET"
        ),
        inclusion_proof=None if proof is None else _parse_bundle_proof(proof),
    )


def parse_bundle(text: str) -> LogEntry:
    """Parse a ``dev.sigstore.cosign/bundle`` annotation.

    Two forms are accepted: cosign's Rekor bundle (``SignedEntryTimestamp``
    and ``Payload``, no inclusion proof) and a Sigstore bundle with one
    transparency-log entry, whose inclusion proof is then used offline.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise VerificationError(f"Rekor bundle is not valid JSON: {exc}") from exc
    document = _object(document, "Rekor bundle")
    if "verificationMaterial" in document:
        return _parse_sigstore_bundle(document)
    return _parse_cosign_bundle(document)


# -- log API -----------------------------------------------------------------


class RekorClient:
    """Fetches entries from a Rekor v1 log API, such as ``https://rekor.sigstore.dev``.

    Tests point ``base_url`` at a loopback server; any other URL must be
    HTTPS.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session

    def entry_by_index(self, log_index: int) -> LogEntry:
        """Fetch the entry at ``log_index`` with its inclusion proof."""
        where = f"Rekor entry {log_index} at {self.base_url}"
        url = f"{self.base_url}/api/v1/log/entries?logIndex={log_index}"
        try:
            document = fetch_json(
                url,
                where=where,
                timeout=self.timeout,
                max_bytes=_MAX_ENTRY_BYTES,
                session=self._session,
            )
        except RegistryNotFound as exc:
            raise VerificationError(f"{where}: the log has no such entry") from exc
        document = _object(document, where)
        if len(document) != 1:
            raise VerificationError(f"{where}: expected exactly one entry")
        entry = _object(next(iter(document.values())), where)
        verification = _object(entry.get("verification"), f"{where}: verification")
        body = entry.get("body")
        if not isinstance(body, str):
            raise VerificationError(f"{where}: body is missing")
        return LogEntry(
            body_b64=body,
            integrated_time=_integer(
                entry.get("integratedTime"), f"{where}: integratedTime"
            ),
            log_index=_integer(entry.get("logIndex"), f"{where}: logIndex"),
            log_id=_log_id(entry.get("logID"), f"{where}: logID"),
            signed_entry_timestamp=_decode_base64(
                verification.get("signedEntryTimestamp"), f"{where}: SET"
            ),
            inclusion_proof=_parse_api_proof(verification.get("inclusionProof")),
        )


# -- verification steps ------------------------------------------------------


def _select_key(
    log_id: str, rekor: RekorPins
) -> tuple[RekorKeyPin, EllipticCurvePublicKey]:
    for pin in rekor.keys:
        if pin.log_id == log_id:
            return pin, load_p256_pem(pin.public_key_pem.encode(), "Rekor key")
    raise VerificationError(f"Rekor SET: unknown log id {log_id}")


def _verify_set(entry: LogEntry, key: EllipticCurvePublicKey) -> None:
    import rfc8785

    canonical = rfc8785.dumps(entry.set_payload())
    verify_ecdsa_sha256(key, entry.signed_entry_timestamp, canonical, "Rekor SET")


def _check_integrated_time(entry: LogEntry, pin: RekorKeyPin, now: datetime) -> None:
    integrated = datetime.fromtimestamp(entry.integrated_time, tz=timezone.utc)
    if integrated < pin.valid_from:
        raise VerificationError(
            f"Rekor SET: integratedTime {integrated.isoformat()} precedes the "
            f"validity of log key {pin.log_id} ({pin.valid_from.isoformat()})"
        )
    if integrated > now + _MAX_CLOCK_SKEW:
        raise VerificationError(
            f"Rekor SET: integratedTime {integrated.isoformat()} lies in the "
            f"future (now {now.isoformat()})"
        )


def _check_body(
    body: bytes, payload: bytes, signature: bytes, signer_spki: bytes
) -> None:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise VerificationError("Rekor body: not valid JSON") from exc
    document = _object(document, "Rekor body")

    if document.get("kind") != "hashedrekord":
        raise VerificationError(
            f"Rekor body: kind {document.get('kind')!r} is not 'hashedrekord'"
        )
    if document.get("apiVersion") != "0.0.1":
        raise VerificationError(
            f"Rekor body: apiVersion {document.get('apiVersion')!r} is not '0.0.1'"
        )

    spec = _object(document.get("spec"), "Rekor body: spec")
    data_hash = _object(
        _object(spec.get("data"), "Rekor body: spec.data").get("hash"),
        "Rekor body: spec.data.hash",
    )
    expected_hash = hashlib.sha256(payload).hexdigest()
    if data_hash.get("algorithm") != "sha256" or data_hash.get("value") != (
        expected_hash
    ):
        raise VerificationError(
            f"Rekor body: logged data hash {data_hash.get('value')!r} is not the "
            f"payload's SHA-256 {expected_hash}"
        )

    logged_signature = _object(spec.get("signature"), "Rekor body: spec.signature")
    content = _decode_base64(
        logged_signature.get("content"), "Rekor body: signature content"
    )
    if content != signature:
        raise VerificationError(
            "Rekor body: logged signature differs from the image signature"
        )

    public_key = _object(
        logged_signature.get("publicKey"), "Rekor body: signature publicKey"
    )
    pem = _decode_base64(public_key.get("content"), "Rekor body: public key")
    logged_key = load_p256_pem(pem, "Rekor body: public key")
    if spki_der(logged_key) != signer_spki:
        raise VerificationError(
            "Rekor body: logged public key is not the pinned signing key"
        )


def _fetch_proof(entry: LogEntry, client: RekorClient | None) -> InclusionProof:
    if client is None:
        raise VerificationError(
            "Rekor inclusion proof: the bundle embeds none and no log client is set"
        )
    fetched = client.entry_by_index(entry.log_index)
    for field, logged in fetched.set_payload().items():
        if entry.set_payload()[field] != logged:
            raise VerificationError(
                f"Rekor API entry: {field} differs from the SET payload"
            )
    if fetched.inclusion_proof is None:  # pragma: no cover - parser requires it
        raise VerificationError("Rekor API entry: no inclusion proof")
    return fetched.inclusion_proof


def verify_log_entry(
    bundle_text: str,
    *,
    payload: bytes,
    signature: bytes,
    signer_spki: bytes,
    rekor: RekorPins,
    client: RekorClient | None,
    now: datetime,
) -> int:
    """Check a signature's Rekor entry end to end and return its log index.

    ``payload`` and ``signature`` are the signed bytes and the raw signature,
    ``signer_spki`` the DER SubjectPublicKeyInfo of the signing key. Raises
    :class:`VerificationError` naming the failed check.
    """
    entry = parse_bundle(bundle_text)
    # (1) The log key, by log id.
    pin, key = _select_key(entry.log_id, rekor)
    # (2) The SET, then its time against the key's validity.
    _verify_set(entry, key)
    _check_integrated_time(entry, pin, now)
    # (3) The logged body binds payload, signature and signer.
    body = _decode_base64(entry.body_b64, "Rekor SET: body")
    _check_body(body, payload, signature, signer_spki)
    # (4) The inclusion proof: embedded, or from the log API.
    proof = entry.inclusion_proof or _fetch_proof(entry, client)
    verify_inclusion(
        proof.log_index, proof.tree_size, leaf_hash(body), proof.hashes, proof.root_hash
    )
    # (5) The checkpoint signs the same tree head with the same key.
    verify_checkpoint(
        proof.checkpoint,
        key=key,
        log_id=entry.log_id,
        tree_size=proof.tree_size,
        root_hash=proof.root_hash,
    )
    _logger.debug("Rekor entry %d verified against log %s", entry.log_index, pin.log_id)
    return entry.log_index
