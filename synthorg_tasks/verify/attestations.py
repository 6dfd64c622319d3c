"""GitHub attestations API client and the SLSA provenance check of SynthOrg images.

``GET <attestations_api>/<digest>`` lists the attestations GitHub stores for an
image digest. Each entry carries its Sigstore bundle inline (``bundle``) or
behind a download link (``bundle_url``). Download links are followed only to
HTTPS hosts of GitHub's artifact storage, every redirect is checked against the
same list, and responses are size-capped before and after Snappy decoding, so a
hostile or broken server can neither redirect the client elsewhere nor exhaust
its memory.

``requests`` exceptions are translated into the product's errors in
:meth:`AttestationsClient._get` only.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.secrets import register_secret

if TYPE_CHECKING:
    import requests
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

__all__ = [
    "API_HEADERS",
    "MAX_API_RESPONSE_BYTES",
    "MAX_BUNDLE_DOWNLOAD_BYTES",
    "MAX_DECODED_BUNDLE_BYTES",
    "MAX_REDIRECTS",
    "PRODUCTION_BUNDLE_HOSTS",
    "SLSA_PREDICATE_PREFIX",
    "AttestationsClient",
    "decode_snappy",
    "host_allowed",
    "verify_provenance",
]

_logger = get_logger("verify")

API_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}
# Hosts that serve attestation bundles for GitHub. "*.name" matches any
# subdomain of name but not name itself.
PRODUCTION_BUNDLE_HOSTS = (
    "*.blob.core.windows.net",
    "*.githubusercontent.com",
    "github.com",
    "*.github.com",
)
MAX_API_RESPONSE_BYTES = 5 * 1024 * 1024
MAX_BUNDLE_DOWNLOAD_BYTES = 5 * 1024 * 1024
MAX_DECODED_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_REDIRECTS = 5
SLSA_PREDICATE_PREFIX = "https://slsa.dev/provenance/"
SNAPPY_CONTENT_TYPES = ("application/x-snappy", "application/x-snappy-raw")
_CHUNK_BYTES = 64 * 1024
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` equals a pattern or is a subdomain of a ``*.`` pattern."""
    host = host.lower().rstrip(".")
    for pattern in (p.lower() for p in patterns):
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def decode_snappy(data: bytes, *, max_bytes: int = MAX_DECODED_BUNDLE_BYTES) -> bytes:
    """Decode a raw (block-format) Snappy body that decodes to at most ``max_bytes``.

    The block format starts with the decoded length as a varint, so an
    oversized body is rejected before anything is allocated for it.
    """
    import cramjam

    declared = 0
    shift = 0
    for index, byte in enumerate(data[:10]):
        declared |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if index == 9:
            raise VerificationError("Snappy body has a malformed length header")
    else:
        raise VerificationError("Snappy body is empty or truncated")
    if declared > max_bytes:
        raise VerificationError(
            f"Snappy body decodes to {declared} bytes, more than the "
            f"{max_bytes} byte limit"
        )
    try:
        decoded = bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise VerificationError(f"Snappy body is corrupt: {exc}") from exc
    if len(decoded) > max_bytes:
        raise VerificationError(
            f"Snappy body decodes to more than the {max_bytes} byte limit"
        )
    return decoded


