"""Keyless verification of SynthOrg images: a Sigstore signature and SLSA provenance.

A SynthOrg image is trusted when all of these steps pass, in order:

0. Trust root: an explicit ``trusted_root.json`` (with a warning that names
   it), else the public-good root refreshed through TUF within a deadline.
1. Identity policy: the signing certificate was issued to the pinned GitHub
   Actions workflow of the pinned repository, on a GitHub-hosted runner.
2. Digest: the tag is resolved to the digest it names; that digest is what is
   verified, cached and pinned.
3. Signature: a Sigstore bundle among the referrers of the digest verifies and
   binds that digest (a DSSE statement subject or a message signature over it).
4. Provenance: an SLSA provenance attestation from the GitHub attestations API
   verifies under the same identity policy and names the digest.
5. Result: the digest and the checks that passed.

Every step raises :class:`~synthorg_tasks.errors.VerificationError` (or its
``TransportError`` subclass for network failures) and nothing is returned on
failure. sigstore-python's exceptions are translated in :func:`sigstore_errors`
only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.logging import get_logger

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

    from synthorg_tasks.verify.attestations import AttestationsClient
    from synthorg_tasks.verify.pins import Pins, SigstoreIdentity

__all__ = [
    "BUNDLE_ARTIFACT_TYPE",
    "EMPTY_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "MAX_BUNDLE_BYTES",
    "IssuerClaim",
    "KeylessResult",
    "RegistryReader",
    "SanUriPattern",
    "build_verifier",
    "check_statement_subject",
    "custom_trusted_root_warning",
    "identity_policy",
    "load_trusted_root",
    "parse_bundle",
    "resolve_image_digest",
    "sigstore_errors",
    "synthorg_image_ref",
    "verify_signature",
    "verify_synthorg_image",
]

_logger = get_logger("verify")

BUNDLE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPES = (
    "https://in-toto.io/Statement/v0.1",
    "https://in-toto.io/Statement/v1",
)
MAX_BUNDLE_BYTES = 1024 * 1024
MAX_REFERRER_MANIFEST_BYTES = 4 * 1024 * 1024

_FULCIO_OID_PREFIX = "1.3.6.1.4.1.57264.1."
_ISSUER_V1_OID = _FULCIO_OID_PREFIX + "1"
_ISSUER_V2_OID = _FULCIO_OID_PREFIX + "8"


class DescriptorLike(Protocol):
    """The descriptor fields the keyless pipeline reads."""

    @property
    def digest(self) -> str: ...
    @property
    def artifact_type(self) -> str | None: ...


class ManifestLike(Protocol):
    """The manifest fields the keyless pipeline reads."""

    @property
    def digest(self) -> str: ...
    @property
    def document(self) -> Mapping[str, Any]: ...


class RegistryReader(Protocol):
    """The read side of the OCI registry client that verification needs."""

    def resolve_tag(self, repository: str, tag: str) -> str: ...

    def get_manifest(
        self, repository: str, reference: str, *, max_bytes: int
    ) -> ManifestLike: ...

    def get_blob(self, repository: str, digest: str, *, max_bytes: int) -> bytes: ...

    def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> Sequence[DescriptorLike]: ...


@dataclass(frozen=True)
class KeylessResult:
    """A verified SynthOrg image: its reference, digest and the checks passed."""

    service: str
    ref: str
    digest: str
    checks: tuple[str, ...]


# -- the sigstore-python adapter ----------------------------------------------


@contextlib.contextmanager
def sigstore_errors(what: str) -> Iterator[None]:
    """Translate sigstore-python and bundle-parsing failures into VerificationError.

    ``what`` names the object being checked, for example "signature bundle".
    Pydantic's ``ValidationError`` (raised for malformed bundles) is a
    ``ValueError``, so it is covered by that clause.
    """
    from sigstore.errors import Error as SigstoreError

    try:
        yield
    except VerificationError:
        raise
    except SigstoreError as exc:
        raise VerificationError(f"{what} failed verification: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"{what} is malformed: {exc}") from exc


# -- step 0: trust root ---------------------------------------------------------


def custom_trusted_root_warning(path: Path, sha256_hex: str) -> None:
    """Print the unsuppressible warning for a custom trusted root to stderr.

    It bypasses logging and the output mode on purpose: ``--quiet`` and
    ``--json`` must not hide that the public-good trust root was replaced.
    """
    print(
        f"WARNING: using the custom Sigstore trusted root {path} "
        f"(SHA-256 {sha256_hex}) instead of the public-good root",
        file=sys.stderr,
        flush=True,
    )


def _fetch_public_good_root() -> TrustedRoot:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    try:
        return ClientTrustConfig.production(offline=False).trusted_root
    except SigstoreError as exc:
        # sigstore-python wraps every TUF download failure in TUFError.
        raise TransportError(
            f"refreshing the Sigstore public-good trusted root through TUF failed: "
            f"{exc}"
        ) from exc


def load_trusted_root(
    path: Path | None,
    *,
    tuf_fetch_timeout: float,
    fetch_public_good: Callable[[], TrustedRoot] = _fetch_public_good_root,
) -> TrustedRoot:
    """Load the trusted root from ``path``, else refresh the public-good one.

    sigstore-python's TUF refresh has no timeout of its own, so it runs in a
    daemon thread that is abandoned after ``tuf_fetch_timeout`` seconds. An
    abandoned thread may keep running until the process exits.
    """
    from sigstore.models import TrustedRoot

    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VerificationError(
                f"cannot read the trusted root {path}: {exc.strerror}",
                hints=["check --trusted-root or SYNTHORG_SIGSTORE_TRUSTED_ROOT"],
            ) from exc
        custom_trusted_root_warning(path, hashlib.sha256(data).hexdigest())
        with sigstore_errors(f"the trusted root {path}"):
            return TrustedRoot.from_file(str(path))

    outcome: dict[str, Any] = {}

    def refresh() -> None:
        try:
            outcome["root"] = fetch_public_good()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=refresh, name="tuf-refresh", daemon=True)
    worker.start()
    worker.join(tuf_fetch_timeout)
    if worker.is_alive():
        raise TransportError(
            "refreshing the Sigstore public-good trusted root through TUF timed out "
            f"after {tuf_fetch_timeout:g}s",
            hints=["raise tuf_fetch_timeout or pass --trusted-root PATH"],
        )
    error = outcome.get("error")
    if error is not None:
        raise error
    root: TrustedRoot = outcome["root"]
    _logger.debug("public-good trusted root refreshed through TUF")
    return root


def build_verifier(trusted_root: TrustedRoot) -> Verifier:
    """Return a sigstore-python verifier for ``trusted_root``."""
    from sigstore.verify import Verifier

    with sigstore_errors("the trusted root"):
        return Verifier(trusted_root=trusted_root)


# -- step 1: identity policy ---------------------------------------------------


class SanUriPattern:
    """Require URI SANs, every one of which ``re.fullmatch``es the pinned pattern.

    Implements sigstore-python's ``VerificationPolicy`` protocol.
    """

    def __init__(self, pattern: str) -> None:
        self._pattern = re.compile(pattern)

    def verify(self, cert: Certificate) -> None:
        from cryptography.x509 import (
            ExtensionNotFound,
            SubjectAlternativeName,
            UniformResourceIdentifier,
        )
        from sigstore.errors import VerificationError as PolicyError

        try:
            sans = cert.extensions.get_extension_for_class(SubjectAlternativeName)
        except ExtensionNotFound:
            raise PolicyError("certificate has no subject alternative name") from None
        uris = sans.value.get_values_for_type(UniformResourceIdentifier)
        if not uris:
            raise PolicyError("certificate has no URI subject alternative name")
        for uri in uris:
            if not self._pattern.fullmatch(uri):
                raise PolicyError(
                    f"certificate SAN {uri!r} does not match the pinned workflow "
                    f"identity {self._pattern.pattern}"
                )


class IssuerClaim:
    """Require the OIDC issuer in the v2 extension, or the v1 one when v2 is absent.

    Fulcio writes the issuer as a DER UTF8String under OID
    1.3.6.1.4.1.57264.1.8 and, in older certificates, as raw bytes under
    1.3.6.1.4.1.57264.1.1. When both exist, both must match, so a certificate
    cannot carry a matching value in one and a different one in the other.
    Implements sigstore-python's ``VerificationPolicy`` protocol.
    """

    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def verify(self, cert: Certificate) -> None:
        from cryptography.hazmat import asn1
        from cryptography.x509 import ExtensionNotFound, ObjectIdentifier
        from sigstore.errors import VerificationError as PolicyError

        found: list[tuple[str, str]] = []
        for oid, label in ((_ISSUER_V2_OID, "v2"), (_ISSUER_V1_OID, "v1")):
            try:
                ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid))
            except ExtensionNotFound:
                continue
            raw: bytes = ext.value.value  # type: ignore[attr-defined]
            try:
                if label == "v2":
                    value = asn1.decode_der(str, raw)
                else:
                    value = raw.decode("utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise PolicyError(f"certificate issuer ({label}) is malformed") from exc
            found.append((label, value))
        if not found:
            raise PolicyError("certificate carries no OIDC issuer extension")
        for label, value in found:
            if value != self._issuer:
                raise PolicyError(
                    f"certificate issuer ({label}) is {value!r}, "
                    f"expected {self._issuer!r}"
                )


def identity_policy(identity: SigstoreIdentity) -> VerificationPolicy:
    """Return the policy every SynthOrg signing certificate must satisfy."""
    from sigstore.verify import policy

    return policy.AllOf(
        [
            SanUriPattern(identity.san_pattern),
            IssuerClaim(identity.issuer),
            policy.OIDCSourceRepositoryURI(identity.source_repository_uri),
            policy.OIDCSourceRepositoryIdentifier(identity.source_repository_id),
            policy.OIDCRunnerEnvironment(identity.runner_environment),
        ]
    )


# -- step 2: digest ------------------------------------------------------------


def synthorg_image_ref(pins: Pins, name: str, tag: str) -> tuple[str, str]:
    """Return ``(repository, reference text)`` of a SynthOrg image at ``tag``."""
    repository = f"{pins.synthorg.repository_prefix}{name}"
    return repository, f"{pins.synthorg.registry}/{repository}:{tag}"


def resolve_image_digest(registry: RegistryReader, repository: str, tag: str) -> str:
    """Return the digest ``tag`` names (an index digest for multi-arch images)."""
    digest = registry.resolve_tag(repository, tag)
    _logger.debug("%s:%s resolves to %s", repository, tag, digest)
    return digest


# -- step 3: signature ---------------------------------------------------------


def check_statement_subject(payload: bytes, digest: str) -> dict[str, Any]:
    """Return the in-toto statement in ``payload``, checked to name ``digest``."""
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"in-toto statement is not JSON: {exc}") from exc
    if not isinstance(statement, dict):
        raise VerificationError("in-toto statement is not a JSON object")
    if statement.get("_type") not in IN_TOTO_STATEMENT_TYPES:
        raise VerificationError(
            f"in-toto statement type {statement.get('_type')!r} is not supported"
        )
    subjects = statement.get("subject")
    expected = digest.removeprefix("sha256:")
    if isinstance(subjects, list):
        for subject in subjects:
            digests = subject.get("digest") if isinstance(subject, dict) else None
            if isinstance(digests, dict) and digests.get("sha256") == expected:
                return statement
    raise VerificationError(f"in-toto statement has no subject with digest {digest}")


def _bundle_candidates(
    registry: RegistryReader, repository: str, digest: str
) -> list[DescriptorLike]:
    """Return the referrers of ``digest`` that may carry a Sigstore bundle."""
    descriptors = registry.referrers(repository, digest)
    return [
        d
        for d in descriptors
        if d.artifact_type in (BUNDLE_ARTIFACT_TYPE, EMPTY_MEDIA_TYPE)
    ]


def _read_bundle(
    registry: RegistryReader, repository: str, descriptor: DescriptorLike
) -> tuple[Bundle, bool]:
    """Return the bundle a referrer carries and whether it contains a DSSE envelope."""

    manifest = registry.get_manifest(
        repository, descriptor.digest, max_bytes=MAX_REFERRER_MANIFEST_BYTES
    )
    document = manifest.document
    if document.get("artifactType") != BUNDLE_ARTIFACT_TYPE:
        raise VerificationError(
            f"referrer {descriptor.digest} has artifact type "
            f"{document.get('artifactType')!r}, not a Sigstore bundle"
        )
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
        raise VerificationError(f"referrer {descriptor.digest} has no layers")
    layer = layers[0]
    layer_digest = layer.get("digest")
    size = layer.get("size")
    if not isinstance(layer_digest, str):
        raise VerificationError(f"referrer {descriptor.digest} layer has no digest")
    if not isinstance(size, int) or size > MAX_BUNDLE_BYTES:
        raise VerificationError(
            f"bundle layer {layer_digest} is {size!r} bytes, more than the "
            f"{MAX_BUNDLE_BYTES} byte limit"
        )
    raw = registry.get_blob(repository, layer_digest, max_bytes=MAX_BUNDLE_BYTES)
    return parse_bundle(raw, f"signature bundle {layer_digest}")


def parse_bundle(raw: bytes, what: str) -> tuple[Bundle, bool]:
    """Parse a Sigstore bundle and report whether it contains a DSSE envelope."""
    from sigstore.models import Bundle

    with sigstore_errors(what):
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise VerificationError(f"{what} is not a JSON object")
        return Bundle.from_json(raw), "dsseEnvelope" in document


def _verify_bundle(
    bundle: Bundle,
    is_dsse: bool,
    digest: str,
    *,
    verifier: Verifier,
    policy: VerificationPolicy,
) -> None:
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    with sigstore_errors("signature bundle"):
        if is_dsse:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
            if payload_type != IN_TOTO_PAYLOAD_TYPE:
                raise VerificationError(
                    f"DSSE payload type is {payload_type!r}, "
                    f"expected {IN_TOTO_PAYLOAD_TYPE}"
                )
            check_statement_subject(payload, digest)
            return
        hashed = Hashed(
            algorithm=HashAlgorithm.SHA2_256,
            digest=bytes.fromhex(digest.removeprefix("sha256:")),
        )
        verifier.verify_artifact(hashed, bundle, policy)


def verify_signature(
    registry: RegistryReader,
    repository: str,
    digest: str,
    *,
    ref: str,
    verifier: Verifier,
    policy: VerificationPolicy,
) -> None:
    """Verify that a Sigstore bundle among the referrers of ``digest`` signs it.

    The first bundle that passes wins; when none does, the reasons of every
    candidate are joined into one error.
    """
    candidates = _bundle_candidates(registry, repository, digest)
    if not candidates:
        raise VerificationError(f"no signature bundle found for {ref}")
    reasons: list[str] = []
    for descriptor in candidates:
        try:
            bundle, is_dsse = _read_bundle(registry, repository, descriptor)
            _verify_bundle(bundle, is_dsse, digest, verifier=verifier, policy=policy)
        except TransportError:
            raise
        except VerificationError as exc:
            reasons.append(f"{descriptor.digest}: {exc.message}")
            continue
        _logger.debug("signature bundle %s verifies %s", descriptor.digest, ref)
        return
    raise VerificationError("; ".join(reasons))


# -- steps 2 to 5 for one image ---------------------------------------------------


def _prefix_failure(exc: VerificationError, ref: str, step: str) -> None:
    exc.message = f"verifying {ref}: {step}: {exc.message}"
    exc.args = (exc.message,)


def verify_synthorg_image(
    name: str,
    tag: str,
    *,
    pins: Pins,
    registry: RegistryReader,
    verifier: Verifier,
    policy: VerificationPolicy,
    attestations: AttestationsClient,
    on_check: Callable[[str, str], None] | None = None,
) -> KeylessResult:
    """Run steps 2 to 5 for the SynthOrg image ``name`` at ``tag``.

    ``on_check(name, check)`` is called as each check passes ("sig", "slsa").
    A failure raises with the message "verifying <ref>: <step>: <reason>".
    """
    from synthorg_tasks.verify.attestations import verify_provenance

    repository, ref = synthorg_image_ref(pins, name, tag)
    step = "digest"
    try:
        digest = resolve_image_digest(registry, repository, tag)
        step = "signature"
        verify_signature(
            registry, repository, digest, ref=ref, verifier=verifier, policy=policy
        )
        if on_check is not None:
            on_check(name, "sig")
        step = "provenance"
        verify_provenance(
            attestations, digest, ref=ref, verifier=verifier, policy=policy
        )
        if on_check is not None:
            on_check(name, "slsa")
    except VerificationError as exc:
        _prefix_failure(exc, ref, step)
        raise
    _logger.info("verified %s as %s", ref, digest)
    return KeylessResult(service=name, ref=ref, digest=digest, checks=("sig", "slsa"))
