"""ECDSA P-256 helpers for DHI and Rekor checks, over ``cryptography``.

This is the one place where verification code calls ``cryptography`` and
translates its exceptions: a key that does not parse and a signature that does
not verify both raise :class:`VerificationError` naming what was checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synthorg_tasks.errors import VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

__all__ = ["load_p256_pem", "spki_der", "verify_ecdsa_sha256"]


def load_p256_pem(pem: bytes, label: str) -> EllipticCurvePublicKey:
    """Parse a PEM public key and require ECDSA on the P-256 curve."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{label} is not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise VerificationError(f"{label} is not an ECDSA P-256 key")
    return key


def spki_der(key: EllipticCurvePublicKey) -> bytes:
    """Return the DER SubjectPublicKeyInfo of ``key``."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_ecdsa_sha256(
    key: EllipticCurvePublicKey, signature: bytes, data: bytes, label: str
) -> None:
    """Verify a DER ECDSA signature over SHA-256 of ``data``, or raise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(f"{label} does not verify") from exc