class AttestationsClient:
    """Reads attestation bundles for an image digest from the GitHub API.

    ``api_base`` is the pinned ``attestations_api`` URL. ``allowed_bundle_hosts``
    defaults to GitHub's storage hosts; tests pass loopback hosts, for which
    plain HTTP is also accepted. A ``GITHUB_TOKEN`` from the environment (or
    ``token``) is sent as a bearer token to the API host only, never to a
    bundle download host.
    """

    def __init__(
        self,
        api_base: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        allowed_bundle_hosts: Sequence[str] = PRODUCTION_BUNDLE_HOSTS,
        token: str | None = None,
    ) -> None:
        import requests

        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.allowed_bundle_hosts = tuple(allowed_bundle_hosts)
        self._session = session if session is not None else requests.Session()
        self._api_netloc = urlsplit(self.api_base).netloc.lower()
        if token is None:
            token = os.environ.get("GITHUB_TOKEN", "").strip() or None
        if token is not None:
            register_secret(token)
        self._token = token
        _check_scheme(self.api_base, "attestations API URL")

    # -- API --------------------------------------------------------------

    def list_entries(self, digest: str, *, ref: str) -> list[dict[str, Any]]:
        """Return the attestation entries the API lists for ``digest``."""
        url = f"{self.api_base}/{digest}"
        status, body, _ = self._get(
            url,
            max_bytes=MAX_API_RESPONSE_BYTES,
            bundle_download=False,
        )
        if status == 404:
            raise VerificationError(f"no provenance attestation found for {ref}")
        if status in (401, 403):
            raise VerificationError(
                f"the attestations API refused the request for {ref} (HTTP {status})",
                hints=["set GITHUB_TOKEN when the API rate limit is exhausted"],
            )
        if status != 200:
            raise VerificationError(
                f"the attestations API returned HTTP {status} for {ref}"
            )
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VerificationError(
                f"the attestations API response for {ref} is not JSON: {exc}"
            ) from exc
        entries = document.get("attestations") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise VerificationError(
                f"the attestations API response for {ref} has no attestations list"
            )
        if not entries:
            raise VerificationError(f"no provenance attestation found for {ref}")
        return [entry for entry in entries if isinstance(entry, dict)]

    def bundle_bytes(self, entry: dict[str, Any]) -> bytes:
        """Return the bundle JSON of one entry: inline, else from ``bundle_url``."""
        inline = entry.get("bundle")
        if isinstance(inline, dict):
            return json.dumps(inline).encode("utf-8")
        url = entry.get("bundle_url")
        if not isinstance(url, str) or not url:
            raise VerificationError(
                "attestation entry has neither bundle nor bundle_url"
            )
        status, body, content_type = self._get(
            url, max_bytes=MAX_BUNDLE_DOWNLOAD_BYTES, bundle_download=True
        )
        if status != 200:
            raise VerificationError(f"bundle download returned HTTP {status}")
        if content_type in SNAPPY_CONTENT_TYPES:
            return decode_snappy(body)
        return body

    # -- HTTP -------------------------------------------------------------

    def _check_bundle_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.username is not None or parts.password is not None:
            raise VerificationError("bundle URL must not carry user info")
        if not host_allowed(host, self.allowed_bundle_hosts):
            raise VerificationError(
                f"bundle URL host {host!r} is not an allowed attestation host "
                f"({', '.join(self.allowed_bundle_hosts)})"
            )
        if parts.scheme != "https" and not (
            parts.scheme == "http" and _is_loopback(host)
        ):
            raise VerificationError(f"bundle URL {url!r} must use https")

    def _headers_for(self, url: str) -> dict[str, str]:
        headers = dict(API_HEADERS)
        if self._token is not None and urlsplit(url).netloc.lower() == self._api_netloc:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _get(
        self, url: str, *, max_bytes: int, bundle_download: bool
    ) -> tuple[int, bytes, str]:
        """GET ``url``, following at most five redirects, each one re-checked.

        API requests follow redirects only within the API host; bundle
        downloads follow them only to allowed bundle hosts. Returns the final
        status, the capped body and the media type of the response.
        """
        import requests

        for _ in range(MAX_REDIRECTS + 1):
            if bundle_download:
                self._check_bundle_url(url)
            elif urlsplit(url).netloc.lower() != self._api_netloc:
                raise VerificationError(
                    f"the attestations API redirected to another host: {url!r}"
                )
            try:
                response = self._session.get(
                    url,
                    headers=self._headers_for(url),
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.RequestException as exc:
                raise TransportError(
                    f"request to {urlsplit(url).netloc} failed: {exc}"
                ) from exc
            with response:
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise VerificationError(
                            f"redirect from {urlsplit(url).netloc} has no Location"
                        )
                    url = urljoin(url, location)
                    continue
                if response.status_code >= 500:
                    raise TransportError(
                        f"{urlsplit(url).netloc} returned HTTP {response.status_code}"
                    )
                body = _read_capped(response, max_bytes, url)
                media_type = response.headers.get("Content-Type", "")
                media_type = media_type.split(";")[0].strip().lower()
                return response.status_code, body, media_type
        raise VerificationError(f"more than {MAX_REDIRECTS} redirects for {url!r}")


def _check_scheme(url: str, what: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return
    raise VerificationError(f"{what} {url!r} must use https")


def _read_capped(response: requests.Response, max_bytes: int, url: str) -> bytes:
    import requests

    where = urlsplit(url).netloc
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise VerificationError(
            f"response from {where} is {declared} bytes, more than the "
            f"{max_bytes} byte limit"
        )
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(_CHUNK_BYTES):
            total += len(chunk)
            if total > max_bytes:
                raise VerificationError(
                    f"response from {where} exceeds the {max_bytes} byte limit"
                )
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransportError(
            f"reading the response from {where} failed: {exc}"
        ) from exc
    return b"".join(chunks)


def _check_provenance(payload_type: str, payload: bytes, digest: str) -> None:
    from synthorg_tasks.verify.keyless import (
        IN_TOTO_PAYLOAD_TYPE,
        check_statement_subject,
    )

    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            f"DSSE payload type is {payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE}"
        )
    statement = check_statement_subject(payload, digest)
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type.startswith(
        SLSA_PREDICATE_PREFIX
    ):
        raise VerificationError(
            f"predicate type {predicate_type!r} is not SLSA provenance "
            f"({SLSA_PREDICATE_PREFIX}...)"
        )


def verify_provenance(
    client: AttestationsClient,
    digest: str,
    *,
    ref: str,
    verifier: Verifier,
    policy: VerificationPolicy,
) -> None:
    """Verify that an SLSA provenance attestation for ``digest`` passes.

    The first entry whose bundle verifies under ``policy`` and whose statement
    is SLSA provenance naming ``digest`` wins. When none passes, the reasons
    are joined; the error is a transport error when any entry failed for a
    transport reason.
    """
    from synthorg_tasks.verify.keyless import parse_bundle, sigstore_errors

    reasons: list[str] = []
    transport = False
    for position, entry in enumerate(client.list_entries(digest, ref=ref)):
        try:
            raw = client.bundle_bytes(entry)
            bundle, is_dsse = parse_bundle(raw, "provenance bundle")
            if not is_dsse:
                raise VerificationError("provenance bundle has no DSSE envelope")
            with sigstore_errors("provenance bundle"):
                payload_type, payload = verifier.verify_dsse(bundle, policy)
            _check_provenance(payload_type, payload, digest)
        except VerificationError as exc:
            transport = transport or isinstance(exc, TransportError)
            reasons.append(f"attestation {position}: {exc.message}")
            continue
        _logger.debug("provenance attestation %d verifies %s", position, ref)
        return
    message = "; ".join(reasons)
    if transport:
        raise TransportError(message)
    raise VerificationError(message)
