"""Build a private, offline Sigstore instance for the keyless verification tests.

Every run generates fresh keys: a Fulcio-style CA, a certificate-transparency
log key and a Rekor log key, plus a ``trusted_root.json`` that lists them. The
factory mints leaf certificates carrying the GitHub Actions identity claims
(SAN URI and the Fulcio extensions under OID 1.3.6.1.4.1.57264.1) with an
embedded SCT over the precertificate, appends every signature to an RFC 9162
Merkle tree, and returns Sigstore v0.3 bundles with an inclusion proof, a
signed checkpoint and a signed entry timestamp. sigstore-python's own
``Verifier`` accepts these bundles unmodified, so the tests exercise the real
verifier rather than a stand-in.

The bundle, trusted-root and log-entry documents are built as JSON and
validated through ``sigstore_models`` (the model package sigstore-python
itself reads them with) before they are written.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore_models.bundle.v1 import Bundle as BundleModel
from sigstore_models.rekor.v1 import TransparencyLogEntry as LogEntryModel
from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
PINNED_SAN = (
    "https://github.com/Aureliolo/synthorg/.github/workflows/"
    "reusable-publish-image.yml@refs/heads/main"
)
PINNED_REPOSITORY_URI = "https://github.com/Aureliolo/synthorg"
PINNED_REPOSITORY_ID = "1168268477"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"

_FULCIO = "1.3.6.1.4.1.57264.1."
_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_ISSUER_V1_OID = x509.ObjectIdentifier(_FULCIO + "1")
_ISSUER_V2_OID = x509.ObjectIdentifier(_FULCIO + "8")
_RUNNER_OID = x509.ObjectIdentifier(_FULCIO + "11")
_SOURCE_URI_OID = x509.ObjectIdentifier(_FULCIO + "12")
_SOURCE_ID_OID = x509.ObjectIdentifier(_FULCIO + "15")

# Entries already in the log before the first test signature, so that every
# inclusion proof has a non-trivial audit path.
_PRELOADED_LEAVES = 5


@dataclass(frozen=True)
class Claims:
    """The identity claims a leaf certificate carries.

    ``None`` leaves the extension out of the certificate.
    """

    san_uri: str = PINNED_SAN
    issuer_v1: str | None = GITHUB_ISSUER
    issuer_v2: str | None = GITHUB_ISSUER
    source_repository_uri: str | None = PINNED_REPOSITORY_URI
    source_repository_id: str | None = PINNED_REPOSITORY_ID
    runner_environment: str | None = "github-hosted"
    extra_sans: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Claims:
        return dataclasses.replace(self, **changes)


def der_utf8_string(text: str) -> bytes:
    """Return the DER encoding of ``text`` as an ASN.1 UTF8String."""
    body = text.encode("utf-8")
    return bytes([0x0C]) + _der_length(len(body)) + body


def der_octet_string(body: bytes) -> bytes:
    return bytes([0x04]) + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki_der(key)).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _u24(length: int) -> bytes:
    return struct.pack("!I", length)[1:]


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """Return the RFC 9162 root hash over already-hashed ``leaves``."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node_hash(merkle_root(leaves[:split]), merkle_root(leaves[split:]))


