"""OCI distribution v2 client used by image verification.

The client is built on ``requests`` rather than docker-py, because docker-py
has no referrers API, cannot fetch a blob or manifest by digest from a
registry, and cannot cap a response's size while it streams. Every object is
content-addressed here:

- an object fetched by digest must hash (SHA-256 of the exact bytes) to it;
- an object fetched by tag gets the digest of its bytes, and a
  ``Docker-Content-Digest`` header that disagrees is an error;
- every body is read under a size cap, and reading stops once it is exceeded.

Authentication is anonymous first. A 401 with a ``Bearer`` challenge makes the
client fetch a token from the challenge's realm, with the host's Docker
credentials when present (docker-py's ``docker.auth``, credential stores
included), and retry the request once.

HTTPS is required, except for loopback hosts (``localhost``, ``127.0.0.0/8``,
``[::1]``), which are reached over plain HTTP; that is how the tests talk to a
local registry. Failures of ``requests`` are translated here and nowhere else.
DNS, connect, TLS, timeouts and 5xx responses raise :class:`TransportError`,
which adds the air-gapped hint. Digest mismatches, oversized or malformed
bodies and other rejections raise :class:`VerificationError`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.state.secrets import register_secret

if TYPE_CHECKING:
    import requests

__all__ = [
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_V2",
    "MANIFEST_ACCEPT",
    "MAX_MANIFEST_BYTES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryNotFound",
    "fetch_json",
    "is_loopback_host",
    "sha256_digest",
]

_logger = logging.getLogger("synthorg.verify.registry")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_TOKEN_BYTES = 1024 * 1024
_MAX_ERROR_BODY_BYTES = 64 * 1024
_MAX_REDIRECTS = 5
# A referrers API response may be split into pages linked by a Link header.
_MAX_REFERRER_PAGES = 16
_CHUNK_BYTES = 64 * 1024

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` (``name[:port]``) is ``localhost`` or a loopback IP."""
    match = _HOST_RE.fullmatch(host)
    if match is None:
        return False
    name = match.group("name").strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistryAuthError(VerificationError):
    """Raised when the registry responds 401 or 403 after the token retry."""

    slug = "registry_auth"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, hints=[])
        self.status = status


class RegistryNotFound(VerificationError):
    """Raised when the registry responds 404 for a manifest or blob."""

    slug = "registry_not_found"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor, as found in indexes and referrers lists."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        """Build a descriptor from its JSON object, rejecting a malformed one."""
        if not isinstance(value, dict):
            raise VerificationError(f"{where}: descriptor is not a JSON object")
        media_type = value.get("mediaType")
        digest = value.get("digest")
        size = value.get("size")
        if not isinstance(media_type, str):
            raise VerificationError(f"{where}: descriptor has no mediaType")
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise VerificationError(
                f"{where}: descriptor digest {digest!r} is not sha256:<64 hex>"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise VerificationError(f"{where}: descriptor size {size!r} is invalid")
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise VerificationError(f"{where}: descriptor artifactType is invalid")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise VerificationError(f"{where}: descriptor annotations are invalid")
        platform = value.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise VerificationError(f"{where}: descriptor platform is invalid")
        return cls(media_type, digest, size, artifact_type, annotations, platform)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as served: its digest, media type, bytes and JSON."""

    digest: str
    media_type: str
    raw: bytes
    document: dict[str, Any]


def _parse_json_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise VerificationError(f"{where} is not a JSON object")
    return document


