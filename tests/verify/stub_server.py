"""A loopback HTTP server that plays an OCI registry and a Rekor log API.

It stores blobs and manifests in memory, serves the OCI referrers API (or,
switched off, responds to it with a plain 404 as distribution 2.8 does), can
require Bearer token auth with Docker credentials, and lets a test replace
the bytes served for any path to play a tampering registry. It listens on
127.0.0.1 at a free port and is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_ROUTE = re.compile(
    r"^/v2/(?P<repo>.+?)/(?P<kind>manifests|blobs|referrers)/(?P<ref>[^/]+)$"
)
_UPLOAD_START = re.compile(r"^/v2/(?P<repo>.+?)/blobs/uploads/$")
_UPLOAD = re.compile(r"^/v2/(?P<repo>.+?)/blobs/uploads/(?P<id>[0-9a-f]+)$")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class StubState:
    """What the stub serves; tests change it between requests."""

    referrers_api: bool = True
    # When False, the referrers API ignores artifactType like some registries.
    filter_on_server: bool = True
    token_auth: bool = False
    # username, password the token endpoint requires; None accepts anonymous.
    credentials: tuple[str, str] | None = None
    # Refresh token that the OAuth2 POST form of the token endpoint accepts.
    identity_token: str | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    # Replaces the body served for a path (the digest header stays honest).
    corrupt: dict[str, bytes] = field(default_factory=dict)
    # Overrides Docker-Content-Digest for a path.
    digest_headers: dict[str, str] = field(default_factory=dict)
    # Forces a status code for a path.
    status: dict[str, int] = field(default_factory=dict)
    # Extra headers for a path, such as a redirect's Location.
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    # Paths whose body is sent without Content-Length, ending at close.
    omit_length: set[str] = field(default_factory=set)
    rekor_entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- helpers --------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        body = state.corrupt.get(path, body)
        self.send_response(state.status.get(path, status))
        for name, value in {**(headers or {}), **state.headers.get(path, {})}.items():
            self.send_header(name, value)
        if path not in state.omit_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self, status: int, document: Any, media_type: str = "application/json"
    ) -> None:
        self._send(status, json.dumps(document).encode(), {"Content-Type": media_type})

    def _error(self, status: int, code: str) -> None:
        self._json(status, {"errors": [{"code": code, "message": code.lower()}]})

    def _authorised(self, repo: str) -> bool:
        state = self.server.state
        if not state.token_auth:
            return True
        if self.headers.get("Authorization") == f"Bearer {state.token}":
            return True
        realm = f"http://{self.server.host}/token"
        self._send(
            401,
            b'{"errors":[{"code":"UNAUTHORIZED"}]}',
            {
                "WWW-Authenticate": (
                    f'Bearer realm="{realm}",service="stub",'
                    f'scope="repository:{repo}:pull"'
                )
            },
        )
        return False

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    # -- verbs ----------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        state.log.append((self.command, self.path, self.headers.get("Authorization")))
        if parts.path == "/token":
            self._token()
            return
        if parts.path == "/api/v1/log/entries":
            self._rekor(parse_qs(parts.query))
            return
        match = _ROUTE.match(parts.path)
        if match is None:
            self._send(404, b"404 page not found\n", {"Content-Type": "text/plain"})
            return
        repo, kind, ref = match.group("repo", "kind", "ref")
        if not self._authorised(repo):
            return
        if kind == "manifests":
            self._manifest(repo, ref)
        elif kind == "blobs":
            blob = state.blobs.get(ref)
            if blob is None:
                self._error(404, "BLOB_UNKNOWN")
            else:
                self._send(200, blob, {"Content-Type": "application/octet-stream"})
        else:
            self._referrers(repo, ref, parse_qs(parts.query))

    def _token(self) -> None:
        state = self.server.state
        if state.credentials is not None:
            user, password = state.credentials
            expected = base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._error(401, "UNAUTHORIZED")
                return
        self._json(200, {"token": state.token})

    def _manifest(self, repo: str, ref: str) -> None:
        state = self.server.state
        stored = state.manifests.get((repo, ref))
        if stored is None:
            self._error(404, "MANIFEST_UNKNOWN")
            return
        raw, media_type = stored
        path = urlsplit(self.path).path
        digest = state.digest_headers.get(path, _digest(raw))
        self._send(
            200, raw, {"Content-Type": media_type, "Docker-Content-Digest": digest}
        )

    def _referrers(self, repo: str, digest: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        if not state.referrers_api:
            self._send(404, b"404 page not found\n", {"Content-Type": "text/plain"})
            return
        wanted = (
            query.get("artifactType", [None])[0] if state.filter_on_server else None
        )
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for (stored_repo, _ref), (raw, media_type) in state.manifests.items():
            if stored_repo != repo:
                continue
            document = json.loads(raw)
            subject = document.get("subject") or {}
            manifest_digest = _digest(raw)
            if subject.get("digest") != digest or manifest_digest in seen:
                continue
            seen.add(manifest_digest)
            artifact_type = (
                document.get("artifactType") or document["config"]["mediaType"]
            )
            if wanted is not None and artifact_type != wanted:
                continue
            entry: dict[str, Any] = {
                "mediaType": media_type,
                "digest": manifest_digest,
                "size": len(raw),
                "artifactType": artifact_type,
            }
            if document.get("annotations"):
                entry["annotations"] = document["annotations"]
            entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self._json(200, index, OCI_INDEX)

    def _rekor(self, query: dict[str, list[str]]) -> None:
        entry = self.server.state.rekor_entries.get(int(query["logIndex"][0]))
        if entry is None:
            self._json(404, {"code": 404, "message": "entry not found"})
        else:
            self._json(200, entry)

    def do_POST(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        if path == "/token":
            form = parse_qs(self._body().decode())
            state.log.append(("POST", f"/token?{urlencode(form, doseq=True)}", None))
            refresh = form.get("refresh_token", [None])[0]
            if (
                form.get("grant_type") != ["refresh_token"]
                or state.identity_token is None
                or refresh != state.identity_token
            ):
                self._error(401, "UNAUTHORIZED")
                return
            self._json(200, {"access_token": state.token})
            return
        match = _UPLOAD_START.match(path)
        if match is None:
            self._error(404, "NAME_UNKNOWN")
            return
        upload = secrets.token_hex(8)
        self._send(
            202, b"", {"Location": f"/v2/{match.group('repo')}/blobs/uploads/{upload}"}
        )

    def do_PUT(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        body = self._body()
        upload = _UPLOAD.match(parts.path)
        if upload is not None:
            digest = parse_qs(parts.query)["digest"][0]
            if _digest(body) != digest:
                self._error(400, "DIGEST_INVALID")
                return
            state.blobs[digest] = body
            self._send(201, b"", {"Docker-Content-Digest": digest})
            return
        match = _ROUTE.match(parts.path)
        if match is None or match.group("kind") != "manifests":
            self._error(404, "NAME_UNKNOWN")
            return
        repo, ref = match.group("repo", "ref")
        media_type = self.headers.get("Content-Type", "")
        state.manifests[(repo, ref)] = (body, media_type)
        state.manifests[(repo, _digest(body))] = (body, media_type)
        self._send(201, b"", {"Docker-Content-Digest": _digest(body)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class StubServer:
    """Runs the stub in a thread; use as a context manager."""

    def __init__(self, state: StubState | None = None) -> None:
        self.state = state or StubState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
