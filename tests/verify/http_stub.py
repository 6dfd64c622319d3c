"""A loopback HTTP server with canned responses, standing in for GitHub's API.

Routes map a request path to a status, headers and body. Every request is
recorded with its headers, so tests can check what was sent and that a cached
verification sent nothing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True


@dataclass(frozen=True)
class Recorded:
    path: str
    host: str
    headers: dict[str, str]


class GitHubStub:
    """Routes and the request log of one running stub."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Recorded] = []
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _QuietServer(ThreadingHTTPServer):
    """Ignores clients that hang up mid-response, as capped readers do."""

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def run_stub() -> Iterator[GitHubStub]:
    stub = GitHubStub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.requests.append(
                Recorded(self.path, self.headers.get("Host", ""), dict(self.headers))
            )
            route = stub.routes.get(self.path, Route(404, b'{"message":"Not Found"}'))
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = _QuietServer(("127.0.0.1", 0), Handler)
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