def merkle_audit_path(leaves: list[bytes], index: int) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index``, lowest level first."""
    if len(leaves) == 1:
        return []
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < split:
        return [
            *merkle_audit_path(leaves[:split], index),
            merkle_root(leaves[split:]),
        ]
    return [
        *merkle_audit_path(leaves[split:], index - split),
        merkle_root(leaves[:split]),
    ]


@dataclass
class TransparencyLog:
    """An append-only Merkle tree whose checkpoints and SETs a P-256 key signs."""

    key: ec.EllipticCurvePrivateKey
    origin: str = "rekor.test.invalid - 1"
    leaves: list[bytes] = field(default_factory=list)

    @property
    def log_id(self) -> bytes:
        return _key_id(self.key.public_key())

    def append(self, body: bytes) -> int:
        self.leaves.append(_leaf_hash(body))
        return len(self.leaves) - 1

    def checkpoint(self, size: int, root: bytes) -> str:
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        signature = self.key.sign(note.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        stamp = _b64(self.log_id[:4] + signature)
        return f"{note}\n\u2014 {self.origin.split()[0]} {stamp}\n"

    def entry(self, body: bytes, kind: str, integrated_time: int) -> dict[str, Any]:
        """Append ``body`` and return its log entry in bundle JSON form."""
        index = self.append(body)
        size = len(self.leaves)
        root = merkle_root(self.leaves)
        promise = {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": index,
        }
        timestamp = self.key.sign(rfc8785.dumps(promise), ec.ECDSA(hashes.SHA256()))
        document = {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(timestamp)},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in merkle_audit_path(self.leaves, index)],
                "checkpoint": {"envelope": self.checkpoint(size, root)},
            },
            "canonicalizedBody": _b64(body),
        }
        LogEntryModel.from_json(json.dumps(document))
        return document


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class SigstoreFactory:
    """A private Sigstore instance: CA, CT log, Rekor log and a trusted root."""

    def __init__(self, directory: Path) -> None:
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.ca_key = _new_key()
        self.ct_key = _new_key()
        self.log = TransparencyLog(_new_key())
        for number in range(_PRELOADED_LEAVES):
            self.log.append(f"preloaded entry {number}".encode())
        self.ca_cert = self._build_ca()
        self.trusted_root_path = directory / "trusted_root.json"
        self.trusted_root_path.write_text(self._trusted_root_json(), encoding="utf-8")

    # -- certificates ------------------------------------------------------

    def _build_ca(self) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "synthorg-tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, "test fulcio root"),
            ]
        )
        public = self.ca_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public), critical=False
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    def _leaf_builder(
        self, key: ec.EllipticCurvePrivateKey, claims: Claims, serial: int
    ) -> x509.CertificateBuilder:
        # An empty san_uri mints an e-mail identity, as Fulcio does for people.
        sans: list[x509.GeneralName] = (
            [x509.UniformResourceIdentifier(claims.san_uri)]
            if claims.san_uri
            else [x509.RFC822Name("developer@example.invalid")]
        )
        sans.extend(x509.UniformResourceIdentifier(s) for s in claims.extra_sans)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(self.now - dt.timedelta(minutes=1))
            .not_valid_after(self.now + dt.timedelta(minutes=10))
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.ca_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        )
        if claims.issuer_v1 is not None:
            builder = _with_raw(builder, _ISSUER_V1_OID, claims.issuer_v1.encode())
        for oid, value in (
            (_ISSUER_V2_OID, claims.issuer_v2),
            (_RUNNER_OID, claims.runner_environment),
            (_SOURCE_URI_OID, claims.source_repository_uri),
            (_SOURCE_ID_OID, claims.source_repository_id),
        ):
            if value is not None:
                builder = _with_raw(builder, oid, der_utf8_string(value))
        return builder

    def mint_certificate(
        self, claims: Claims, *, embed_sct: bool = True
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Mint a leaf for ``claims``, with an SCT over its precertificate.

        The SCT signs the TBSCertificate without the SCT-list extension, which
        is exactly what ``Certificate.tbs_precertificate_bytes`` returns for the
        final certificate, because the extension is added last.
        """
        key = _new_key()
        serial = x509.random_serial_number()
        precert = self._leaf_builder(key, claims, serial).sign(
            self.ca_key, hashes.SHA256()
        )
        if not embed_sct:
            return precert, key
        sct_list = self._sct_list(precert.tbs_certificate_bytes)
        final = (
            _with_raw(
                self._leaf_builder(key, claims, serial),
                _SCT_LIST_OID,
                der_octet_string(sct_list),
            )
        ).sign(self.ca_key, hashes.SHA256())
        if final.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
            raise AssertionError("precertificate bytes differ from the signed TBS")
        return final, key

    def _sct_list(self, tbs: bytes) -> bytes:
        """Return an RFC 6962 SignedCertificateTimestampList with one SCT."""
        timestamp_ms = int(self.now.timestamp() * 1000)
        issuer_key_hash = _key_id(self.ca_key.public_key())
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)
            + issuer_key_hash
            + _u24(len(tbs))
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            struct.pack("!B", 0)
            + _key_id(self.ct_key.public_key())
            + struct.pack("!QH", timestamp_ms, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )
        entry = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(entry)) + entry

    # -- bundles -----------------------------------------------------------

    def dsse_bundle(
        self,
        payload: bytes,
        *,
        claims: Claims | None = None,
        payload_type: str = IN_TOTO_PAYLOAD_TYPE,
    ) -> str:
        """Return a v0.3 bundle whose DSSE envelope carries ``payload``."""
        cert, key = self.mint_certificate(claims or Claims())
        pae = _pae(payload_type, payload)
        signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": _b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": _b64(signature)}],
        }
        envelope_json = json.dumps(envelope, separators=(",", ":")).encode()
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope_json).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": _b64(signature), "verifier": _pem_b64(cert)}
                ],
            },
        }
        return self._bundle(cert, body, "dsse", {"dsseEnvelope": envelope})

    def message_bundle(self, digest_hex: str, *, claims: Claims | None = None) -> str:
        """Return a v0.3 bundle signing the SHA-256 digest ``digest_hex``."""
        cert, key = self.mint_certificate(claims or Claims())
        digest = bytes.fromhex(digest_hex)
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
                "signature": {
                    "content": _b64(signature),
                    "publicKey": {"content": _pem_b64(cert)},
                },
            },
        }
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": _b64(signature),
            }
        }
        return self._bundle(cert, body, "hashedrekord", content)

    def _bundle(
        self,
        cert: x509.Certificate,
        body: dict[str, Any],
        kind: str,
        content: dict[str, Any],
    ) -> str:
        body_bytes = rfc8785.dumps(body)
        entry = self.log.entry(body_bytes, kind, int(self.now.timestamp()))
        document = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {
                    "rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))
                },
                "tlogEntries": [entry],
            },
            **content,
        }
        return BundleModel.from_json(json.dumps(document)).to_json()

    # -- trusted root ------------------------------------------------------

    def _log_instance(self, key: ec.EllipticCurvePublicKey, url: str) -> dict[str, Any]:
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki_der(key)),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": _rfc3339(self.now - dt.timedelta(days=1))},
            },
            "logId": {"keyId": _b64(_key_id(key))},
        }

    def _trusted_root_json(self) -> str:
        document = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                self._log_instance(self.log.key.public_key(), "http://127.0.0.1:9")
            ],
            "certificateAuthorities": [
                {
                    "subject": {
                        "organization": "synthorg-tests",
                        "commonName": "test fulcio root",
                    },
                    "uri": "http://127.0.0.1:9",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": _b64(
                                    self.ca_cert.public_bytes(
                                        serialization.Encoding.DER
                                    )
                                )
                            }
                        ]
                    },
                    "validFor": {"start": _rfc3339(self.now - dt.timedelta(days=1))},
                }
            ],
            "ctlogs": [
                self._log_instance(self.ct_key.public_key(), "http://127.0.0.1:9")
            ],
            "timestampAuthorities": [],
        }
        return TrustedRootModel.from_json(json.dumps(document)).to_json()


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Return keyCertSign and cRLSign for a CA, digitalSignature for a leaf."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _with_raw(
    builder: x509.CertificateBuilder, oid: x509.ObjectIdentifier, value: bytes
) -> x509.CertificateBuilder:
    return builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)


def _pem_b64(cert: x509.Certificate) -> str:
    return _b64(cert.public_bytes(serialization.Encoding.PEM))


def _pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding."""
    head = f"DSSEv1 {len(payload_type)} {payload_type} {len(payload)} "
    return head.encode("utf-8") + payload


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def in_toto_statement(
    digest_hex: str,
    *,
    predicate_type: str = SLSA_V1,
    statement_type: str = "https://in-toto.io/Statement/v1",
    name: str = "image",
) -> bytes:
    """Return an in-toto statement naming ``digest_hex`` as its only subject."""
    document = {
        "_type": statement_type,
        "subject": [{"name": name, "digest": {"sha256": digest_hex}}],
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "test"}, "runDetails": {}},
    }
    return json.dumps(document).encode("utf-8")