def _parse_challenge(header: str) -> dict[str, str] | None:
    """Return the parameters of a ``Bearer`` challenge, or None for other schemes."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM_RE.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = quoted if quoted is not None else bare
    return params if "realm" in params else None


class RegistryClient:
    """A client for one registry host, such as ``dhi.io`` or ``127.0.0.1:5000``.

    ``session`` lets tests or callers share a ``requests.Session``; the client
    creates its own when none is given. ``timeout`` is in seconds and applies
    to connecting and to each read of every request.
    """

    def __init__(
        self,
        host: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        if _HOST_RE.fullmatch(host) is None:
            raise ValueError(f"registry host {host!r} is not a host[:port]")
        self.host = host
        self.timeout = timeout
        self.scheme = "http" if is_loopback_host(host) else "https"
        self.base_url = f"{self.scheme}://{host}"
        if session is None:
            import requests

            session = requests.Session()
        self._session = session
        self._tokens: dict[str, str] = {}

    # -- public API -----------------------------------------------------------

    def resolve_tag(self, repository: str, tag: str) -> str:
        """Return the digest that ``repository:tag`` names now.

        A ``HEAD`` request is tried first; when it carries no usable
        ``Docker-Content-Digest`` header, the manifest is fetched and hashed.
        """
        _check_repository(repository)
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(f"tag {tag!r} is not a valid tag")
        url = f"{self.base_url}/v2/{repository}/manifests/{tag}"
        where = f"{self.host}/{repository}:{tag}"
        response = self._request(
            "HEAD", url, repository, where, headers=self._manifest_headers()
        )
        try:
            if response.status_code == 200:
                header = response.headers.get("Docker-Content-Digest", "")
                if DIGEST_RE.fullmatch(header):
                    return header
            elif response.status_code not in (404, 405):
                self._raise_for_status(response, where)
        finally:
            response.close()
        _logger.debug("HEAD %s gave no digest; fetching the manifest", where)
        return self.get_manifest(repository, tag).digest

    def get_manifest(
        self,
        repository: str,
        reference: str,
        *,
        max_bytes: int = MAX_MANIFEST_BYTES,
    ) -> Manifest:
        """Fetch a manifest or index by tag or digest, checking its digest."""
        by_digest = _check_reference(repository, reference)
        where = _ref_text(self.host, repository, reference)
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        response = self._request(
            "GET", url, repository, where, headers=self._manifest_headers()
        )
        with response:
            self._raise_for_status(response, where)
            raw = _read_capped(response, max_bytes, f"manifest {where}")
            header_digest = response.headers.get("Docker-Content-Digest")
            content_type = response.headers.get("Content-Type", "")
        digest = sha256_digest(raw)
        if by_digest and digest != reference:
            raise VerificationError(
                f"manifest {where}: the registry's bytes hash to {digest}, "
                f"not to the requested digest"
            )
        if header_digest and header_digest != digest:
            raise VerificationError(
                f"manifest {where}: Docker-Content-Digest {header_digest} "
                f"disagrees with the SHA-256 of the bytes ({digest})"
            )
        document = _parse_json_object(raw, f"manifest {where}")
        media_type = document.get("mediaType")
        if not isinstance(media_type, str):
            media_type = content_type.split(";", 1)[0].strip()
        return Manifest(digest, media_type, raw, document)

    def get_blob(self, repository: str, digest: str, *, max_bytes: int) -> bytes:
        """Fetch a blob by digest, reading at most ``max_bytes`` bytes."""
        _check_repository(repository)
        if not DIGEST_RE.fullmatch(digest):
            raise ValueError(f"blob digest {digest!r} is not sha256:<64 hex>")
        where = f"{self.host}/{repository}@{digest}"
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        response = self._request("GET", url, repository, where)
        with response:
            self._raise_for_status(response, where)
            data = _read_capped(response, max_bytes, f"blob {where}")
        actual = sha256_digest(data)
        if actual != digest:
            raise VerificationError(
                f"blob {where}: the registry's bytes hash to {actual}, "
                f"not to the requested digest"
            )
        return data

    def referrers(
        self,
        repository: str,
        digest: str,
        *,
        artifact_type: str | None = None,
    ) -> list[Descriptor]:
        """List the manifests whose ``subject`` is ``digest``.

        The referrers API is asked first. When the registry lacks it (404 or
        405 without an OCI index body), the referrers tag ``sha256-<hex>`` is
        read instead. The ``artifact_type`` filter is applied here as well,
        because a registry may ignore it.
        """
        _check_repository(repository)
        if not DIGEST_RE.fullmatch(digest):
            raise ValueError(f"subject digest {digest!r} is not sha256:<64 hex>")
        where = f"referrers of {self.host}/{repository}@{digest}"
        listed = self._referrers_api(repository, digest, artifact_type, where)
        if listed is None:
            _logger.debug("%s: no referrers API; reading the tag", where)
            listed = self._referrers_tag(repository, digest, where)
        if artifact_type is None:
            return listed
        return [d for d in listed if d.artifact_type == artifact_type]

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` as one monolithic blob and return its digest.

        Used by tests and fixture tooling; verification never writes.
        """
        _check_repository(repository)
        digest = sha256_digest(data)
        where = f"upload to {self.host}/{repository}"
        start = self._request(
            "POST",
            f"{self.base_url}/v2/{repository}/blobs/uploads/",
            repository,
            where,
            scope_actions="pull,push",
        )
        with start:
            if start.status_code != 202:
                self._raise_for_status(start, where, expected=(202,))
            location = start.headers.get("Location")
        if not location:
            raise VerificationError(f"{where}: the registry sent no upload Location")
        upload_url = urljoin(self.base_url + "/", location)
        separator = "&" if "?" in upload_url else "?"
        upload_url = f"{upload_url}{separator}{urlencode({'digest': digest})}"
        self._check_same_origin(upload_url, where)
        finish = self._request(
            "PUT",
            upload_url,
            repository,
            where,
            scope_actions="pull,push",
            headers={"Content-Type": "application/octet-stream"},
            data=data,
        )
        with finish:
            self._raise_for_status(finish, where, expected=(201,))
        return digest

    def push_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> str:
        """Upload a manifest or index under a tag or its digest; return its digest.

        Used by tests and fixture tooling; verification never writes.
        """
        by_digest = _check_reference(repository, reference)
        digest = sha256_digest(raw)
        if by_digest and reference != digest:
            raise ValueError(f"manifest bytes hash to {digest}, not {reference}")
        where = f"manifest upload to {_ref_text(self.host, repository, reference)}"
        response = self._request(
            "PUT",
            f"{self.base_url}/v2/{repository}/manifests/{reference}",
            repository,
            where,
            scope_actions="pull,push",
            headers={"Content-Type": media_type},
            data=raw,
        )
        with response:
            self._raise_for_status(response, where, expected=(201,))
        return digest

    # -- referrers ------------------------------------------------------------

    def _referrers_api(
        self,
        repository: str,
        digest: str,
        artifact_type: str | None,
        where: str,
    ) -> list[Descriptor] | None:
        url = f"{self.base_url}/v2/{repository}/referrers/{digest}"
        if artifact_type is not None:
            url += "?" + urlencode({"artifactType": artifact_type})
        found: list[Descriptor] = []
        for page in range(_MAX_REFERRER_PAGES):
            response = self._request(
                "GET", url, repository, where, headers={"Accept": OCI_INDEX}
            )
            with response:
                status = response.status_code
                if status in (404, 405) and page == 0:
                    body = _read_capped(response, _MAX_ERROR_BODY_BYTES, where, True)
                    if not _is_oci_index(body):
                        return None
                    return self._index_descriptors(body, where)
                self._raise_for_status(response, where)
                body = _read_capped(response, MAX_MANIFEST_BYTES, where)
                link = response.headers.get("Link", "")
            found.extend(self._index_descriptors(body, where))
            match = _LINK_NEXT_RE.search(link)
            if match is None:
                return found
            url = urljoin(url, match.group(1))
            self._check_same_origin(url, where)
        raise VerificationError(
            f"{where}: more than {_MAX_REFERRER_PAGES} pages of referrers"
        )

    def _referrers_tag(
        self, repository: str, digest: str, where: str
    ) -> list[Descriptor]:
        tag = digest.replace(":", "-", 1)
        try:
            manifest = self.get_manifest(repository, tag)
        except RegistryNotFound:
            return []
        if manifest.media_type != OCI_INDEX:
            raise VerificationError(
                f"{where}: the referrers tag {tag} is a {manifest.media_type!r}, "
                f"not an OCI index"
            )
        return self._index_descriptors(manifest.raw, where)

    @staticmethod
    def _index_descriptors(body: bytes, where: str) -> list[Descriptor]:
        document = _parse_json_object(body, where)
        manifests = document.get("manifests", [])
        if not isinstance(manifests, list):
            raise VerificationError(f"{where}: 'manifests' is not a list")
        return [
            Descriptor.from_json(entry, f"{where} entry {index}")
            for index, entry in enumerate(manifests)
        ]

    # -- transport ------------------------------------------------------------

    @staticmethod
    def _manifest_headers() -> dict[str, str]:
        return {"Accept": ", ".join(MANIFEST_ACCEPT)}

    def _check_same_origin(self, url: str, where: str) -> None:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.base_url:
            raise VerificationError(
                f"{where}: the registry pointed to {parts.scheme}://{parts.netloc}, "
                f"outside {self.base_url}"
            )

    def _request(
        self,
        method: str,
        url: str,
        repository: str,
        where: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        scope_actions: str = "pull",
    ) -> requests.Response:
        """Send one request, with one token retry after a Bearer challenge.

        Redirects are followed by hand, at most five, and only to HTTPS (or
        to loopback over HTTP); the token is sent to the registry host only.
        """
        scope = f"repository:{repository}:{scope_actions}"
        response = self._send_following(
            method, url, headers, data, scope=scope, where=where
        )
        if response.status_code != 401:
            return response
        challenge = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        response.close()
        if challenge is None:
            raise RegistryAuthError(
                f"{where}: the registry requires authentication without offering "
                f"a Bearer token (HTTP 401)",
                status=401,
            )
        self._tokens[scope] = self._fetch_token(challenge, scope, where)
        return self._send_following(
            method, url, headers, data, scope=scope, where=where
        )

    def _send_following(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        *,
        scope: str,
        where: str,
    ) -> requests.Response:
        for _ in range(_MAX_REDIRECTS + 1):
            send_headers = dict(headers or {})
            token = self._tokens.get(scope)
            if token is not None and self._is_registry_url(url):
                send_headers["Authorization"] = f"Bearer {token}"
            response = self._send(method, url, send_headers, data, where=where)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            _check_url_scheme(url, where)
            if response.status_code == 303:
                method, data = "GET", None
        raise VerificationError(f"{where}: more than {_MAX_REDIRECTS} redirects")

    def _is_registry_url(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.base_url

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None = None,
        *,
        where: str,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        return _send_request(
            self._session,
            method,
            url,
            headers=headers,
            data=data,
            auth=auth,
            timeout=self.timeout,
            where=where,
        )

    def _fetch_token(self, challenge: dict[str, str], scope: str, where: str) -> str:
        """Fetch a Bearer token from the challenge's realm.

        A username and password go out as Basic auth on a GET. An identity
        token, which ``docker login`` stores for some registries, is exchanged
        with an OAuth2 refresh-token POST instead.
        """
        realm = challenge["realm"]
        _check_url_scheme(realm, f"{where}: token realm")
        query = {"scope": challenge.get("scope", scope)}
        if "service" in challenge:
            query["service"] = challenge["service"]
        credentials = _docker_credentials(self.host)
        if isinstance(credentials, str):
            form = {
                **query,
                "grant_type": "refresh_token",
                "refresh_token": credentials,
                "client_id": "synthorg-tasks",
            }
            response = self._send(
                "POST",
                realm,
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode(),
                where=where,
            )
        else:
            url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
            response = self._send("GET", url, {}, where=where, auth=credentials)
        with response:
            if response.status_code in (401, 403):
                who = "the Docker credentials" if credentials else "anonymous access"
                raise RegistryAuthError(
                    f"{where}: the token service at {urlsplit(realm).netloc} "
                    f"refused {who} (HTTP {response.status_code})",
                    status=response.status_code,
                )
            self._raise_for_status(response, f"{where}: token request")
            body = _read_capped(response, _MAX_TOKEN_BYTES, f"{where}: token")
        document = _parse_json_object(body, f"{where}: token response")
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise VerificationError(f"{where}: the token response contains no token")
        register_secret(token)
        return token

    @staticmethod
    def _raise_for_status(
        response: requests.Response,
        where: str,
        *,
        expected: tuple[int, ...] = (200,),
    ) -> None:
        status = response.status_code
        if status in expected:
            return
        detail = _error_detail(response)
        if status >= 500:
            raise TransportError(
                f"{where}: the registry responded with HTTP {status}{detail}"
            )
        if status in (401, 403):
            raise RegistryAuthError(
                f"{where}: access denied (HTTP {status}){detail}", status=status
            )
        if status == 404:
            raise RegistryNotFound(f"{where}: not found (HTTP 404){detail}")
        raise VerificationError(f"{where}: unexpected HTTP {status}{detail}")


def _send_request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    where: str,
    data: bytes | None = None,
    auth: tuple[str, str] | None = None,
) -> requests.Response:
    """Send one streamed request without following redirects, translating errors."""
    import requests

    netloc = urlsplit(url).netloc
    try:
        return session.request(
            method,
            url,
            headers=dict(headers),
            data=data,
            auth=auth,
            timeout=(timeout, timeout),
            stream=True,
            allow_redirects=False,
        )
    except requests.exceptions.Timeout as exc:
        raise TransportError(
            f"{where}: the request to {netloc} timed out after {timeout:g} s"
        ) from exc
    except requests.exceptions.SSLError as exc:
        raise TransportError(f"{where}: TLS failed with {netloc}: {exc}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise TransportError(f"{where}: cannot connect to {netloc}: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise TransportError(f"{where}: request failed: {exc}") from exc


def _check_repository(repository: str) -> None:
    if not _REPOSITORY_RE.fullmatch(repository):
        raise ValueError(f"repository {repository!r} is not a valid repository name")


def _check_reference(repository: str, reference: str) -> bool:
    """Validate a tag or digest reference; return True for a digest."""
    _check_repository(repository)
    if DIGEST_RE.fullmatch(reference):
        return True
    if _TAG_RE.fullmatch(reference):
        return False
    raise ValueError(f"reference {reference!r} is neither a tag nor a sha256 digest")


def _ref_text(host: str, repository: str, reference: str) -> str:
    joiner = "@" if DIGEST_RE.fullmatch(reference) else ":"
    return f"{host}/{repository}{joiner}{reference}"


def _check_url_scheme(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback_host(parts.netloc):
        return
    raise VerificationError(
        f"{where}: rejected {parts.scheme}://{parts.netloc} because "
        f"only HTTPS, or HTTP to a loopback host, is allowed"
    )


def _is_oci_index(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and document.get("mediaType") == OCI_INDEX


def _iter_body(response: requests.Response, where: str) -> Iterator[bytes]:
    import requests

    try:
        yield from response.iter_content(_CHUNK_BYTES)
    except requests.exceptions.Timeout as exc:
        raise TransportError(f"{where}: reading the body timed out") from exc
    except requests.exceptions.RequestException as exc:
        raise TransportError(f"{where}: reading the body failed: {exc}") from exc


def _read_capped(
    response: requests.Response, max_bytes: int, where: str, truncate: bool = False
) -> bytes:
    """Read the body, failing (or, with ``truncate``, stopping) past ``max_bytes``."""
    declared = response.headers.get("Content-Length")
    if (
        not truncate
        and declared is not None
        and declared.isdigit()
        and int(declared) > max_bytes
    ):
        raise VerificationError(
            f"{where}: {declared} bytes exceed the limit of {max_bytes} bytes"
        )
    buffer = bytearray()
    for chunk in _iter_body(response, where):
        buffer.extend(chunk)
        if len(buffer) > max_bytes:
            if truncate:
                return bytes(buffer[:max_bytes])
            raise VerificationError(
                f"{where}: the body exceeds the limit of {max_bytes} bytes"
            )
    return bytes(buffer)


def _error_detail(response: requests.Response) -> str:
    """Return the registry's error code and message, if it sent the OCI form."""
    try:
        body = _read_capped(response, _MAX_ERROR_BODY_BYTES, "error body", True)
        errors = json.loads(body).get("errors")
        first = errors[0]
        return f": {first.get('code')} {first.get('message')}"
    except (TransportError, ValueError, AttributeError, IndexError, TypeError):
        return ""


def _docker_credentials(host: str) -> tuple[str, str] | str | None:
    """Return Docker's username and password, or identity token, for ``host``.

    Credential stores and helpers are read through docker-py. Returns None when
    Docker has nothing for the host.
    """
    import docker.auth
    import docker.errors

    try:
        entry = docker.auth.load_config().resolve_authconfig(host)
    except docker.errors.DockerException as exc:
        raise VerificationError(
            f"cannot read the Docker credentials for {host}: {exc}",
            hints=[f"run: docker login {host}"],
        ) from exc
    if not entry:
        return None
    identity_token = entry.get("IdentityToken")
    if isinstance(identity_token, str) and identity_token:
        register_secret(identity_token)
        return identity_token
    username = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if not username or not password:
        return None
    register_secret(password)
    register_secret(base64.b64encode(f"{username}:{password}".encode()).decode())
    return str(username), str(password)


def fetch_json(
    url: str,
    *,
    where: str,
    timeout: float,
    max_bytes: int,
    session: requests.Session | None = None,
) -> Any:
    """GET a JSON document over HTTPS (or HTTP to loopback), under a size cap.

    Used for transparency-log APIs, so that every ``requests`` failure is
    still translated in this module. Redirects are not followed. A 404 raises
    :class:`RegistryNotFound`, a 5xx or a network failure
    :class:`TransportError`.
    """
    import requests

    _check_url_scheme(url, where)
    response = _send_request(
        session or requests.Session(),
        "GET",
        url,
        headers={"Accept": "application/json"},
        timeout=timeout,
        where=where,
    )
    with response:
        status = response.status_code
        if status >= 500:
            raise TransportError(f"{where}: the server responded with HTTP {status}")
        if status == 404:
            raise RegistryNotFound(f"{where}: not found (HTTP 404)")
        if status != 200:
            raise VerificationError(f"{where}: unexpected HTTP {status}")
        body = _read_capped(response, max_bytes, where)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"{where} is not valid JSON: {exc}") from exc
